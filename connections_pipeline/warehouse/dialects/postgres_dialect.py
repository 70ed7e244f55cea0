"""PostgreSQL: COPY through psycopg 3 for bulk movement, ON CONFLICT for writes by key.

Frames are written as CSV by Polars in chunks; psycopg's queued writer sends one chunk while
Polars formats the next. Reads use `COPY (SELECT ...) TO STDOUT` and Polars' CSV reader,
with timestamps sent as fixed-format UTC text and booleans as 0/1, so parsing is exact.
"""

import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import psycopg
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import URL

from connections_pipeline.warehouse.dialects.common import (
    driver_errors,
    insert_if_absent_on_conflict,
    insert_new_on_conflict,
    quoted_columns,
    raw,
    upsert_on_conflict,
)

# Rows per CSV chunk handed to COPY: large enough to amortise the per-call cost, small
# enough that formatting the next chunk overlaps with the server parsing this one.
COPY_CHUNK_ROWS = 50_000
_CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.6f+00:00"
# Any fixed number: two processes creating the same tables at once would race on the catalog.
_DDL_LOCK = 0x46494E4348

insert_new = insert_new_on_conflict
upsert = upsert_on_conflict
insert_if_absent = insert_if_absent_on_conflict


def engine_options(url: URL) -> dict[str, Any]:
    return {"pool_pre_ping": True}


def default_connect_args() -> dict[str, Any]:
    return {}


def check_url(url: URL) -> URL:
    if not url.database:
        raise ValueError("names no database")
    return url.set(drivername="postgresql+psycopg")


def connection_error_message(url: URL, exc: Exception) -> str | None:
    return None


def before_transaction(connection: sa.Connection, metadata: sa.MetaData) -> None:
    return None


def lock_for_ddl(connection: sa.Connection) -> None:
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_DDL_LOCK)))


def lock_for_load(connection: sa.Connection, table: sa.Table) -> None:
    # Serialises concurrent loads of the same warehouse; plain SELECTs are not blocked.
    name = connection.dialect.identifier_preparer.format_table(table)
    connection.execute(sa.text(f"LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE"))


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    # UTC instants as naive wall time; the format string appends the +00:00 offset, so
    # the server's TimeZone setting plays no part.
    return frame.with_columns(
        pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    )


def _copy_in(connection: sa.Connection, target: str, frame: pl.DataFrame) -> None:
    statement = (
        f"COPY {target} ({quoted_columns(connection, frame.columns)}) FROM STDIN (FORMAT csv)"
    )
    prepared = _csv_ready(frame)
    with (
        driver_errors(statement, psycopg.Error),
        raw(connection).cursor() as cursor,
        cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy,
    ):
        for offset in range(0, prepared.height, COPY_CHUNK_ROWS):
            buffer = io.BytesIO()
            prepared.slice(offset, COPY_CHUNK_ROWS).write_csv(
                buffer, include_header=False, datetime_format=_CSV_DATETIME
            )
            copy.write(buffer.getvalue())


def write_frame(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    target = connection.dialect.identifier_preparer.format_table(table)
    _copy_in(connection, target, frame)
    return frame.height


@contextmanager
def staged(connection: sa.Connection, frame: pl.DataFrame, like: sa.Table) -> Iterator[sa.Table]:
    """A temporary table (dropped at the end of the block or the transaction) filled by
    COPY."""
    name = f"_wh_stage_{like.name}"
    temporary = sa.Table(
        name,
        sa.MetaData(),
        *(sa.Column(column, like.c[column].type) for column in frame.columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    temporary.create(connection)
    if frame.height:
        _copy_in(connection, connection.dialect.identifier_preparer.quote(name), frame)
    connection.execute(sa.text(f"ANALYZE {name}"))
    yield temporary
    # Dropped here on success; after an error the rollback removes it.
    temporary.drop(connection)


def _transport_column(column: sa.ColumnElement, dtype: pl.DataType) -> sa.ColumnElement:
    if isinstance(dtype, pl.Datetime):
        # UTC wall time with a fixed format: independent of the session's TimeZone and
        # DateStyle, exact to the microsecond, and far cheaper than EXTRACT(EPOCH) numerics.
        utc = sa.func.timezone("UTC", column)
        return sa.func.to_char(utc, "YYYY-MM-DD HH24:MI:SS.US")
    if dtype == pl.Boolean:
        return sa.cast(column, sa.Integer)
    return column


def _transport_dtype(dtype: pl.DataType) -> pl.DataType:
    if isinstance(dtype, pl.Datetime):
        return pl.Utf8()
    if dtype == pl.Boolean:
        return pl.Int8()
    return dtype


def _from_transport(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    expressions = []
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Datetime):
            expression = (
                pl.col(name)
                .str.to_datetime("%Y-%m-%d %H:%M:%S%.6f", time_unit="us")
                .dt.replace_time_zone("UTC")
            )
        elif dtype == pl.Boolean:
            expression = pl.col(name).cast(pl.Boolean)
        else:
            expression = pl.col(name).cast(dtype)
        expressions.append(expression.alias(name))
    return frame.select(expressions)


def read_narrow(connection: sa.Connection, table: sa.Table, schema: pl.Schema) -> pl.DataFrame:
    """One array per column, in a single row, in the binary format: COPY sends a message
    per row, and for rows this narrow the messages cost more than the data."""
    arrays = sa.select(*(sa.func.array_agg(table.c[name]) for name in schema))
    statement = str(arrays.compile(dialect=connection.dialect))
    with driver_errors(statement, psycopg.Error), raw(connection).cursor(binary=True) as cursor:
        row = cursor.execute(statement).fetchone()
    return pl.DataFrame(
        {name: values or [] for name, values in zip(schema, row, strict=True)}, schema=schema
    )


def read_select(connection: sa.Connection, query: sa.Select, schema: pl.Schema) -> pl.DataFrame:
    subquery = query.subquery("q")
    wrapped = sa.select(
        *(_transport_column(subquery.c[name], dtype).label(name) for name, dtype in schema.items())
    )
    sql = wrapped.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    buffer = io.BytesIO()
    statement = f"COPY ({sql}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)"
    with (
        driver_errors(statement, psycopg.Error),
        raw(connection).cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for chunk in copy:
            buffer.write(chunk)
    if buffer.tell() == 0:
        return pl.DataFrame(schema=schema)
    transport = pl.read_csv(
        buffer.getvalue(),
        has_header=False,
        schema={name: _transport_dtype(dtype) for name, dtype in schema.items()},
    )
    return _from_transport(transport, schema)
