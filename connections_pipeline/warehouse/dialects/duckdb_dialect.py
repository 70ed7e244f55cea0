"""DuckDB (a file): frames move as Arrow tables registered on the raw duckdb connection and
read by `INSERT ... SELECT`; reads come back as Arrow. ON CONFLICT for writes by key."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import sqlalchemy as sa
from sqlalchemy.engine import URL

from connections_pipeline.warehouse.dialects.common import (
    driver_errors,
    insert_if_absent_on_conflict,
    insert_new_on_conflict,
    raw,
    typed,
    upsert_on_conflict,
)

insert_new = insert_new_on_conflict
upsert = upsert_on_conflict
insert_if_absent = insert_if_absent_on_conflict


def engine_options(url: URL) -> dict[str, Any]:
    return {}


def default_connect_args() -> dict[str, Any]:
    return {}


def check_url(url: URL) -> URL:
    return url


def connection_error_message(url: URL, exc: Exception) -> str | None:
    return None


def before_transaction(connection: sa.Connection, metadata: sa.MetaData) -> None:
    return None


def lock_for_ddl(connection: sa.Connection) -> None:
    # One process at a time opens a DuckDB file for writing.
    return None


def lock_for_load(connection: sa.Connection, table: sa.Table) -> None:
    return None


@contextmanager
def registered(
    connection: sa.Connection, frame: pl.DataFrame, name: str
) -> Iterator[sa.TableClause]:
    """`frame` as a queryable relation for the rest of a `with` block.

    The frame is converted to Arrow once, so several statements (e.g. the current table
    and its history on a first load) can read the same rows without converting, re-reading
    or re-sorting them. The name is fixed per call site, so a view left behind by an aborted
    transaction (unregister fails then) is replaced, not accumulated, by the next load on
    the same connection.
    """
    driver = raw(connection)
    with driver_errors(f"register {name}", duckdb.Error):
        driver.register(name, frame.to_arrow())
    try:
        yield sa.table(name, *(sa.column(column) for column in frame.columns))
    finally:
        with suppress(duckdb.Error):
            driver.unregister(name)


@contextmanager
def parquet_view(
    connection: sa.Connection, files: Sequence[Path], name: str, columns: Sequence[str]
) -> Iterator[sa.TableClause]:
    """Local Parquet `files` as one relation for the rest of a `with` block: DuckDB scans
    them as a statement reads them, a row group at a time."""
    driver = raw(connection)
    listed = ", ".join(_sql_text(str(path)) for path in files)
    with driver_errors(f"read {len(files)} Parquet files", duckdb.Error):
        driver.execute(
            f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM read_parquet([{listed}])'
        )
    try:
        yield sa.table(name, *(sa.column(column) for column in columns))
    finally:
        with suppress(duckdb.Error):
            driver.execute(f'DROP VIEW IF EXISTS "{name}"')


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_frame(connection: sa.Connection, table: sa.Table, frame: pl.DataFrame) -> int:
    with registered(connection, frame, f"_wh_frame_{table.name}") as source:
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
    with registered(connection, frame, f"_wh_stage_{like.name}") as source:
        yield source


def read_select(connection: sa.Connection, query: sa.Select, schema: pl.Schema) -> pl.DataFrame:
    subquery = query.subquery("q")
    sql = sa.select(*(subquery.c[name] for name in schema.names())).compile(
        dialect=connection.dialect, compile_kwargs={"literal_binds": True}
    )
    with driver_errors(str(sql), duckdb.Error):
        arrow = raw(connection).sql(str(sql)).to_arrow_table()
    return typed(pl.from_arrow(arrow), schema)


def read_narrow(connection: sa.Connection, table: sa.Table, schema: pl.Schema) -> pl.DataFrame:
    return read_select(connection, sa.select(*(table.c[name] for name in schema)), schema)
