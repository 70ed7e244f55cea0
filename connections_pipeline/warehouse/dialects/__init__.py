"""What differs per warehouse database, one module per SQLAlchemy dialect.

Everything else in `connections_pipeline.warehouse` (the column registry, the tables, the
diff of a run against the stored snapshot, SCD2 history, row hashes) is shared and reaches
the database only through these functions:

- `write_frame`, `staged`, `read_select`, `read_narrow`: the bulk paths that move Polars
  frames in and out, inside the caller's transaction;
- `insert_new`, `upsert`, `insert_if_absent`: writes by key (ON CONFLICT, or MERGE);
- `lock_for_load`, `lock_for_ddl`: how concurrent loaders and migrators are serialised;
- `before_transaction`: session objects a dialect must create outside a transaction
  (Snowflake commits any DDL on its own);
- `engine_options`, `check_url`, `connection_error_message`: the engine and what a
  refused connection means, by setting.

A further database (BigQuery, Redshift, ...) is one more module implementing these, plus its
name in `_MODULES`.
"""

import importlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import URL

# SQLAlchemy dialect name -> module of this package. Imported on first use, so an optional
# driver (Snowflake's) is needed only where its URL is used.
_MODULES = {
    "duckdb": "duckdb_dialect",
    "postgresql": "postgres_dialect",
    "snowflake": "snowflake_dialect",
}

SetValues = Callable[[sa.TableClause], Mapping[str, sa.ColumnElement[Any]]]


class WarehouseDialect(Protocol):
    def engine_options(self, url: URL) -> dict[str, Any]: ...

    def default_connect_args(self) -> dict[str, Any]: ...

    def check_url(self, url: URL) -> URL: ...

    def connection_error_message(self, url: URL, exc: Exception) -> str | None: ...

    def before_transaction(self, connection: sa.Connection, metadata: sa.MetaData) -> None: ...

    def lock_for_ddl(self, connection: sa.Connection) -> None: ...

    def lock_for_load(self, connection: sa.Connection, table: sa.Table) -> None: ...

    def write_frame(
        self, connection: sa.Connection, table: sa.Table, frame: pl.DataFrame
    ) -> int: ...

    def staged(
        self, connection: sa.Connection, frame: pl.DataFrame, like: sa.Table
    ) -> AbstractContextManager[sa.TableClause]: ...

    def read_select(
        self, connection: sa.Connection, query: sa.Select, schema: pl.Schema
    ) -> pl.DataFrame: ...

    def read_narrow(
        self, connection: sa.Connection, table: sa.Table, schema: pl.Schema
    ) -> pl.DataFrame: ...

    def insert_new(
        self, connection: sa.Connection, table: sa.Table, rows: sa.Select, key: str
    ) -> None: ...

    def upsert(
        self,
        connection: sa.Connection,
        table: sa.Table,
        source: sa.TableClause,
        key: str,
        set_values: SetValues,
    ) -> None: ...

    def insert_if_absent(
        self, connection: sa.Connection, table: sa.Table, values: Mapping[str, Any], key: str
    ) -> bool: ...


SUPPORTED = tuple(_MODULES)


def dialect_named(name: str) -> WarehouseDialect:
    """The module for a SQLAlchemy dialect name; KeyError for an unsupported one."""
    module: Any = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return module


def dialect_of(connection: sa.Connection | sa.Engine) -> WarehouseDialect:
    return dialect_named(connection.dialect.name)
