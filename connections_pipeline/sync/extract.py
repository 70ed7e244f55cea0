"""Pull one run's raw responses out of Finch, spending as few requests as the data allows."""

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import polars as pl

from connections_pipeline.finch import FinchCallResult, FinchClient
from connections_pipeline.finch.client import gather_with_progress
from connections_pipeline.sources.records import SourceBatch, SourceToken
from connections_pipeline.transform.followups import plan_followups
from connections_pipeline.transform.guards import Application, split_by_application
from connections_pipeline.transform.parse import parse_introspections

logger = logging.getLogger(__name__)

RAW_SCHEMA = {
    "run_id": pl.String,
    "endpoint": pl.String,
    "token_fingerprint": pl.String,
    "connection_id": pl.String,
    "fetched_at": pl.Datetime("us", "UTC"),
    "outcome": pl.String,
    "status_code": pl.Int32,
    "error_name": pl.String,
    "finch_code": pl.String,
    "request_id": pl.String,
    "body": pl.String,
    "failure_reason": pl.String,
}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Extraction:
    raw: pl.DataFrame
    as_of: datetime
    request_stats: dict[str, Any]
    # Parsed `/introspect` answers and undecodable ones, kept so the snapshot does not
    # decode every body a second time.
    introspections: tuple[pl.DataFrame, pl.DataFrame]


async def extract(
    client: FinchClient,
    batch: SourceBatch,
    previous: pl.DataFrame,
    run_id: str,
    company_ttl: timedelta,
    application: Application | None = None,
    progress: Progress | None = None,
    jobs_for: frozenset[str] = frozenset(),
) -> Extraction:
    """Providers once, `/introspect` per token, then jobs and company only where needed
    (never for a token of another application than `application`); jobs also for the
    connections in `jobs_for`."""
    records: list[dict[str, Any]] = []
    providers = await client.providers()
    records.append(_raw(run_id, providers, None, None))
    results = await client.introspect_many(
        [token.access_token for token in batch.tokens],
        on_progress=_reporter(progress, "introspect"),
    )
    for token, result in zip(batch.tokens, results, strict=True):
        connection_id = result.data.get("connection_id") if result.ok else token.connection_id
        records.append(_raw(run_id, result, token.fingerprint, connection_id))
    as_of = _as_of([providers, *results])
    parsed = parse_introspections(pl.DataFrame(records, schema=RAW_SCHEMA))
    ours, _ = split_by_application(parsed[0], application or Application())
    plan = plan_followups(ours, batch.token_frame(), previous, as_of, company_ttl, jobs_for)
    records += await _followups(client, batch.tokens, plan, run_id, progress)
    raw = pl.DataFrame(records, schema=RAW_SCHEMA)
    return Extraction(raw, as_of, client.stats.as_dict(), parsed)


async def _followups(
    client: FinchClient,
    tokens: Sequence[SourceToken],
    plan: pl.DataFrame,
    run_id: str,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    by_fingerprint = {token.fingerprint: token for token in tokens}
    jobs = plan.filter("need_jobs").select("connection_id", "token_fingerprint").rows()
    companies = plan.filter("need_company").select("connection_id", "token_fingerprint").rows()
    logger.info("Follow-ups: %d job listings, %d company lookups", len(jobs), len(companies))
    records = []
    for endpoint, wanted in (("jobs", jobs), ("company", companies)):
        call = client.automated_jobs if endpoint == "jobs" else client.company
        report = _reporter(progress, endpoint)
        calls = [call(by_fingerprint[fingerprint].access_token) for _, fingerprint in wanted]
        results = await gather_with_progress(calls, len(calls), report)
        records += [
            _raw(run_id, result, fingerprint, connection_id)
            for (connection_id, fingerprint), result in zip(wanted, results, strict=True)
        ]
    return records


def _reporter(progress: Progress | None, endpoint: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda done, total: progress(endpoint, done, total)


def _raw(
    run_id: str, result: FinchCallResult, fingerprint: str | None, connection_id: str | None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "endpoint": result.endpoint,
        "token_fingerprint": fingerprint,
        "connection_id": connection_id,
        "fetched_at": _server_time(result.server_date) or datetime.now(UTC),
        "outcome": result.outcome.value,
        "status_code": result.status_code,
        "error_name": result.error_name,
        "finch_code": result.finch_code,
        "request_id": result.request_id,
        "body": body_text(result.data) if result.ok else None,
        "failure_reason": None if result.ok else _failure_reason(result),
    }


def body_text(data: Any) -> str:
    """A parsed body as JSON text. Non-ASCII characters stay readable, unless the body holds
    an unpaired surrogate (JSON can escape one, UTF-8 cannot hold it): then it stays escaped,
    so one odd body cannot stop the run from building its frame."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data)
    return text


def _failure_reason(result: FinchCallResult) -> str:
    return result.reason or result.message or result.error_name or result.outcome.value


def _server_time(header: str | None) -> datetime | None:
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _as_of(results: Sequence[FinchCallResult]) -> datetime:
    """Finch's clock (the latest `Date` header seen), so the snapshot's idea of "now" is the
    server's, not this machine's. A call that failed before Finch answered carries no
    header; this machine's clock stands in only when no call got an answer at all."""
    dates = [date for result in results if (date := _server_time(result.server_date))]
    return max(dates) if dates else datetime.now(UTC)
