"""Pull one run's raw responses out of Finch, spending as few requests as the data allows."""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from connections_pipeline.concepts import LIVE
from connections_pipeline.finch import FinchCallResult, FinchClient
from connections_pipeline.finch.client import gather_with_progress
from connections_pipeline.sources.records import SourceBatch, SourceToken
from connections_pipeline.sync.decoding import IntrospectionDecoder
from connections_pipeline.sync.raw_rows import (
    RAW_SCHEMA,
    raw_row,
    server_time,
    with_answered_connections,
)
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
    raw: pl.DataFrame
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
) -> Extraction:
    """Providers once, `/introspect` per polled token, then jobs and company only where
    needed (never for a token of another application than `application`); jobs also for the
    connections in `jobs_for` (they reported a completed job).

    Which tokens are polled: `rules.budget` and `rules.only_connection_ids`, whole
    connections in priority order (see `transform.polling`); the others are deferred.
    The snapshot's time is read from the answers' `Date` headers by `clock_rule` (see
    `transform.finch_clock`).
    """
    started = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    budget = rules.budget
    providers = await client.providers()
    records.append(raw_row(run_id, providers, None, None))
    token_frame = batch.token_frame()
    order = polling_order(token_frame, previous, previous_tokens)
    as_of_guess = _clock([providers], started, clock_rule).as_of
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
    calls = _Calls(client, by_fingerprint, run_id, progress)
    # The plan's cost leaves room for the job listing each new connection will need.
    company_budget = _company_budget(1 + plan.requests, budget)
    early = known_due.head(company_budget)
    client.reserve_for_products(min(early.height, COMPANY_CALLS_PER_IP_WINDOW))
    decoder = IntrospectionDecoder()
    answers: dict[str, dict[str, Any]] = {}

    def answered(token: SourceToken, result: FinchCallResult) -> None:
        answers[token.fingerprint] = row = raw_row(
            run_id, result, token.fingerprint, token.connection_id
        )
        decoder.add(row)

    (polled, late), early_records = await asyncio.gather(
        _introspect_until(
            client, [by_fingerprint[f] for f in plan.polled], order, budget, progress, answered
        ),
        _early_company_calls(client, calls, _pairs(early)),
    )
    records += [answers[token.fingerprint] for token, _ in polled]
    clock = _clock([providers, *(result for _, result in polled)], started, clock_rule)
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
    records += early_records
    records += await calls.many("jobs", _pairs(jobs))
    records += await calls.many("company", _pairs(companies))
    raw = with_answered_connections(pl.DataFrame(records, schema=RAW_SCHEMA), parsed[0])
    coverage = _coverage(order, [*plan.deferred, *late])
    raw = _trusted_fetch_times(raw, clock)
    return Extraction(raw, as_of, client.stats.as_dict(), parsed, coverage, clock)


async def _early_company_calls(
    client: FinchClient, calls: "_Calls", wanted: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The company names asked for alongside the introspections; once they are in, the
    IP budget kept for them goes back to the introspections."""
    try:
        return await calls.many("company", wanted)
    finally:
        client.reserve_for_products(0)


def _pairs(plan: pl.DataFrame) -> list[tuple[str, str]]:
    return plan.select("connection_id", "token_fingerprint").rows()


@dataclass(frozen=True)
class _Calls:
    """Follow-up calls, each recorded as a raw row under the connection it was made for."""

    client: FinchClient
    tokens: dict[str, SourceToken]
    run_id: str
    progress: Progress | None

    async def many(self, endpoint: str, wanted: list[tuple[str, str]]) -> list[dict[str, Any]]:
        call = self.client.automated_jobs if endpoint == "jobs" else self.client.company
        report = _reporter(self.progress, endpoint)
        calls = [call(self.tokens[fingerprint].access_token) for _, fingerprint in wanted]
        results = await gather_with_progress(calls, len(calls), report)
        return [
            raw_row(self.run_id, result, fingerprint, connection_id)
            for (connection_id, fingerprint), result in zip(wanted, results, strict=True)
        ]


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
) -> tuple[list[tuple[SourceToken, FinchCallResult]], list[str]]:
    """Introspect `tokens` in order, handing each answer to `answered` as it arrives; with
    a deadline, in slices of whole connections, and what has not started when the deadline
    passes is deferred (fingerprints returned)."""
    report = _reporter(progress, "introspect")
    if budget.deadline is None:
        results = await _introspect(client, tokens, answered, report)
        return list(zip(tokens, results, strict=True)), []
    groups = dict(order.select("token_fingerprint", "group").iter_rows())
    stop_at = time.monotonic() + budget.deadline.total_seconds()
    done: list[tuple[SourceToken, FinchCallResult]] = []
    for start, batch in _slices(tokens, groups):
        if time.monotonic() >= stop_at:
            return done, [token.fingerprint for token in tokens[start:]]
        results = await _introspect(client, batch, answered)
        done += zip(batch, results, strict=True)
        if report is not None:
            report(len(done), len(tokens))
    return done, []


async def _introspect(
    client: FinchClient,
    tokens: list[SourceToken],
    answered: Callable[[SourceToken, FinchCallResult], None],
    report: Callable[[int, int], None] | None = None,
) -> list[FinchCallResult]:
    async def one(token: SourceToken) -> FinchCallResult:
        result = await client.introspect(token.access_token)
        answered(token, result)
        return result

    return await gather_with_progress((one(token) for token in tokens), len(tokens), report)


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


def _clock(results: Sequence[FinchCallResult], started: datetime, rule: ClockRule) -> ClockReading:
    """The snapshot's time from the `Date` headers of `results` (calls that got no answer
    from Finch carry none and are not counted)."""
    dates, missing, unreadable = [], 0, 0
    for result in results:
        if result.status_code is None:
            continue
        if not result.server_date:
            missing += 1
        elif (date := server_time(result.server_date)) is None:
            unreadable += 1
        else:
            dates.append(date)
    headers = HeaderDates(tuple(dates), missing, unreadable)
    return read_clock(headers, (started, datetime.now(UTC)), rule)


def _trusted_fetch_times(raw: pl.DataFrame, clock: ClockReading) -> pl.DataFrame:
    """An answer's `fetched_at` outside the trusted window (an ignored `Date` header, or
    this machine's clock beside a simulated one) becomes the snapshot's time: a company
    name fetched "in 2999" would otherwise never be due again."""
    fetched = pl.col("fetched_at")
    trusted = fetched.is_between(pl.lit(clock.earliest), pl.lit(clock.latest))
    return raw.with_columns(
        pl.when(trusted).then(fetched).otherwise(pl.lit(clock.as_of)).alias("fetched_at")
    )
