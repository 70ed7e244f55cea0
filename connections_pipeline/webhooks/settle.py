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

# The count, among a targeted sync's outcomes, of events left for a later sync.
LEFT_WAITING = "left_waiting"
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


@dataclass(frozen=True)
class Asked:
    """The connections a run called `/introspect` for: those Finch answered (any answer,
    401s included) and those whose every call failed after retries."""

    answered: frozenset[str]
    unanswered: frozenset[str]


# Call outcomes that carry no answer from Finch.
_NO_ANSWER = ("failed", "unknown")


def asked_connections(warehouse: Warehouse, run_id: str) -> Asked:
    """What the run `run_id` asked Finch about, by connection: each `/introspect` call's
    connection, from the answer or from what `finch_tokens` knows of the token (a revoked
    token's 401 names no connection)."""
    calls = warehouse.read_raw_responses(run_id).filter(pl.col("endpoint") == "introspect")
    tokens = warehouse.read_table(TOKENS).select(
        "token_fingerprint", pl.col("connection_id").alias("known_id")
    )
    named = calls.join(tokens, on="token_fingerprint", how="left").select(
        pl.coalesce("connection_id", "known_id").alias("connection_id"), "outcome"
    )
    named = named.filter(pl.col("connection_id").is_not_null())
    answered = set(named.filter(~pl.col("outcome").is_in(_NO_ANSWER))["connection_id"])
    return Asked(frozenset(answered), frozenset(set(named["connection_id"]) - answered))


def settle_targeted(warehouse: Warehouse, run_id: str, work: InboxWork) -> Settled:
    """Mark the events of a targeted sync that loaded: synced, or unknown connection. An
    event whose connection's calls all failed stays unprocessed (its row is kept, marked
    stale): the next full sync answers it."""
    asked = asked_connections(warehouse, run_id)
    waiting = work.events.filter(pl.col("connection_id").is_in(list(asked.unanswered)))
    result = outcomes(
        work.events.join(waiting.select("event_id"), on="event_id", how="anti"), asked.answered
    )
    warehouse.mark_webhook_events(result, run_id, datetime.now(UTC))
    unknown = sorted(
        {
            connection_id
            for event_id, connection_id in work.events.select(
                "event_id", "connection_id"
            ).iter_rows()
            if result.get(event_id) == WEBHOOK_UNKNOWN_CONNECTION
        }
    )
    counts = dict(Counter(result.values()))
    if waiting.height:
        counts[LEFT_WAITING] = waiting.height
    return Settled(counts, tuple(unknown))


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
    answered = asked_connections(warehouse, run_id).answered
    result = {
        event_id: WEBHOOK_RECONCILED if outcome == WEBHOOK_SYNCED else outcome
        for event_id, outcome in outcomes(waiting, answered).items()
        if outcome != WEBHOOK_UNKNOWN_CONNECTION
    }
    return warehouse.mark_webhook_events(result, run_id, datetime.now(UTC))
