"""One whole sync, from settings to a loaded snapshot, as a plain function."""

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from connections_pipeline.resources.finch_api import FinchResource
from connections_pipeline.resources.token_source_resource import TokenSourceResource
from connections_pipeline.sync.extract import Extraction, extract
from connections_pipeline.transform.ledger import sessions_from_source
from connections_pipeline.transform.schemas import ConnectionsSchema, EntitiesSchema
from connections_pipeline.transform.snapshot import Snapshot, SnapshotInputs, build_snapshot
from connections_pipeline.transform.validate import ValidationOutcome, split_valid
from connections_pipeline.warehouse import (
    CONNECTIONS_COLUMNS,
    SESSION_PROGRESS_COLUMNS,
    LoadSummary,
    RunLoad,
    Warehouse,
    sessions_not_stored,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncSettings:
    company_ttl: timedelta = timedelta(days=7)


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
    token_outcomes: dict[str, int] = field(default_factory=dict)
    load: LoadSummary | None = None

    @property
    def state_counts(self) -> dict[str, int]:
        counts = Counter(self.connections["state"].to_list())
        return {state: counts.get(state, 0) for state in ("live", "staged", "disconnected")}


def preflight(finch: FinchResource, source: TokenSourceResource, warehouse: Warehouse) -> None:
    """Refuse unusable settings before anything is read or written."""
    finch.client_config()
    source.resolved_kind(finch)
    warehouse.check_connection()


def run_sync(
    run_id: str,
    finch: FinchResource,
    source: TokenSourceResource,
    warehouse: Warehouse,
    settings: SyncSettings = SyncSettings(),
    progress: Any = None,
) -> SyncResult:
    started = datetime.now(UTC)
    clock = time.perf_counter()
    preflight(finch, source, warehouse)
    batch = source.load(finch)
    warehouse.ensure_tables()
    for skipped in batch.skipped_rows:
        logger.warning("Token source row skipped: %s", skipped)
    previous = warehouse.read_current()
    # The run writes nothing before its one load transaction: a run killed at any point
    # leaves the warehouse as the previous run left it.
    stored_sessions = warehouse.read_sessions()
    incoming = sessions_from_source(batch.sessions, created_by="token_source")
    new_sessions = sessions_not_stored(stored_sessions, incoming)
    sessions = pl.concat([stored_sessions, new_sessions])
    extraction = asyncio.run(_extract(finch, batch, previous, run_id, settings, progress))
    snapshot = build_snapshot(
        SnapshotInputs(
            run_id=run_id,
            as_of=extraction.as_of,
            raw=extraction.raw,
            token_source=batch.token_frame(),
            previous=previous,
            previous_tokens=warehouse.read_tokens(),
            sessions=sessions,
        ),
        CONNECTIONS_COLUMNS_NAMES,
        extraction.introspections,
    )
    return _validate_and_load(run_id, started, clock, snapshot, extraction, new_sessions, warehouse)


CONNECTIONS_COLUMNS_NAMES = [name for name, *_ in CONNECTIONS_COLUMNS]


async def _extract(
    finch: FinchResource,
    batch: Any,
    previous: pl.DataFrame,
    run_id: str,
    settings: SyncSettings,
    progress: Any,
) -> Extraction:
    async with finch.open_client() as client:
        return await extract(client, batch, previous, run_id, settings.company_ttl, progress)


def _validate_and_load(
    run_id: str,
    started: datetime,
    clock: float,
    snapshot: Snapshot,
    extraction: Extraction,
    new_sessions: pl.DataFrame,
    warehouse: Warehouse,
) -> SyncResult:
    validation = split_valid(snapshot.connections, ConnectionsSchema, "connection_key")
    entity_validation = split_valid(snapshot.entities, EntitiesSchema, "entity_id")
    quarantine = _quarantine(run_id, extraction.as_of, snapshot, validation, entity_validation)
    token_outcomes = dict(Counter(snapshot.tokens["last_outcome"].to_list()))
    connections = validation.valid
    counts = Counter(connections["state"].to_list())
    stats = extraction.request_stats
    sync_run = {
        "run_id": run_id,
        "started_at": started,
        "finished_at": datetime.now(UTC),
        "as_of": extraction.as_of,
        "duration_seconds": time.perf_counter() - clock,
        "tokens": snapshot.tokens.height,
        "live": counts.get("live", 0),
        "staged": counts.get("staged", 0),
        "disconnected": counts.get("disconnected", 0),
        "quarantined": quarantine.height,
        "requests": stats["requests"],
        "retries": stats["retries"],
        "rate_limited": stats["rate_limited"],
        "invalid_tokens": token_outcomes.get("invalid_token", 0),
        "needs_reauth": token_outcomes.get("needs_reauth", 0),
        "failed_tokens": token_outcomes.get("failed", 0),
        "status": "success",
    }
    load = warehouse.load_run(
        RunLoad(
            run_id=run_id,
            as_of=extraction.as_of,
            connections=connections,
            entities=entity_validation.valid.select(
                "connection_id", "entity_id", "entity_name", "source_id", "entity_status", "run_id"
            ),
            tokens=snapshot.tokens,
            quarantine=quarantine,
            sync_run=sync_run,
            raw_responses=extraction.raw,
            new_sessions=new_sessions,
            session_progress=snapshot.session_progress.select(
                "session_id", *SESSION_PROGRESS_COLUMNS
            ),
        )
    )
    return SyncResult(
        run_id=run_id,
        as_of=extraction.as_of,
        connections=connections,
        validation=validation,
        entity_validation=entity_validation,
        quarantine=quarantine,
        sync_run=sync_run,
        request_stats=stats,
        token_outcomes=token_outcomes,
        load=load,
    )


def _quarantine(
    run_id: str,
    as_of: datetime,
    snapshot: Snapshot,
    validation: ValidationOutcome,
    entity_validation: ValidationOutcome,
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
    ]
    return pl.concat(parts).with_columns(
        pl.lit(run_id).alias("run_id"),
        pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias("quarantined_at"),
    )
