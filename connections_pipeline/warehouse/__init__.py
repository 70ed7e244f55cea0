"""The warehouse layer: table definitions, bulk loaders, snapshot diff and SCD2 history.

Only this package writes SQL. It works on DuckDB (a local file) and PostgreSQL through a
SQLAlchemy URL, moves data with the bulk paths only (COPY on PostgreSQL, Arrow on DuckDB)
and loads each sync run in one transaction.
"""

from connections_pipeline.warehouse.columns import (
    CONNECT_SESSIONS,
    CONNECT_SESSIONS_COLUMNS,
    CONNECTION_ENTITIES,
    CONNECTION_ENTITIES_COLUMNS,
    CONNECTIONS,
    CONNECTIONS_COLUMNS,
    CONNECTIONS_HISTORY,
    CONNECTIONS_HISTORY_COLUMNS,
    LOADED_STATUSES,
    PRIMARY_KEYS,
    QUARANTINE,
    QUARANTINE_COLUMNS,
    RAW_RESPONSES,
    RAW_RESPONSES_COLUMNS,
    RUN_FAILED,
    RUN_HELD,
    RUN_PARTIAL,
    RUN_STATUSES,
    RUN_SUCCESS,
    SESSION_PROGRESS_COLUMNS,
    SYNC_RUNS,
    SYNC_RUNS_COLUMNS,
    TABLE_COLUMNS,
    TOKENS,
    TOKENS_COLUMNS,
    TRACKED_ATTRIBUTES,
    UTC_DATETIME,
    Column,
    conform,
    empty_frame,
    polars_schema,
)
from connections_pipeline.warehouse.engine import URL_SETTING, WarehouseConnectionError
from connections_pipeline.warehouse.history import diff_snapshot, plan_history
from connections_pipeline.warehouse.load import LoadSummary, RunLoad
from connections_pipeline.warehouse.run_records import sessions_not_stored
from connections_pipeline.warehouse.tables import (
    DEFAULT_SCHEMA,
    SCHEMA_SETTING,
    build_metadata,
    validate_schema_name,
)
from connections_pipeline.warehouse.warehouse import Warehouse

__all__ = [
    "CONNECTIONS",
    "CONNECTIONS_COLUMNS",
    "CONNECTIONS_HISTORY",
    "CONNECTIONS_HISTORY_COLUMNS",
    "CONNECTION_ENTITIES",
    "CONNECTION_ENTITIES_COLUMNS",
    "CONNECT_SESSIONS",
    "CONNECT_SESSIONS_COLUMNS",
    "DEFAULT_SCHEMA",
    "LOADED_STATUSES",
    "PRIMARY_KEYS",
    "QUARANTINE",
    "QUARANTINE_COLUMNS",
    "RAW_RESPONSES",
    "RAW_RESPONSES_COLUMNS",
    "RUN_FAILED",
    "RUN_HELD",
    "RUN_PARTIAL",
    "RUN_STATUSES",
    "RUN_SUCCESS",
    "SCHEMA_SETTING",
    "SESSION_PROGRESS_COLUMNS",
    "SYNC_RUNS",
    "SYNC_RUNS_COLUMNS",
    "TABLE_COLUMNS",
    "TOKENS",
    "TOKENS_COLUMNS",
    "TRACKED_ATTRIBUTES",
    "URL_SETTING",
    "UTC_DATETIME",
    "Column",
    "LoadSummary",
    "RunLoad",
    "Warehouse",
    "WarehouseConnectionError",
    "build_metadata",
    "conform",
    "diff_snapshot",
    "empty_frame",
    "plan_history",
    "polars_schema",
    "sessions_not_stored",
    "validate_schema_name",
]
