"""A sync's side of the inbox: what a targeted sync asks about, and marking events done."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from connections_pipeline.warehouse import (
    TOKENS,
    WEBHOOK_RECONCILED,
    WEBHOOK_SYNCED,
    WEBHOOK_UNKNOWN_CONNECTION,
    Warehouse,
)
from connections_pipeline.webhooks.plan import Targets, outcomes, targets

# Events a full sync looks at; more than this waiting means the sensor is off, and the
# rest are looked at by the next sync.
PENDING_LIMIT = 100_000


@dataclass(frozen=True)
class InboxWork:
    """The inbox rows a targeted sync was launched for and what it will ask Finch."""

    events: pl.DataFrame
    targets: Targets
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settled:
    """What marking the events came to: how many per outcome, and the connections that
    webhook events named but the token source does not know."""

    counts: dict[str, int] = field(default_factory=dict)
    unknown_connections: tuple[str, ...] = ()


def inbox_work(warehouse: Warehouse, event_ids: Sequence[str]) -> InboxWork:
    """Read the events a targeted sync was launched for. IDs not in the inbox (a run config
    typed by hand) are reported in `missing` and ignored."""
    events = warehouse.read_webhook_events(event_ids)
    missing = tuple(sorted(set(event_ids) - set(events["event_id"].to_list())))
    return InboxWork(events, targets(events), missing)


def asked_connections(warehouse: Warehouse, run_id: str) -> set[str]:
    """The connections the run `run_id` asked Finch about: the connection IDs of its
    `/introspect` calls, answered or not, by the answer or by what `finch_tokens` knows of
    the token (a revoked token's 401 names no connection)."""
    calls = warehouse.read_raw_responses(run_id).filter(pl.col("endpoint") == "introspect")
    tokens = warehouse.read_table(TOKENS).select(
        "token_fingerprint", pl.col("connection_id").alias("known_id")
    )
    named = calls.join(tokens, on="token_fingerprint", how="left").select(
        pl.coalesce("connection_id", "known_id").alias("connection_id")
    )
    return set(named["connection_id"].drop_nulls().to_list())


def settle_targeted(warehouse: Warehouse, run_id: str, work: InboxWork) -> Settled:
    """Mark the events of a targeted sync that loaded: synced, or unknown connection."""
    result = outcomes(work.events, asked_connections(warehouse, run_id))
    warehouse.mark_webhook_events(result, run_id, datetime.now(UTC))
    unknown = sorted(
        {
            connection_id
            for event_id, connection_id in work.events.select(
                "event_id", "connection_id"
            ).iter_rows()
            if result[event_id] == WEBHOOK_UNKNOWN_CONNECTION
        }
    )
    return Settled(dict(Counter(result.values())), tuple(unknown))


def settle_full(warehouse: Warehouse, run_id: str, started: datetime) -> int:
    """After a full sync that loaded: the events that arrived before it started and whose
    connection it asked Finch about are answered by it (`reconciled`); events no sync needs
    are `ignored`. An event whose connection the run did not ask about (deferred by the
    run's budget, or unknown) waits for the sensor.

    Returns:
        How many events it marked.
    """
    waiting = warehouse.pending_webhook_events(PENDING_LIMIT).filter(
        pl.col("received_at") < started
    )
    if waiting.is_empty():
        return 0
    result = {
        event_id: WEBHOOK_RECONCILED if outcome == WEBHOOK_SYNCED else outcome
        for event_id, outcome in outcomes(waiting, asked_connections(warehouse, run_id)).items()
        if outcome != WEBHOOK_UNKNOWN_CONNECTION
    }
    return warehouse.mark_webhook_events(result, run_id, datetime.now(UTC))
