"""Writes of the session ledger and the raw responses, inside a caller's transaction.

`Warehouse` runs each on its own for callers that write only that; a sync run does all of
them inside its one load transaction (see `load.load_run`), so a run killed at any point
leaves none of its writes behind.
"""

import polars as pl
import sqlalchemy as sa

from connections_pipeline.warehouse import bulk
from connections_pipeline.warehouse.columns import (
    CONNECT_SESSIONS,
    RAW_RESPONSES,
    SESSION_PROGRESS_COLUMNS,
    conform,
    duplicated_keys,
)
from connections_pipeline.warehouse.dialects import dialect_of


def conform_sessions(frame: pl.DataFrame) -> pl.DataFrame:
    """Session rows as the ledger stores them; absent nullable columns become null."""
    rows = conform(frame, CONNECT_SESSIONS, missing_as_null=True)
    check_unique_sessions(rows)
    return rows


def conform_session_progress(frame: pl.DataFrame) -> pl.DataFrame:
    rows = conform(frame, CONNECT_SESSIONS, only=("session_id", *SESSION_PROGRESS_COLUMNS))
    check_unique_sessions(rows)
    return rows


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
    connection: sa.Connection, table: sa.Table, run_id: str, rows: pl.DataFrame
) -> int:
    """Replace the raw responses stored for `run_id` with conformed `rows`."""
    connection.execute(table.delete().where(table.c.run_id == run_id))
    return bulk.write_frame(connection, table, rows)


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
