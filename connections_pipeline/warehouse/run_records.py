"""Writes of the session ledger and the raw responses, inside a caller's transaction.

`Warehouse` runs each on its own for callers that write only that; a sync run does all of
them inside its one load transaction (see `load.load_run`), so a run killed at any point
leaves none of its writes behind.
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow.parquet as pq
import sqlalchemy as sa

from connections_pipeline.warehouse import bulk
from connections_pipeline.warehouse.columns import (
    CONNECT_SESSIONS,
    RAW_RESPONSES,
    SESSION_PROGRESS_COLUMNS,
    conform,
    duplicated_keys,
)
from connections_pipeline.warehouse.dialects import dialect_of, duckdb_dialect


def conform_sessions(frame: pl.DataFrame) -> pl.DataFrame:
    """Session rows as the ledger stores them; absent nullable columns become null."""
    rows = conform(frame, CONNECT_SESSIONS, missing_as_null=True)
    check_unique_sessions(rows)
    return rows


def conform_session_progress(frame: pl.DataFrame) -> pl.DataFrame:
    rows = conform(frame, CONNECT_SESSIONS, only=("session_id", *SESSION_PROGRESS_COLUMNS))
    check_unique_sessions(rows)
    return rows


class RawChunks(Protocol):
    """Raw responses too large to hold at once (a sync's spool), kept in Parquet files.

    Their rows are stored with two last touches: a successful `/introspect` row takes the
    connection its answer names (`answered`: token_fingerprint, answered_id), and a
    `fetched_at` outside (earliest, latest) of `fetch_window` becomes its third value.
    """

    files: tuple[Path, ...]
    answered: pl.DataFrame

    @property
    def fetch_window(self) -> tuple[dt.datetime, dt.datetime, dt.datetime]: ...

    def frames(self) -> Iterator[pl.DataFrame]:
        """The rows as stored, one file at a time."""
        ...


RawResponseRows = pl.DataFrame | RawChunks


def conform_raw_responses(run_id: str, frame: pl.DataFrame) -> pl.DataFrame:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
    return conform(frame, RAW_RESPONSES, {"run_id": run_id})


def check_unique_sessions(rows: pl.DataFrame) -> None:
    duplicates = duplicated_keys(rows, ("session_id",))
    if duplicates:
        raise ValueError(f"{CONNECT_SESSIONS}: duplicate session_id {duplicates}")


def sessions_not_stored(stored: pl.DataFrame, incoming: pl.DataFrame) -> pl.DataFrame:
    """The incoming sessions `add_sessions` would add to the `stored` ledger, conformed:
    stored sessions win over incoming ones."""
    return conform_sessions(incoming).join(stored.select("session_id"), on="session_id", how="anti")


def replace_raw_responses(
    connection: sa.Connection, table: sa.Table, run_id: str, rows: RawResponseRows
) -> int:
    """Replace the raw responses stored for `run_id` with `rows`, a chunk at a time."""
    connection.execute(table.delete().where(table.c.run_id == run_id))
    if isinstance(rows, pl.DataFrame):
        return bulk.write_frame(connection, table, conform_raw_responses(run_id, rows))
    if connection.dialect.name == "duckdb":
        return _insert_parquet_files(connection, table, rows)
    return sum(
        bulk.write_frame(connection, table, conform_raw_responses(run_id, chunk))
        for chunk in rows.frames()
    )


def _insert_parquet_files(connection: sa.Connection, table: sa.Table, rows: RawChunks) -> int:
    """DuckDB reads the files itself, streaming, within its memory limit: no frame of the
    bodies is ever built in this process."""
    if not rows.files:
        return 0
    names = [column.name for column in table.columns]
    earliest, latest, as_of = rows.fetch_window
    with (
        duckdb_dialect.parquet_view(connection, rows.files, "_wh_raw_files", names) as source,
        duckdb_dialect.registered(connection, rows.answered, "_wh_raw_answered") as answered,
    ):
        fetched = source.c.fetched_at
        stamp = table.c.fetched_at.type
        values = {
            **{name: source.c[name] for name in names},
            "connection_id": sa.case(
                (
                    (source.c.endpoint == "introspect") & (source.c.outcome == "ok"),
                    answered.c.answered_id,
                ),
                else_=source.c.connection_id,
            ),
            "fetched_at": sa.case(
                (
                    fetched.between(sa.literal(earliest, stamp), sa.literal(latest, stamp)),
                    fetched,
                ),
                else_=sa.literal(as_of, stamp),
            ),
        }
        joined = source.outerjoin(
            answered, source.c.token_fingerprint == answered.c.token_fingerprint
        )
        query = sa.select(*(values[name] for name in names)).select_from(joined)
        connection.execute(table.insert().from_select(names, query))
    return sum(pq.ParquetFile(path).metadata.num_rows for path in rows.files)


def add_sessions(connection: sa.Connection, table: sa.Table, rows: pl.DataFrame) -> int:
    """Add conformed sessions not yet in the ledger; existing ones are left untouched."""
    with bulk.staged(connection, rows, table) as staged:
        is_new = ~staged.c.session_id.in_(sa.select(table.c.session_id))
        added = connection.execute(
            sa.select(sa.func.count()).select_from(staged).where(is_new)
        ).scalar_one()
        new_rows = sa.select(*(staged.c[name] for name in rows.columns)).where(is_new)
        dialect_of(connection).insert_new(connection, table, new_rows, "session_id")
    return added


def set_session_progress(connection: sa.Connection, table: sa.Table, rows: pl.DataFrame) -> int:
    """Update the progress columns of the ledger sessions in conformed `rows`."""
    with bulk.staged(connection, rows, table) as staged:
        matches = table.c.session_id == staged.c.session_id
        updated = connection.execute(
            sa.select(sa.func.count()).select_from(table.join(staged, matches))
        ).scalar_one()
        connection.execute(
            table.update()
            .where(matches)
            .values({name: staged.c[name] for name in SESSION_PROGRESS_COLUMNS})
        )
    return updated
