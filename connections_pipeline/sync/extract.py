"""Pull one run's raw responses out of Finch, spending as few requests as the data allows."""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from connections_pipeline.concepts import LIVE
from connections_pipeline.finch import FinchCallResult, FinchClient
from connections_pipeline.finch.client import for_each_completed
from connections_pipeline.sources.records import SourceBatch, SourceToken
from connections_pipeline.sync.decoding import IntrospectionDecoder
from connections_pipeline.sync.raw_rows import raw_row, server_time
from connections_pipeline.sync.raw_spool import RawResponses, RawSpool
from connections_pipeline.transform.finch_clock import (
    ClockReading,
    ClockRule,
    HeaderDates,
    read_clock,
)
from connections_pipeline.transform.followups import known_company_lookups, plan_followups
from connections_pipeline.transform.guards import Application, split_by_application
from connections_pipeline.transform.polling import (
    COMPANY_BURST,
    RunBudget,
    company_allowance,
    plan_polling,
    polling_order,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
FINCH_CLOCK_RULE = ClockRule()
# Company calls paced at 19 a minute fill at most this many of a 5-minute IP window.
COMPANY_CALLS_PER_IP_WINDOW = 95


@dataclass(frozen=True)
class Extraction:
    # The run's raw responses: bodies spooled to disk, the rest and what the snapshot reads
    # from the follow-up bodies in memory.
    raw: RawResponses
    as_of: datetime
    request_stats: dict[str, Any]
    # Parsed `/introspect` answers and undecodable ones, kept so the snapshot does not
    # decode every body a second time.
    introspections: tuple[pl.DataFrame, pl.DataFrame]
    coverage: "Coverage" = field(default_factory=lambda: Coverage())
    # Whose clock `as_of` is, and why the run is held when Finch's cannot be trusted.
    clock: ClockReading | None = None


@dataclass(frozen=True)
class Coverage:
    """What a run asked about and what it left for the next run.

    Attributes:
        deferred: token fingerprints not introspected (budget, deadline, targeted run).
        never_observed: how many of them no run has observed yet.
        oldest_deferred_seen_at: when the longest-waiting observed deferred token was last
            observed.
    """

    deferred: tuple[str, ...] = ()
    never_observed: int = 0
    oldest_deferred_seen_at: datetime | None = None


@dataclass(frozen=True)
class PollingRules:
    """How a run decides what to ask Finch about."""

    company_ttl: timedelta
    budget: RunBudget = field(default_factory=RunBudget)
    only_connection_ids: frozenset[str] | None = None


async def extract(
    client: FinchClient,
    batch: SourceBatch,
    previous: pl.DataFrame,
    previous_tokens: pl.DataFrame,
    run_id: str,
    rules: PollingRules,
    application: Application | None = None,
    progress: Progress | None = None,
    jobs_for: frozenset[str] = frozenset(),
    clock_rule: ClockRule = FINCH_CLOCK_RULE,
    *,
    spool: RawSpool,
) -> Extraction:
    """Providers once, `/introspect` per polled token, then jobs and company only where
    needed (never for a token of another application than `application`); jobs also for the
    connections in `jobs_for` (they reported a completed job).

    Which tokens are polled: `rules.budget` and `rules.only_connection_ids`, whole
    connections in priority order (see `transform.polling`); the others are deferred.
    The snapshot's time is read from the answers' `Date` headers by `clock_rule` (see
    `transform.finch_clock`). Every answer goes to `spool` as it arrives; none is kept.
    """
    started = datetime.now(UTC)
    budget = rules.budget
    providers = await client.providers()
    spool.add(raw_row(run_id, providers, None, None))
    headers = _DateHeaders()
    headers.add(providers)
    token_frame = batch.token_frame
    order = polling_order(token_frame, previous, previous_tokens)
    as_of_guess = _clock(headers, started, clock_rule).as_of
    allowance = None if budget.max_requests is None else max(budget.max_requests - 1, 0)
    plan = plan_polling(order, allowance, rules.only_connection_ids)
    # Company names already due for connections known from the last run are asked for
    # while the tokens are introspected, so the company limit's waiting overlaps the IP
    # limit's instead of adding to it. Under a request budget they get their share of it
    # first: otherwise a budget that binds every run would never leave room for a name.
    # A connection deferred this run still gets its name (with the token that answered for
    # it last time); a targeted run asks about its own connections only.
    by_fingerprint = {token.fingerprint: token for token in batch.tokens}
    targeted = rules.only_connection_ids is not None
    usable = plan.polled if targeted else list(by_fingerprint)
    known_due = known_company_lookups(previous, usable, as_of_guess, rules.company_ttl)
    if allowance is not None and not known_due.is_empty():
        reserve = min(known_due.height, company_allowance(allowance, budget.company_share))
        plan = plan_polling(order, max(allowance - reserve, 0), rules.only_connection_ids)
    calls = _Calls(client, by_fingerprint, run_id, progress, spool)
    # The plan's cost leaves room for the job listing each new connection will need.
    company_budget = _company_budget(1 + plan.requests, budget)
    early = known_due.head(company_budget)
    client.reserve_for_products(min(early.height, COMPANY_CALLS_PER_IP_WINDOW))
    decoder = IntrospectionDecoder()

    def answered(token: SourceToken, result: FinchCallResult) -> None:
        row = raw_row(run_id, result, token.fingerprint, token.connection_id)
        spool.add(row)
        decoder.add(row)
        headers.add(result)

    late, _ = await asyncio.gather(
        _introspect_until(
            client, [by_fingerprint[f] for f in plan.polled], order, budget, progress, answered
        ),
        _early_company_calls(client, calls, _pairs(early)),
    )
    clock = _clock(headers, started, clock_rule)
    as_of = clock.as_of
    parsed = await decoder.decoded()
    ours, _ = split_by_application(parsed[0], application or Application())
    followups = plan_followups(ours, token_frame, previous, as_of, rules.company_ttl, jobs_for)
    jobs = followups.filter("need_jobs")
    # Now the job listings are known, the share's allowance is exact.
    company_budget = _company_budget(1 + len(plan.polled) + jobs.height, budget)
    companies = (
        followups.filter("need_company")
        .join(early.select("connection_id"), on="connection_id", how="anti")
        .sort("company_fetched_at", "connection_id", nulls_last=False)
        .head(_late_company_calls(company_budget - early.height, previous))
    )
    logger.info(
        "Follow-ups: %d job listings, %d company lookups (%d alongside the introspections)",
        jobs.height,
        companies.height + early.height,
        early.height,
    )
    await calls.many("jobs", _pairs(jobs))
    await calls.many("company", _pairs(companies))
    raw = await asyncio.to_thread(spool.finish, parsed[0], clock)
    coverage = _coverage(order, [*plan.deferred, *late])
    return Extraction(raw, as_of, client.stats.as_dict(), parsed, coverage, clock)


async def _early_company_calls(
    client: FinchClient, calls: "_Calls", wanted: list[tuple[str, str]]
) -> None:
    """The company names asked for alongside the introspections; once they are in, the
    IP budget kept for them goes back to the introspections."""
    try:
        await calls.many("company", wanted)
    finally:
        client.reserve_for_products(0)


def _pairs(plan: pl.DataFrame) -> list[tuple[str, str]]:
    return plan.select("connection_id", "token_fingerprint").rows()


@dataclass(frozen=True)
class _Calls:
    """Follow-up calls, each spooled as a raw row under the connection it was made for."""

    client: FinchClient
    tokens: dict[str, SourceToken]
    run_id: str
    progress: Progress | None
    spool: RawSpool

    async def many(self, endpoint: str, wanted: list[tuple[str, str]]) -> None:
        call = self.client.automated_jobs if endpoint == "jobs" else self.client.company
        report = _reporter(self.progress, endpoint)
        calls = (call(self.tokens[fingerprint].access_token) for _, fingerprint in wanted)

        def answered(index: int, result: FinchCallResult) -> None:
            connection_id, fingerprint = wanted[index]
            self.spool.add(raw_row(self.run_id, result, fingerprint, connection_id))

        await for_each_completed(calls, answered, len(wanted), report, self.client.in_flight_limit)


def _late_company_calls(left: int, previous: pl.DataFrame) -> int:
    """Company calls after the introspections (names no earlier run knew to ask for).

    They cannot overlap the introspections, so past the first window's 20 they lengthen
    the run; a later run asks for them alongside its introspections instead. Only a first
    sync, which knows nothing yet, spends its whole allowance on them.
    """
    if previous.filter(pl.col("state") == LIVE).is_empty():
        return max(left, 0)
    return max(min(left, COMPANY_BURST), 0)


def _company_budget(requests: int, budget: RunBudget) -> int:
    """How many company names a run of `requests` other requests may fetch: the company
    share of its time, within what the request budget leaves."""
    allowance = company_allowance(requests, budget.company_share)
    if budget.max_requests is not None:
        allowance = min(allowance, max(budget.max_requests - requests, 0))
    return allowance


async def _introspect_until(
    client: FinchClient,
    tokens: list[SourceToken],
    order: pl.DataFrame,
    budget: RunBudget,
    progress: Progress | None,
    answered: Callable[[SourceToken, FinchCallResult], None],
) -> list[str]:
    """Introspect `tokens` in order, handing each answer to `answered` as it arrives; with
    a deadline, in slices of whole connections, and what has not started when the deadline
    passes is deferred (fingerprints returned)."""
    report = _reporter(progress, "introspect")
    if budget.deadline is None:
        await _introspect(client, tokens, answered, report)
        return []
    groups = dict(order.select("token_fingerprint", "group").iter_rows())
    stop_at = time.monotonic() + budget.deadline.total_seconds()
    done = 0
    for start, batch in _slices(tokens, groups):
        if time.monotonic() >= stop_at:
            return [token.fingerprint for token in tokens[start:]]
        await _introspect(client, batch, answered)
        done += len(batch)
        if report is not None:
            report(done, len(tokens))
    return []


async def _introspect(
    client: FinchClient,
    tokens: list[SourceToken],
    answered: Callable[[SourceToken, FinchCallResult], None],
    report: Callable[[int, int], None] | None = None,
) -> None:
    def one(index: int, result: FinchCallResult) -> None:
        answered(tokens[index], result)

    calls = (client.introspect(token.access_token) for token in tokens)
    await for_each_completed(calls, one, len(tokens), report, client.in_flight_limit)


SLICE_TOKENS = 500


def _slices(
    tokens: list[SourceToken], groups: dict[str, str]
) -> list[tuple[int, list[SourceToken]]]:
    """About SLICE_TOKENS tokens at a time, never splitting a connection's tokens."""
    slices: list[tuple[int, list[SourceToken]]] = []
    start = 0
    while start < len(tokens):
        end = min(start + SLICE_TOKENS, len(tokens))
        while (
            end < len(tokens)
            and groups[tokens[end].fingerprint] == groups[tokens[end - 1].fingerprint]
        ):
            end += 1
        slices.append((start, tokens[start:end]))
        start = end
    return slices


def _coverage(order: pl.DataFrame, deferred: list[str]) -> "Coverage":
    seen = order.filter(pl.col("token_fingerprint").is_in(deferred))["last_seen_at"]
    return Coverage(
        deferred=tuple(deferred),
        never_observed=seen.null_count(),
        oldest_deferred_seen_at=seen.min(),
    )


def _reporter(progress: Progress | None, endpoint: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(endpoint, done, total)


class _DateHeaders:
    """The `Date` headers of the answers that tell the snapshot's time, as they arrive
    (calls that got no answer from Finch carry none and are not counted). Counted by text:
    a header has one-second resolution, so a run of any size holds a few thousand."""

    def __init__(self) -> None:
        self._texts: Counter[str] = Counter()
        self._missing = 0

    def add(self, result: FinchCallResult) -> None:
        if result.status_code is None:
            return
        if result.server_date:
            self._texts[result.server_date] += 1
        else:
            self._missing += 1

    def read(self) -> HeaderDates:
        dates: list[datetime] = []
        unreadable = 0
        for text, count in self._texts.items():
            if (date := server_time(text)) is None:
                unreadable += count
            else:
                dates += [date] * count
        return HeaderDates(tuple(dates), self._missing, unreadable)


def _clock(headers: _DateHeaders, started: datetime, rule: ClockRule) -> ClockReading:
    """The snapshot's time from the `Date` headers seen so far."""
    return read_clock(headers.read(), (started, datetime.now(UTC)), rule)
