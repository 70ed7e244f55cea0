"""The notification outbox, `finch_notifications`, and what the digest last announced.

A message is queued (one row per destination) before anything is sent, in the transaction
that decides it; a sender claims a row, tries it and records the outcome. Queuing a
notification ID twice keeps the first row, so a retried step queues nothing new; a claim
keeps two senders (a run and the sensor) from sending one row at once.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from connections_pipeline.warehouse import bulk
from connections_pipeline.warehouse.columns import check_row, conform
from connections_pipeline.warehouse.dialects import dialect_of


def queue(connection: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert each row whose notification ID is not stored yet.

    Returns:
        How many rows this call queued.
    """
    queued = 0
    for row in rows:
        values = check_row(table.name, row)
        queued += dialect_of(connection).insert_if_absent(
            connection, table, values, "notification_id"
        )
    return queued


def replace_announced(connection: sa.Connection, table: sa.Table, rows: pl.DataFrame) -> int:
    """Make `rows` the connections the digest has announced."""
    connection.execute(table.delete())
    return bulk.write_frame(connection, table, conform(rows, table.name))


def pending_query(table: sa.Table, limit: int) -> sa.Select:
    """Messages not delivered yet, newest first: a sender tries what its own step queued
    before older messages whose destination may still be down."""
    return (
        sa.select(table)
        .where(table.c.sent_at.is_(None))
        .order_by(table.c.created_at.desc(), table.c.notification_id)
        .limit(limit)
    )


def claim(
    connection: sa.Connection, table: sa.Table, notification_id: str, now: datetime, until: datetime
) -> bool:
    """Take the undelivered row for sending until `until`, unless another sender holds it."""
    statement = (
        table.update()
        .where(
            table.c.notification_id == notification_id,
            table.c.sent_at.is_(None),
            sa.or_(table.c.claimed_until.is_(None), table.c.claimed_until < now),
        )
        .values(claimed_until=until)
    )
    return connection.execute(statement).rowcount == 1


def record_attempt(
    connection: sa.Connection,
    table: sa.Table,
    notification_id: str,
    at: datetime,
    error: str | None,
) -> None:
    """Count one delivery attempt: delivered at `at` when `error` is None, else why not."""
    connection.execute(
        table.update()
        .where(table.c.notification_id == notification_id)
        .values(
            attempts=table.c.attempts + 1,
            last_attempt_at=at,
            last_error=error,
            sent_at=at if error is None else None,
            claimed_until=None,
        )
    )
