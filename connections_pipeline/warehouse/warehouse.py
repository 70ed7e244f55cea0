"""The `Warehouse` facade: one object per warehouse URL and schema."""

import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import polars as pl
import sqlalchemy as sa

from connections_pipeline.memory_budget import DEFAULT_MEMORY_LIMIT_MB, MemoryBudget
from connections_pipeline.redaction import safe_database_url
from connections_pipeline.warehouse import bulk, notification_outbox, run_records, webhook_inbox
from connections_pipeline.warehouse.columns import (
    CONNECT_SESSIONS,
    CONNECTIONS,
    CONNECTIONS_HISTORY,
    LOADED_STATUSES,
    NEEDS_ACTION_NOTIFIED,
    NOTIFICATIONS,
    PRIMARY_KEYS,
    RAW_RESPONSES,
    REAUTH_QUEUE,
    REAUTH_QUEUE_TABLE_COLUMNS,
    SYNC_RUNS,
    TOKENS,
    WEBHOOK_EVENTS,
    columns_of,
    polars_schema,
)
from connections_pipeline.warehouse.dialects import dialect_of
from connections_pipeline.warehouse.engine import (
    connect_args_secrets,
    connection_error,
    create_warehouse_engine,
    parse_connect_args,
    parse_warehouse_url,
)
from connections_pipeline.warehouse.load import (
    LoadSummary,
    RunLoad,
    load_run,
    record_unloaded_run,
    sync_run_frame,
)
from connections_pipeline.warehouse.run_records import RawResponseRows
from connections_pipeline.warehouse.tables import (
    DEFAULT_SCHEMA,
    build_metadata,
    ensure_tables,
    validate_schema_name,
)

_REAUTH_QUEUE_POLARS: dict[str, pl.DataType] = {
    column.name: column.dtype for column in REAUTH_QUEUE_TABLE_COLUMNS
}
REAUTH_QUEUE_COLUMNS: tuple[str, ...] = tuple(_REAUTH_QUEUE_POLARS)
_REAUTH_QUEUE_TYPES: dict[str, sa.types.TypeEngine] = {
    name: sa.DateTime(timezone=True)
    if isinstance(dtype, pl.Datetime)
    else sa.Integer()
    if dtype == pl.Int32
    else sa.Text()
    for name, dtype in _REAUTH_QUEUE_POLARS.items()
}


class Warehouse:
    """Creates, migrates, loads and reads the Finch connections tables.

    Args:
        url: a SQLAlchemy URL, `duckdb:///file.duckdb`, `postgresql+psycopg://...` or
            `snowflake://USER@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE`
            (setting CONNECTIONS_WAREHOUSE_URL).
        schema: the schema holding the tables, a plain identifier
            (setting CONNECTIONS_WAREHOUSE_SCHEMA); created if missing.
        hold_connections: keep connections open between uses; off, a DuckDB file is
            opened per use (see `engine.create_warehouse_engine`).
        connect_args: the driver's own connection arguments, a mapping or its JSON text
            (setting CONNECTIONS_WAREHOUSE_CONNECT_ARGS).
        memory_limit_mb: the run's memory budget (setting CONNECTIONS_MEMORY_LIMIT_MB); an
            embedded DuckDB gets a quarter of it and spills past that (see `memory_budget`).
    """

    def __init__(
        self,
        url: str,
        schema: str = DEFAULT_SCHEMA,
        *,
        hold_connections: bool = True,
        connect_args: str | Mapping[str, Any] | None = None,
        memory_limit_mb: int = DEFAULT_MEMORY_LIMIT_MB,
    ) -> None:
        self.schema = validate_schema_name(schema)
        self.url = parse_warehouse_url(url)
        self.memory = MemoryBudget(memory_limit_mb)
        arguments = parse_connect_args(connect_args)
        self._secrets = connect_args_secrets(arguments)
        self.metadata = build_metadata(self.schema)
        self._engine = create_warehouse_engine(
            self.url, hold_connections, arguments, self.memory.duckdb_limit_mb
        )

    def __repr__(self) -> str:
        return f"Warehouse({safe_database_url(self.url)!r}, {self.schema!r})"

    def __enter__(self) -> "Warehouse":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.dispose()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def table(self, name: str) -> sa.Table:
        """The SQLAlchemy table `name` of this warehouse's schema."""
        columns_of(name)
        return self.metadata.tables[f"{self.schema}.{name}"]

    @property
    def tables(self) -> dict[str, sa.Table]:
        return {table.name: table for table in self.metadata.tables.values()}

    @contextmanager
    def _connect(self, transaction: bool) -> Iterator[sa.Connection]:
        try:
            connection = self._engine.connect()
        except sa.exc.DBAPIError as exc:
            raise self._connection_error(exc) from None
        with connection:
            if transaction:
                dialect_of(connection).before_transaction(connection, self.metadata)
                with connection.begin():
                    yield connection
            else:
                yield connection

    def _connection_error(self, exc: Exception) -> Exception:
        return connection_error(self.url, exc, self._secrets)

    def check_connection(self) -> None:
        """Open a connection and run `SELECT 1`.

        Raises:
            WarehouseConnectionError: naming CONNECTIONS_WAREHOUSE_URL and the driver's
                message, with the password removed.
        """
        try:
            with self._engine.connect() as connection:
                connection.execute(sa.select(1))
        except sa.exc.DBAPIError as exc:
            raise self._connection_error(exc) from None

    def ensure_tables(self) -> list[str]:
        """Create the schema and tables, add missing columns; idempotent.

        Returns:
            The "table.column" names added to existing tables.
        """
        with self._connect(transaction=True) as connection:
            return ensure_tables(connection, self.metadata)

    def load_run(self, run: RunLoad) -> LoadSummary:
        """Load one run's frames in one transaction (see `load.load_run`)."""
        with self._connect(transaction=True) as connection:
            return load_run(connection, self.tables, run)

    def record_unloaded_run(
        self,
        run_id: str,
        as_of: dt.datetime,
        sync_run: Mapping[str, Any],
        raw_responses: RawResponseRows | None = None,
    ) -> None:
        """Record a run that loads no snapshot (held or failed), in one transaction: its
        finch_sync_runs row and raw responses; every other table stays as it was."""
        row = sync_run_frame(run_id, as_of, sync_run)
        with self._connect(transaction=True) as connection:
            record_unloaded_run(connection, self.tables, row, raw_responses)

    def latest_loaded_run(self) -> dict[str, Any] | None:
        """The finch_sync_runs row of the run whose snapshot finch_connections holds: the
        last run that loaded one (`success` or `partial`). None before any.

        Raises:
            WarehouseConnectionError: the table cannot be read (the database went away, a
                warehouse without its tables); named by setting, without the password.
        """
        table = self.table(SYNC_RUNS)
        query = (
            sa.select(table)
            .where(table.c.status.in_(LOADED_STATUSES))
            .order_by(table.c.finished_at.desc().nulls_last(), table.c.as_of.desc())
            .limit(1)
        )
        try:
            rows = self._read(query, polars_schema(SYNC_RUNS))
        except sa.exc.DBAPIError as exc:
            raise self._connection_error(exc) from None
        return rows.row(0, named=True) if rows.height else None

    def latest_run(self) -> dict[str, Any] | None:
        """The newest finch_sync_runs row, whatever its status (a held or failed run
        included). None before any."""
        table = self.table(SYNC_RUNS)
        query = (
            sa.select(table)
            .order_by(table.c.finished_at.desc().nulls_last(), table.c.as_of.desc())
            .limit(1)
        )
        rows = self._read(query, polars_schema(SYNC_RUNS))
        return rows.row(0, named=True) if rows.height else None

    def _read(self, query: sa.Select, schema: pl.Schema) -> pl.DataFrame:
        with self._connect(transaction=False) as connection:
            return bulk.read_select(connection, query, schema)

    def row_counts(self, names: Iterable[str]) -> dict[str, int]:
        """The number of rows of each table in `names`, read in one connection."""
        with self._connect(transaction=False) as connection:
            return {
                name: int(
                    connection.execute(
                        sa.select(sa.func.count()).select_from(self.table(name))
                    ).scalar_one()
                )
                for name in names
            }

    def read_table(self, name: str) -> pl.DataFrame:
        """All rows of a warehouse table, typed as its column list, in key order."""
        table = self.table(name)
        keys = PRIMARY_KEYS[name] or tuple(column.name for column in columns_of(name))
        query = sa.select(table).order_by(*(table.c[key].asc().nulls_last() for key in keys))
        return self._read(query, polars_schema(name))

    def read_current(self) -> pl.DataFrame:
        """The current snapshot, finch_connections, with the CONNECTIONS_COLUMNS schema."""
        return self.read_table(CONNECTIONS)

    def read_current_versions(self) -> pl.DataFrame:
        """connection_key and valid_from of each connection's current history version: since
        when its tracked attributes (status included) are as they are now."""
        table = self.table(CONNECTIONS_HISTORY)
        query = sa.select(table.c.connection_key, table.c.valid_from).where(table.c.is_current)
        schema = polars_schema(CONNECTIONS_HISTORY)
        return self._read(
            query, pl.Schema({name: schema[name] for name in ("connection_key", "valid_from")})
        )

    def read_tokens(self) -> pl.DataFrame:
        return self.read_table(TOKENS)

    def read_sessions(self) -> pl.DataFrame:
        return self.read_table(CONNECT_SESSIONS)

    def read_raw_responses(self, run_id: str) -> pl.DataFrame:
        """The raw responses of one run, as written, ordered by fetch time."""
        table = self.table(RAW_RESPONSES)
        order = ("fetched_at", "endpoint", "token_fingerprint", "connection_id", "request_id")
        query = (
            sa.select(table)
            .where(table.c.run_id == run_id)
            .order_by(*(table.c[name].asc().nulls_last() for name in order))
        )
        return self._read(query, polars_schema(RAW_RESPONSES))

    def import_sessions(self, frame: pl.DataFrame) -> int:
        """Add Connect sessions not yet in the ledger; existing sessions are left untouched.

        Absent nullable columns are stored as null.

        Returns:
            The number of sessions added.
        """
        rows = run_records.conform_sessions(frame)
        with self._connect(transaction=True) as connection:
            return run_records.add_sessions(connection, self.table(CONNECT_SESSIONS), rows)

    def store_webhook_event(self, event: Mapping[str, Any]) -> bool:
        """Store one webhook event in its own transaction, unless its ID is stored already.

        Returns:
            True when stored now, False for a replayed event ID.
        """
        with self._connect(transaction=True) as connection:
            return webhook_inbox.store_event(connection, self.table(WEBHOOK_EVENTS), event)

    def pending_webhook_events(self, limit: int = 1_000) -> pl.DataFrame:
        """Webhook events not processed yet, oldest first."""
        query = webhook_inbox.pending_query(self.table(WEBHOOK_EVENTS), limit)
        return self._read(query, polars_schema(WEBHOOK_EVENTS))

    def read_webhook_events(self, event_ids: Collection[str]) -> pl.DataFrame:
        """The inbox rows of these event IDs (those stored), by event ID."""
        query = webhook_inbox.events_query(self.table(WEBHOOK_EVENTS), event_ids)
        return self._read(query, polars_schema(WEBHOOK_EVENTS))

    def mark_webhook_events(
        self, outcomes: Mapping[str, str], run_id: str | None, at: dt.datetime
    ) -> int:
        """Record each still-unprocessed event's outcome (event ID → outcome), processed by
        `run_id` at `at`, in one transaction.

        Returns:
            How many events were marked.
        """
        table = self.table(WEBHOOK_EVENTS)
        with self._connect(transaction=True) as connection:
            return webhook_inbox.mark_processed(connection, table, outcomes, run_id, at)

    def queue_notifications(
        self, rows: list[Mapping[str, Any]], announced: pl.DataFrame | None = None
    ) -> int:
        """Queue messages (one row per destination) in one transaction, skipping notification
        IDs queued before; with `announced`, make it what the digest has announced, in the
        same transaction.

        Returns:
            How many rows were queued now.
        """
        with self._connect(transaction=True) as connection:
            queued = notification_outbox.queue(connection, self.table(NOTIFICATIONS), rows)
            if announced is not None:
                table = self.table(NEEDS_ACTION_NOTIFIED)
                notification_outbox.replace_announced(connection, table, announced)
            return queued

    def pending_notifications(self, limit: int = 200) -> pl.DataFrame:
        """Messages not delivered yet, newest first."""
        query = notification_outbox.pending_query(self.table(NOTIFICATIONS), limit)
        return self._read(query, polars_schema(NOTIFICATIONS))

    def claim_notification(
        self, notification_id: str, now: dt.datetime, until: dt.datetime
    ) -> bool:
        """Take an undelivered message for sending until `until`; False when delivered or
        another sender holds it."""
        with self._connect(transaction=True) as connection:
            table = self.table(NOTIFICATIONS)
            return notification_outbox.claim(connection, table, notification_id, now, until)

    def record_notification_attempt(
        self, notification_id: str, at: dt.datetime, error: str | None
    ) -> None:
        """Record one delivery attempt: delivered when `error` is None."""
        with self._connect(transaction=True) as connection:
            table = self.table(NOTIFICATIONS)
            notification_outbox.record_attempt(connection, table, notification_id, at, error)

    def _reauth_queue_table(self) -> sa.Table:
        # Outside build_metadata on purpose: a published view for people, replaced whole on
        # every run, not one of the synced tables the schema migrations manage.
        metadata = sa.MetaData(schema=self.schema)
        columns = [
            sa.Column(name, _REAUTH_QUEUE_TYPES[name], nullable=True)
            for name in REAUTH_QUEUE_COLUMNS
        ]
        return sa.Table(REAUTH_QUEUE, metadata, *columns)

    def replace_reauth_queue(self, frame: pl.DataFrame) -> int:
        """Replace the re-auth queue table (`finch_reauth_queue`) with `frame` in one
        transaction, creating the table if missing.

        Returns:
            The number of rows written.
        """
        extra = [name for name in frame.columns if name not in REAUTH_QUEUE_COLUMNS]
        missing = [name for name in REAUTH_QUEUE_COLUMNS if name not in frame.columns]
        if extra or missing:
            raise ValueError(f"{REAUTH_QUEUE}: unexpected {extra}, missing {missing}")
        table = self._reauth_queue_table()
        rows = frame.select(list(REAUTH_QUEUE_COLUMNS))
        with self._connect(transaction=True) as connection:
            table.metadata.create_all(connection, checkfirst=True)
            connection.execute(table.delete())
            return bulk.write_frame(connection, table, rows)

    def read_reauth_queue(self) -> pl.DataFrame:
        """The re-auth queue as last published, longest in reauth first."""
        table = self._reauth_queue_table()
        schema = pl.Schema({name: _REAUTH_QUEUE_POLARS[name] for name in REAUTH_QUEUE_COLUMNS})
        query = sa.select(table).order_by(
            table.c.days_in_reauth.desc().nulls_last(), table.c.connection_id
        )
        return self._read(query, schema)

    def dispose(self) -> None:
        """Close pooled connections."""
        self._engine.dispose()
