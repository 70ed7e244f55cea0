"""Bulk movement of Polars frames in and out of the warehouse, inside the caller's transaction.

PostgreSQL: COPY through psycopg on the raw DBAPI connection of the SQLAlchemy transaction.
Frames are written as CSV by Polars in chunks; psycopg's queued writer sends one chunk while
Polars formats the next. Reads use `COPY (SELECT ...) TO STDOUT` and Polars' CSV reader,
with timestamps sent as fixed-format UTC text and booleans as 0/1, so parsing is exact.

DuckDB: the frame's Arrow table is registered on the raw duckdb connection and read by an
`INSERT ... SELECT`; reads come back as Arrow.

Data rows never go through row-by-row INSERT or executemany.
"""

import io
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import duckdb
import polars as pl
import psycopg
import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter

# Rows per CSV chunk handed to COPY: large enough to amortise the per-call cost, small
# enough that formatting the next chunk overlaps with the server parsing this one.
COPY_CHUNK_ROWS = 50_000
_CSV_DATETIME = "%Y-%m-%dT%H:%M:%S%.6f+00:00"


@contextmanager
def _driver_errors(statement: str) -> Iterator[None]:
    # Errors raised on the raw driver connection surface as SQLAlchemy's DBAPIError
    # subclasses (IntegrityError, ...), like those of statements run through SQLAlchemy.
    try:
        yield
    except (psycopg.Error, duckdb.Error) as exc:
        base = psycopg.Error if isinstance(exc, psycopg.Error) else duckdb.Error
        raise sa.exc.DBAPIError.instance(statement, None, exc, base) from exc


@contextmanager
def _registered(connection: sa.Connection, name: str, frame: pl.DataFrame) -> Iterator[None]:
    # DuckDB: expose the frame as a view for the duration of the block. The name is fixed
    # per call site, so a view left behind by an aborted transaction (unregister fails
    # then) is replaced, not accumulated, by the next load on the same connection.
    raw = _raw(connection)
    with _driver_errors(f"register {name}"):
        raw.register(name, frame.to_arrow())
    try:
        yield
    finally:
        with suppress(duckdb.Error):
            raw.unregister(name)


def is_postgres(connection: sa.Connection) -> bool:
    return connection.dialect.name == "postgresql"


def _raw(connection: sa.Connection):
    return connection.connection.driver_connection


def _quoted_columns(connection: sa.Connection, names: list[str]) -> str:
    preparer = connection.dialect.identifier_preparer
    return ", ".join(preparer.quote(name) for name in names)


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
        f"COPY {target} ({_quoted_columns(connection, frame.columns)}) FROM STDIN (FORMAT csv)"
    )
    prepared = _csv_ready(frame)
    with (
        _driver_errors(statement),
        _raw(connection).cursor() as cursor,
        cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy,
    ):
        for offset in range(0, prepared.height, COPY_CHUNK_ROWS):
            buffer = io.BytesIO()
            prepared.slice(offset, COPY_CHUNK_ROWS).write_csv(
                buffer, include_header=False, datetime_format=_CSV_DATETIME
            )
            copy.write(buffer.getvalue())


@contextmanager
def registered(
    connection: sa.Connection, frame: pl.DataFrame, name: str
) -> Iterator[sa.TableClause]:
    """DuckDB only: `frame` as a queryable relation for the rest of a `with` block.

    The frame is converted to Arrow once, so several statements (e.g. the current table
    and its history on a first load) can read the same rows without converting, re-reading
    or re-sorting them.
    """
    if is_postgres(connection):
        raise ValueError("registered() is DuckDB-only; PostgreSQL stages with COPY")
    with _registered(connection, name, frame):
        yield sa.table(name, *(sa.column(column) for column in frame.columns))


def write_frame(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    """Append every row of `frame` to `table` through the dialect's bulk path.

    The frame's columns must be a subset of the table's, with matching dtypes.

    Returns:
        The number of rows written.
    """
    if frame.height == 0:
        return 0
    if is_postgres(connection):
        target = connection.dialect.identifier_preparer.format_table(table)
        _copy_in(connection, target, frame)
        return frame.height
    name = f"_wh_frame_{table.name}"
    with _registered(connection, name, frame):
        source = sa.table(name, *(sa.column(column) for column in frame.columns))
        connection.execute(
            table.insert().from_select(
                frame.columns, sa.select(*(source.c[column] for column in frame.columns))
            )
        )
    return frame.height


@contextmanager
def staged(
    connection: sa.Connection, frame: pl.DataFrame, like: sa.Table
) -> Iterator[sa.TableClause]:
    """Make `frame` queryable as a table for the rest of a `with` block.

    PostgreSQL: a temporary table (dropped at the end of the block or the transaction)
    filled by COPY. DuckDB: the Arrow table registered on the raw connection.

    Args:
        connection: the transaction's connection.
        frame: rows to stage; its columns must exist in `like`.
        like: the warehouse table whose column types the stage copies.

    Yields:
        A selectable with one column per frame column.
    """
    name = f"_wh_stage_{like.name}"
    if is_postgres(connection):
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
        return
    with _registered(connection, name, frame):
        yield sa.table(name, *(sa.column(column) for column in frame.columns))


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
    """Every row of a few text or integer columns of `table` (named as in `schema`).

    PostgreSQL: one array per column, in a single row, in the binary format. COPY sends a
    message per row, and for rows this narrow the messages cost more than the data.
    """
    if not is_postgres(connection):
        return read_select(connection, sa.select(*(table.c[name] for name in schema)), schema)
    arrays = sa.select(*(sa.func.array_agg(table.c[name]) for name in schema))
    statement = str(arrays.compile(dialect=connection.dialect))
    with _driver_errors(statement), _raw(connection).cursor(binary=True) as cursor:
        row = cursor.execute(statement).fetchone()
    return pl.DataFrame(
        {name: values or [] for name, values in zip(schema, row, strict=True)}, schema=schema
    )


def read_select(connection: sa.Connection, query: sa.Select, schema: pl.Schema) -> pl.DataFrame:
    """Run `query` (its output columns named as in `schema`) and return a typed frame."""
    subquery = query.subquery("q")
    if is_postgres(connection):
        wrapped = sa.select(
            *(
                _transport_column(subquery.c[name], dtype).label(name)
                for name, dtype in schema.items()
            )
        )
        sql = wrapped.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
        buffer = io.BytesIO()
        statement = f"COPY ({sql}) TO STDOUT (FORMAT csv, FORCE_QUOTE *)"
        with (
            _driver_errors(statement),
            _raw(connection).cursor() as cursor,
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
    sql = sa.select(*(subquery.c[name] for name in schema.names())).compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    with _driver_errors(str(sql)):
        arrow = _raw(connection).sql(str(sql)).to_arrow_table()
    frame = pl.from_arrow(arrow)
    if frame.height == 0:
        return pl.DataFrame(schema=schema)
    return frame.select(
        (
            pl.col(name).dt.convert_time_zone("UTC")
            if isinstance(dtype, pl.Datetime)
            else pl.col(name)
        ).cast(dtype)
        for name, dtype in schema.items()
    )
