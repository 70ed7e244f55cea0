"""The webhook inbox, `finch_webhook_events`: store an event once, read what waits, mark done.

An event is one row, written when it arrives; so these are single-row statements, not the
bulk paths of a sync's load. Every write is idempotent: storing an event ID twice keeps the
first row, and marking an event processed never touches one already processed.
"""

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connections_pipeline.warehouse.columns import WEBHOOK_OUTCOMES, check_row
from connections_pipeline.warehouse.dialects import dialect_of

_SLICE = 1_000


def store_event(connection: sa.Connection, table: sa.Table, event: Mapping[str, Any]) -> bool:
    """Insert one event unless its event ID is stored already.

    Returns:
        True when this call stored it, False for a replay (the stored row is kept as is).
    """
    values = check_row(table.name, event)
    for name in ("finch_timestamp", "received_at"):
        if event[name].tzinfo is None:
            raise ValueError(f"{table.name}.{name}: naive datetimes are ambiguous")
    return dialect_of(connection).insert_if_absent(connection, table, values, "event_id")


def pending_query(table: sa.Table, limit: int) -> sa.Select:
    """Events not processed yet, oldest first."""
    return (
        sa.select(table)
        .where(table.c.processed_at.is_(None))
        .order_by(table.c.received_at, table.c.event_id)
        .limit(limit)
    )


def events_query(table: sa.Table, event_ids: Collection[str]) -> sa.Select:
    return sa.select(table).where(table.c.event_id.in_(list(event_ids))).order_by(table.c.event_id)


def mark_processed(
    connection: sa.Connection,
    table: sa.Table,
    outcomes: Mapping[str, str],
    run_id: str | None,
    at: datetime,
) -> int:
    """Record the outcome of each event ID in `outcomes` that is still unprocessed.

    Returns:
        How many events this call marked.
    """
    unknown = sorted(set(outcomes.values()) - set(WEBHOOK_OUTCOMES))
    if unknown:
        raise ValueError(f"{table.name}: unknown outcomes {unknown}")
    marked = 0
    by_outcome: dict[str, list[str]] = {}
    for event_id, outcome in outcomes.items():
        by_outcome.setdefault(outcome, []).append(event_id)
    for outcome, event_ids in sorted(by_outcome.items()):
        # In slices: PostgreSQL takes at most 65,535 parameters per statement.
        for start in range(0, len(event_ids), _SLICE):
            statement = (
                table.update()
                .where(
                    table.c.event_id.in_(event_ids[start : start + _SLICE]),
                    table.c.processed_at.is_(None),
                )
                .values(processed_at=at, processed_by_run=run_id, outcome=outcome)
            )
            marked += connection.execute(statement).rowcount
    return marked
