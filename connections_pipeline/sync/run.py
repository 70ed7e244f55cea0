"""One whole sync, from settings to a loaded (or held) snapshot, as a plain function."""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from connections_pipeline.concepts import LIVE, REAUTH, STATES
from connections_pipeline.finch.access import FinchAccess
from connections_pipeline.sources.records import SourceBatch, session_rejections
from connections_pipeline.sync.extract import Extraction, PollingRules, extract
from connections_pipeline.sync.raw_spool import RawSpool
from connections_pipeline.sync.spill import spill_folder
from connections_pipeline.transform.finch_clock import ClockRule
from connections_pipeline.transform.guards import (
    Application,
    HoldThresholds,
    Verdict,
    judge,
    trust_figures,
)
from connections_pipeline.transform.ledger import sessions_from_source
from connections_pipeline.transform.polling import RunBudget
from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA, ENTITIES_SCHEMA
from connections_pipeline.transform.snapshot import Snapshot, SnapshotInputs, build_snapshot
from connections_pipeline.transform.validate import ValidationOutcome, split_valid
from connections_pipeline.warehouse import (
    CONNECTIONS_COLUMNS,
    RUN_FAILED,
    RUN_HELD,
    RUN_PARTIAL,
    RUN_SUCCESS,
    SESSION_PROGRESS_COLUMNS,
    LoadSummary,
    RunLoad,
    Warehouse,
    sessions_not_stored,
)

logger = logging.getLogger(__name__)

CONNECTIONS_COLUMNS_NAMES = [name for name, *_ in CONNECTIONS_COLUMNS]
TOKEN_ROW = "token_source_row"


@dataclass(frozen=True)
class SyncSettings:
    """How a sync judges and loads what it read.

    Attributes:
        company_ttl: how long a company name is reused before `/employer/company` again.
        thresholds: when the run is held instead of loaded.
        accept_mass_change: load even a run the thresholds would hold; for a person who
            has checked that the change is real.
        application: the Finch application every token must belong to.
        budget: the requests, time and company share one run may spend; what does not fit
            is deferred to the next run.
        only_connection_ids: poll only these connections (a targeted run); every other
            connection keeps its stored row untouched.
        jobs_for_connection_ids: connections whose `/jobs/automated` is asked again (Finch
            reported a completed job), on top of those whose connection time is unknown.
        clock: when Finch's `Date` headers are trusted as the snapshot's time (see
            `transform.finch_clock`).
    """

    company_ttl: timedelta = timedelta(days=7)
    thresholds: HoldThresholds = field(default_factory=HoldThresholds)
    accept_mass_change: bool = False
    application: Application = field(default_factory=Application)
    budget: RunBudget = field(default_factory=RunBudget)
    only_connection_ids: frozenset[str] | None = None
    jobs_for_connection_ids: frozenset[str] = frozenset()
    clock: ClockRule = field(default_factory=ClockRule)

    def polling_rules(self) -> PollingRules:
        return PollingRules(self.company_ttl, self.budget, self.only_connection_ids)


@dataclass
class SyncResult:
    run_id: str
    as_of: datetime
    connections: pl.DataFrame
    validation: ValidationOutcome
    entity_validation: ValidationOutcome
    quarantine: pl.DataFrame
    sync_run: dict[str, Any]
    request_stats: dict[str, Any]
    verdict: Verdict
    token_outcomes: dict[str, int] = field(default_factory=dict)
    load: LoadSummary | None = None
    new_sessions: int = 0
    # Stored sessions whose status this run changed (pending to completed or expired, ...).
    sessions_updated: int = 0
    # Finch answers kept in finch_raw_responses for this run.
    raw_responses: int = 0
    # Why Finch's clock could not date the snapshot (the run is held whatever is accepted).
    clock_held: str | None = None

    @property
    def status(self) -> str:
        return self.sync_run["status"]

    @property
    def state_counts(self) -> dict[str, int]:
        counts = Counter(self.connections["state"].to_list())
        return {state: counts.get(state, 0) for state in STATES}


class SyncHeld(RuntimeError):
    """The run's snapshot was implausible: it was recorded as `held` and not loaded."""

    def __init__(self, result: SyncResult) -> None:
        super().__init__(
            f"sync held, nothing loaded: {result.sync_run['status_reason']}. {_next_step(result)}"
        )
        self.result = result


def _next_step(result: SyncResult) -> str:
    if result.clock_held:
        return (
            "Nothing can be dated by a clock that far off; once this machine's clock and "
            "Finch's agree, the next run loads (accept_mass_change does not change this)"
        )
    figures = result.verdict.figures
    accept = (
        "run the sync again with accept_mass_change: true (connections-pipeline run "
        "--accept-mass-change)"
    )
    if figures.failed_tokens > figures.newly_invalid_tokens + figures.leaving_live:
        return (
            "Run the sync again once Finch answers; to load what did answer now (the rest "
            f"keeps its previous row, marked stale), {accept}"
        )
    return f"If this change is real, {accept}"


def run_sync(
    run_id: str,
    finch: FinchAccess,
    batch: SourceBatch,
    warehouse: Warehouse,
    settings: SyncSettings = SyncSettings(),
    *,
    progress: Any = None,
    scrub: Callable[[str], str] = str,
    spool_chunk_bytes: int | None = None,
) -> SyncResult:
    """Ask Finch about every token of `batch`, build and judge the snapshot, load it or hold
    it. The caller has checked the settings (see `assets.sync.sync_with_resources`).

    Finch's answers are spooled to a spill folder of the run's own as they arrive, and that
    folder is removed when the run ends, however it ends (see `sync.spill`).

    Args:
        scrub: removes the settings' secrets from a message, for the `failed` row of a run
            that stops with an error.
        spool_chunk_bytes: bodies held before a chunk is written to the spill folder;
            default: the warehouse's memory budget's share.

    Raises:
        SyncHeld: the snapshot was held (recorded as such, nothing else written).
    """
    started = datetime.now(UTC)
    clock = time.perf_counter()
    warehouse.ensure_tables()
    try:
        with spill_folder() as folder:
            spool = RawSpool(folder, spool_chunk_bytes or warehouse.memory.spool_chunk_bytes)
            try:
                return _sync(
                    run_id, finch, batch, warehouse, settings, progress, started, clock, spool
                )
            finally:
                spool.close()
    except SyncHeld:
        raise
    except Exception as exc:
        _record_failure(run_id, started, warehouse, scrub(str(exc)), exc)
        raise


def _sync(
    run_id: str,
    finch: FinchAccess,
    batch: SourceBatch,
    warehouse: Warehouse,
    settings: SyncSettings,
    progress: Any,
    started: datetime,
    clock: float,
    spool: RawSpool,
) -> SyncResult:
    previous = warehouse.read_current()
    previous_tokens = warehouse.read_tokens()
    # The run writes nothing before its one load transaction: a run killed at any point
    # leaves the warehouse as the previous run left it.
    stored_sessions = warehouse.read_sessions()
    incoming = sessions_from_source(batch.sessions, "token_source", batch.session_locations)
    rejected = pl.concat([batch.rejected, session_rejections(incoming.rejected)])
    for reason in rejected["reason"]:
        logger.warning("Source row skipped: %s", reason)
    if batch.duplicate_rows:
        logger.info("Token source: %d duplicate rows merged", batch.duplicate_rows)
    new_sessions = sessions_not_stored(stored_sessions, incoming.sessions)
    application = settings.application
    extraction = asyncio.run(
        _extract(finch, batch, previous, previous_tokens, run_id, settings, progress, spool)
    )
    snapshot = build_snapshot(
        SnapshotInputs(
            run_id=run_id,
            as_of=extraction.as_of,
            raw=extraction.raw.rows,
            token_source=batch.token_frame,
            previous=previous,
            previous_tokens=previous_tokens,
            sessions=pl.concat([stored_sessions, new_sessions]),
            application=application,
            # The batch is the whole source, whatever the run polls of it.
            token_source_complete=True,
            unreadable_tokens=frozenset(
                rejected.filter(pl.col("record_kind") == TOKEN_ROW)["record_key"]
            ),
        ),
        CONNECTIONS_COLUMNS_NAMES,
        extraction.introspections,
        extraction.raw.bodies,
    )
    validation = split_valid(snapshot.connections, CONNECTIONS_SCHEMA, "connection_key")
    figures = trust_figures(
        previous,
        validation.valid,
        snapshot.tokens,
        previous_tokens,
        rejected.filter(pl.col("record_kind") == TOKEN_ROW).height,
    )
    result = _result(
        run_id,
        started,
        clock,
        snapshot,
        extraction,
        validation,
        rejected,
        judge(figures, settings.thresholds),
        settings.accept_mass_change,
        batch.duplicate_rows,
    )
    result.new_sessions = new_sessions.height
    result.sessions_updated = _status_changes(stored_sessions, snapshot.session_progress)
    result.raw_responses = extraction.raw.height
    if result.status == RUN_HELD:
        warehouse.record_unloaded_run(run_id, result.as_of, result.sync_run, extraction.raw)
        raise SyncHeld(result)
    result.load = warehouse.load_run(
        RunLoad(
            run_id=run_id,
            as_of=extraction.as_of,
            connections=result.connections,
            entities=result.entity_validation.valid.select(
                "connection_id", "entity_id", "entity_name", "source_id", "entity_status", "run_id"
            ),
            tokens=snapshot.tokens,
            quarantine=result.quarantine,
            sync_run=result.sync_run,
            raw_responses=extraction.raw,
            new_sessions=new_sessions,
            session_progress=snapshot.session_progress.select(
                "session_id", *SESSION_PROGRESS_COLUMNS
            ),
        )
    )
    return result


def _status_changes(stored: pl.DataFrame, progress: pl.DataFrame) -> int:
    """How many stored sessions `progress` gives another status."""
    before = stored.select("session_id", pl.col("status").alias("before"))
    joined = progress.select("session_id", "status").join(before, on="session_id")
    return joined.filter(pl.col("status").ne_missing(pl.col("before"))).height


async def _extract(
    finch: FinchAccess,
    batch: SourceBatch,
    previous: pl.DataFrame,
    previous_tokens: pl.DataFrame,
    run_id: str,
    settings: SyncSettings,
    progress: Any,
    spool: RawSpool,
) -> Extraction:
    async with finch.open_client() as client:
        return await extract(
            client,
            batch,
            previous,
            previous_tokens,
            run_id,
            settings.polling_rules(),
            settings.application,
            progress,
            settings.jobs_for_connection_ids,
            settings.clock,
            spool=spool,
        )


def _result(
    run_id: str,
    started: datetime,
    clock: float,
    snapshot: Snapshot,
    extraction: Extraction,
    validation: ValidationOutcome,
    rejected: pl.DataFrame,
    verdict: Verdict,
    accepted: bool,
    duplicate_rows: int,
) -> SyncResult:
    entity_validation = split_valid(snapshot.entities, ENTITIES_SCHEMA, "entity_id")
    quarantine = _quarantine(
        run_id, extraction.as_of, snapshot, validation, entity_validation, rejected
    )
    token_outcomes = dict(Counter(snapshot.tokens["last_outcome"].to_list()))
    failed_followups = extraction.raw.rows.filter(
        pl.col("endpoint").is_in(["jobs", "company"]) & (pl.col("outcome") == "failed")
    ).height
    reading = extraction.clock
    clock_held = reading.held if reading is not None else None
    status, reason = _status(verdict, accepted, token_outcomes.get("failed", 0), failed_followups)
    if clock_held:
        status, reason = RUN_HELD, "; ".join([clock_held, *verdict.reasons])
    counts = Counter(validation.valid["state"].to_list())
    live = validation.valid.filter(pl.col("state") == LIVE)
    stats = extraction.request_stats
    figures = verdict.figures
    sync_run = {
        "run_id": run_id,
        "started_at": started,
        "finished_at": datetime.now(UTC),
        "as_of": extraction.as_of,
        "as_of_clock": reading.clock if reading is not None else None,
        "duration_seconds": time.perf_counter() - clock,
        "tokens": snapshot.tokens.height,
        **{state: counts.get(state, 0) for state in STATES},
        "quarantined": quarantine.height,
        "requests": stats["requests"],
        "retries": stats["retries"],
        "rate_limited": stats["rate_limited"],
        "invalid_tokens": token_outcomes.get("invalid_token", 0),
        "needs_reauth": live.filter(pl.col("connection_status") == REAUTH).height,
        "needs_action": int(live["needs_action"].sum()),
        "reauth_tokens": token_outcomes.get("needs_reauth", 0),
        "failed_tokens": token_outcomes.get("failed", 0),
        "status": status,
        "status_reason": reason,
        "accepted_mass_change": accepted and verdict.held and not clock_held,
        "previous_live": figures.previous_live,
        "leaving_live": figures.leaving_live,
        "leaving_source": figures.leaving_source,
        "newly_invalid_tokens": figures.newly_invalid_tokens,
        "other_application_tokens": figures.other_application_tokens,
        "failed_followups": failed_followups,
        "source_rows_rejected": rejected.height,
        "source_duplicate_rows": duplicate_rows,
        **_coverage(extraction, validation.valid),
    }
    return SyncResult(
        run_id=run_id,
        as_of=extraction.as_of,
        connections=validation.valid,
        validation=validation,
        entity_validation=entity_validation,
        quarantine=quarantine,
        sync_run=sync_run,
        request_stats=stats,
        verdict=verdict,
        token_outcomes=token_outcomes,
        clock_held=clock_held,
    )


def _coverage(extraction: Extraction, connections: pl.DataFrame) -> dict[str, Any]:
    """What the run left for later: deferred tokens, the age of the oldest observation
    among them, company names still to fetch."""
    coverage = extraction.coverage
    oldest = coverage.oldest_deferred_seen_at
    age = (extraction.as_of - oldest).total_seconds() / 3600 if oldest is not None else 0.0
    return {
        "tokens_deferred": len(coverage.deferred),
        "tokens_never_observed": coverage.never_observed,
        "oldest_observation_age_hours": round(max(age, 0.0), 3),
        "company_names_pending": int(connections["company_name_pending"].sum()),
    }


def _status(
    verdict: Verdict, accepted: bool, failed_tokens: int, failed_followups: int
) -> tuple[str, str | None]:
    """The run's status and, unless it is a plain success, why."""
    if verdict.held and not accepted:
        return RUN_HELD, verdict.summary
    reasons = []
    if verdict.held:
        reasons.append(f"accepted with accept_mass_change: {verdict.summary}")
    if failed_tokens:
        reasons.append(
            f"{failed_tokens} tokens failed after retries; their connections keep the "
            "previous row, marked stale"
        )
    if failed_followups:
        reasons.append(f"{failed_followups} jobs or company calls failed after retries")
    partial = failed_tokens or failed_followups
    return (RUN_PARTIAL if partial else RUN_SUCCESS), "; ".join(reasons) or None


def _record_failure(
    run_id: str, started: datetime, warehouse: Warehouse, message: str, error: Exception
) -> None:
    """Leave a `failed` row for a run that stopped with an error, when the warehouse can
    still take one; the error itself propagates either way."""
    now = datetime.now(UTC)
    reason = f"{type(error).__name__}: {message}"[:2_000]
    try:
        warehouse.record_unloaded_run(
            run_id,
            now,
            {
                "started_at": started,
                "finished_at": now,
                "status": RUN_FAILED,
                "status_reason": reason,
            },
        )
    except Exception:  # the original error matters more than this one
        logger.warning("Could not record the failed run %s", run_id, exc_info=True)


def _quarantine(
    run_id: str,
    as_of: datetime,
    snapshot: Snapshot,
    validation: ValidationOutcome,
    entity_validation: ValidationOutcome,
    rejected: pl.DataFrame,
) -> pl.DataFrame:
    parts = [
        snapshot.rejected.select(
            pl.lit("introspection").alias("record_kind"),
            pl.col("token_fingerprint").alias("record_key"),
            "reason",
            pl.lit(None, dtype=pl.String).alias("payload"),
        ),
        validation.quarantined.select(
            pl.lit("connection").alias("record_kind"), "record_key", "reason", "payload"
        ),
        entity_validation.quarantined.select(
            pl.lit("entity").alias("record_kind"), "record_key", "reason", "payload"
        ),
        rejected.select("record_kind", "record_key", "reason", "payload"),
    ]
    return pl.concat(parts).with_columns(
        pl.lit(run_id).alias("run_id"),
        pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
