"""What the inbox asks for: which events start a targeted sync, which connections it asks
Finch about, and what each event came to. Plain functions over inbox frames."""

from collections.abc import Collection
from dataclasses import dataclass

import polars as pl

from connections_pipeline.warehouse import (
    WEBHOOK_IGNORED,
    WEBHOOK_SYNCED,
    WEBHOOK_UNKNOWN_CONNECTION,
)
from connections_pipeline.webhooks.events import actionable, is_job_completion


@dataclass(frozen=True)
class TickPlan:
    """One sensor tick's decision.

    Attributes:
        launch: event IDs a new targeted sync should process, oldest first.
        ignored: event IDs no sync needs (another event type, or no connection ID).
        in_flight: event IDs an earlier tick launched a sync for, still unprocessed.
    """

    launch: tuple[str, ...]
    ignored: tuple[str, ...]
    in_flight: tuple[str, ...]


@dataclass(frozen=True)
class Targets:
    """What a targeted sync asks Finch: `/introspect` for the tokens of `connection_ids`,
    and `/jobs/automated` for `jobs_for` (connections that reported a completed job)."""

    connection_ids: frozenset[str]
    jobs_for: frozenset[str]


def plan_tick(pending: pl.DataFrame, launched: Collection[str], limit: int) -> TickPlan:
    """Split the unprocessed events (oldest first) for one tick.

    Args:
        pending: unprocessed inbox rows, oldest first.
        launched: event IDs earlier ticks launched syncs for (the sensor's cursor).
        limit: at most this many events per targeted sync; the rest wait for the next tick.
    """
    launched = set(launched)
    launch: list[str] = []
    ignored: list[str] = []
    in_flight: list[str] = []
    for event_id, event_type, connection_id in pending.select(
        "event_id", "event_type", "connection_id"
    ).iter_rows():
        if event_id in launched:
            in_flight.append(event_id)
        elif not actionable(event_type, connection_id):
            ignored.append(event_id)
        elif len(launch) < limit:
            launch.append(event_id)
    return TickPlan(tuple(launch), tuple(ignored), tuple(in_flight))


def targets(events: pl.DataFrame) -> Targets:
    """The connections a targeted sync for these inbox rows asks about. Only each event's
    connection ID and type are used: what the event says about the connection is not."""
    acting = [
        (connection_id, event_type)
        for connection_id, event_type in events.select("connection_id", "event_type").iter_rows()
        if actionable(event_type, connection_id)
    ]
    return Targets(
        connection_ids=frozenset(connection_id for connection_id, _ in acting),
        jobs_for=frozenset(cid for cid, event_type in acting if is_job_completion(event_type)),
    )


def outcomes(events: pl.DataFrame, asked: Collection[str]) -> dict[str, str]:
    """Each event's outcome once the targeted sync loaded: `synced` when the sync asked Finch
    about its connection, `unknown_connection` when no token of it was known to ask with,
    `ignored` when it named no connection to act on."""
    asked = set(asked)
    result: dict[str, str] = {}
    for event_id, event_type, connection_id in events.select(
        "event_id", "event_type", "connection_id"
    ).iter_rows():
        if not actionable(event_type, connection_id):
            result[event_id] = WEBHOOK_IGNORED
        elif connection_id in asked:
            result[event_id] = WEBHOOK_SYNCED
        else:
            result[event_id] = WEBHOOK_UNKNOWN_CONNECTION
    return result
