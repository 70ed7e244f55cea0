"""Which tokens a run asks Finch about when it cannot ask about all of them.

Finch's limits, not our CPU, bound a run: 1,000 requests per IP per 5 minutes and 20
`/employer/company` calls a minute. A run with a request budget, a deadline or a target
(only some connections) polls whole connections in priority order; the rest are deferred:
they keep their stored rows as they are, neither refreshed nor marked stale, and the next
run takes them first once they are the oldest.
"""

import math
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from connections_pipeline import concepts

# Priority classes, most urgent first.
NEVER_SEEN, NEEDS_ATTENTION, KNOWN = 0, 1, 2
# Statuses worth asking about again before the healthy rest: the employer must act, or
# Finch has not finished connecting.
ATTENTION_STATUSES: tuple[str, ...] = (
    *concepts.NEEDS_ACTION_STATUSES,
    concepts.PENDING_STATUS,
    concepts.PROCESSING,
)
# Finch's published windows at time scale 1: per IP 1,000 requests per 5 minutes, and
# `/employer/company` 20 calls per minute per application.
IP_SECONDS_PER_REQUEST = 300 / 1000
COMPANY_SECONDS_PER_CALL = 60 / 20
COMPANY_BURST = 20
# The client's pace: 19 a minute, evenly spaced (its safety margin under Finch's 20).
PACED_COMPANY_SECONDS_PER_CALL = 60 / 19


@dataclass(frozen=True)
class RunBudget:
    """How much of Finch one run may use.

    Attributes:
        max_requests: requests the run may send (providers, introspections, follow-ups);
            None for no limit.
        deadline: how long the introspections may take before the rest are deferred.
        company_share: the largest share of the run's time spent waiting on
            `/employer/company`'s 20-a-minute limit; names beyond it wait for later runs.
    """

    max_requests: int | None = None
    deadline: timedelta | None = None
    company_share: float = 0.5


@dataclass(frozen=True)
class PollingPlan:
    """The tokens to poll, in priority order, and what is left for the next run."""

    polled: list[str]
    deferred: list[str]
    # What the polled connections will cost: a request per token, and a job listing per
    # connection never seen.
    requests: int = 0


def polling_order(
    token_source: pl.DataFrame, previous: pl.DataFrame, previous_tokens: pl.DataFrame
) -> pl.DataFrame:
    """token_fingerprint, group (the connection, or the token when none is known), priority,
    last_seen_at, cost (requests the group takes at most: one per token, plus
    `/jobs/automated` once for a connection never seen) — ordered most urgent first."""
    known = previous_tokens.select(
        "token_fingerprint",
        pl.col("connection_id").alias("known_connection_id"),
        "last_seen_at",
    )
    statuses = previous.filter(pl.col("connection_id").is_not_null()).select(
        pl.col("connection_id").alias("group"), "connection_status"
    )
    tokens = (
        token_source.select("token_fingerprint", "source_connection_id")
        .join(known, on="token_fingerprint", how="left")
        .with_columns(
            pl.coalesce("known_connection_id", "source_connection_id", "token_fingerprint").alias(
                "group"
            )
        )
        .join(statuses, on="group", how="left")
    )
    groups = tokens.group_by("group").agg(
        pl.col("last_seen_at").is_null().any().alias("has_new_token"),
        pl.col("last_seen_at").min().alias("group_seen_at"),
        pl.col("connection_status").first().is_in(ATTENTION_STATUSES).alias("attention"),
        pl.len().alias("tokens"),
    )
    priority = (
        pl.when("has_new_token")
        .then(pl.lit(NEVER_SEEN))
        .when(pl.col("attention").fill_null(False))
        .then(pl.lit(NEEDS_ATTENTION))
        .otherwise(pl.lit(KNOWN))
    )
    groups = groups.with_columns(
        priority.alias("priority"),
        (pl.col("tokens") + pl.col("has_new_token").cast(pl.Int64)).alias("cost"),
    )
    return (
        tokens.select("token_fingerprint", "group", "last_seen_at")
        .join(groups.select("group", "priority", "group_seen_at", "cost"), on="group")
        .sort(
            ["priority", "group_seen_at", "group", "token_fingerprint"],
            nulls_last=False,
        )
    )


def plan_polling(
    order: pl.DataFrame,
    request_allowance: int | None,
    only_connection_ids: frozenset[str] | None = None,
) -> PollingPlan:
    """Whole groups in `order` while their cost fits `request_allowance` (None: all).

    A group that does not fit is deferred, but smaller groups after it may still fit: the
    allowance is spent, not merely counted down to the first miss. With
    `only_connection_ids` (a targeted run), only those connections' tokens are candidates.
    """
    candidates = order
    if only_connection_ids is not None:
        candidates = order.filter(pl.col("group").is_in(list(only_connection_ids)))
    groups = candidates.group_by("group", maintain_order=True).agg(
        pl.col("token_fingerprint"), pl.col("cost").first()
    )
    polled: list[str] = []
    requests = 0
    remaining = math.inf if request_allowance is None else request_allowance
    for fingerprints, cost in groups.select("token_fingerprint", "cost").iter_rows():
        if cost <= remaining:
            polled += fingerprints
            requests += cost
            remaining -= cost
    deferred = order.filter(~pl.col("token_fingerprint").is_in(polled))
    return PollingPlan(polled, deferred["token_fingerprint"].to_list(), requests)


def company_allowance(requests: int, share: float) -> int:
    """How many `/employer/company` calls a run of `requests` other requests may make while
    spending at most `share` of its time on the company limit.

    The client paces company calls evenly at 19 a minute (Finch's 20 less its margin), so
    each costs 60/19 s; the run's other requests take at least their IP bound,
    `requests * 0.3 s`. The company time c stays within the share while
    c ≤ share / (1 - share) * that; the client asks for the names alongside the
    introspections, so the run takes about the larger of the two, not their sum. The
    first 20 always fit (share 0 allows those only): a small fleet fills its names at once.
    Both bounds scale alike with an emulator's time scale, so the count does not depend
    on it.
    """
    if not 0 <= share < 1:
        raise ValueError(f"company share must be in [0, 1), got {share}")
    ip_bound = requests * IP_SECONDS_PER_REQUEST
    paced = math.floor(share / (1 - share) * ip_bound / PACED_COMPANY_SECONDS_PER_CALL)
    return max(COMPANY_BURST, paced)
