"""The sync asset: Finch → validated snapshot → warehouse tables, in one step.

One step on purpose: access tokens exist only in this step's memory, never in Dagster's
storage between steps, and the load is one transaction over every table it writes.
"""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from connections_pipeline.assets.failures import (
    BUSY_CAUSE,
    FAILURE_CAUSE,
    HELD_CAUSE,
    opened_warehouse,
    setting_failure,
)
from connections_pipeline.assets.metadata import progress_logger, sync_metadata
from connections_pipeline.assets.notifications import (
    digest_after_load,
    notify,
    notify_with_warehouse,
)
from connections_pipeline.assets.table_schemas import (
    ROW_COUNT,
    ROWS_CHANGED,
    TABLE_NAME,
    table_schema_metadata,
)
from connections_pipeline.finch import FinchConfigError
from connections_pipeline.finch.config import FINCH_IP_WINDOW_SECONDS
from connections_pipeline.notify.messages import failed_alert, held_alert, partial_alert
from connections_pipeline.pools import FINCH_POOL
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.resources.redacted_fields import scrub_resources
from connections_pipeline.resources.sync_guard import SyncGuardError
from connections_pipeline.sources.records import TokenSourceError
from connections_pipeline.sync.run import SyncHeld, SyncResult, SyncSettings, run_sync
from connections_pipeline.transform.guards import Verdict
from connections_pipeline.warehouse import (
    CONNECT_SESSIONS,
    CONNECTION_ENTITIES,
    CONNECTION_ROW_HASHES,
    CONNECTIONS,
    CONNECTIONS_HISTORY,
    QUARANTINE,
    RAW_RESPONSES,
    RUN_HELD,
    RUN_PARTIAL,
    SYNC_RUNS,
    TOKENS,
    WEBHOOK_EVENTS,
    Warehouse,
    WarehouseConnectionError,
)
from connections_pipeline.warehouse.engine import WarehouseBusyError
from connections_pipeline.webhooks.settle import (
    LEFT_WAITING,
    InboxWork,
    Settled,
    inbox_work,
    settle_full,
    settle_targeted,
)

SYNC_GROUP = "finch_sync"
SYNC_OP = "sync_finch_connections"
SETTINGS_ERRORS = (FinchConfigError, TokenSourceError, WarehouseConnectionError, SyncGuardError)
CONNECTIONS_VALID = "connections_pass_schema"
ENTITIES_VALID = "entities_pass_schema"
TOKENS_ANSWERED = "every_token_answered"
SNAPSHOT_TRUSTED = "snapshot_is_plausible"
MAX_SYNC_RETRIES = 2

SOURCES_GROUP = "finch_sources"
TOKEN_SOURCE = "finch_token_source"
SESSION_SOURCE = "finch_session_source"
WEBHOOK_SOURCE = "finch_webhook_deliveries"
# What the sync reads but no run of this code location writes: the application's own records.
SOURCE_ASSETS = [
    dg.AssetSpec(
        TOKEN_SOURCE,
        description="The application's Finch access tokens, with what `POST /auth/token` "
        "answered: `CONNECTIONS_TOKENS_FILE`, or `CONNECTIONS_TOKENS_URL` with "
        "`CONNECTIONS_TOKENS_QUERY` (the embedded sandbox's tokens by default). Read by every "
        "sync; the tokens themselves are never stored.",
        group_name=SOURCES_GROUP,
        kinds={"python"},
    ),
    dg.AssetSpec(
        SESSION_SOURCE,
        description="Connect sessions the application created outside this pipeline: "
        "`CONNECTIONS_SESSIONS_FILE` or `CONNECTIONS_SESSIONS_QUERY` (optional).",
        group_name=SOURCES_GROUP,
        kinds={"python"},
    ),
    dg.AssetSpec(
        WEBHOOK_SOURCE,
        description="Finch's webhook deliveries (`account.updated`, job completions), "
        "verified and stored in `finch_webhook_events` by `connections-pipeline webhooks "
        "serve` (optional).",
        group_name=SOURCES_GROUP,
        kinds={"python"},
    ),
]

# Each table the sync step writes, what it holds, and what it is built from: the Finch
# answers (`finch_raw_responses`) and the application's records. Upstream tables first.
SYNC_ASSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    RAW_RESPONSES: (
        "Every Finch response of each run (JSON, fetch time, token fingerprint, outcome), so "
        "a run can be replayed without Finch.",
        (TOKEN_SOURCE,),
    ),
    CONNECT_SESSIONS: (
        "The Connect-session ledger: links this pipeline or the application created, and "
        "their progress (pending, completed, expired), completed from the connections Finch "
        "answered for.",
        (SESSION_SOURCE, RAW_RESPONSES),
    ),
    TOKENS: (
        "One row per access token ever read, by fingerprint: its connection and its last outcome.",
        (TOKEN_SOURCE, RAW_RESPONSES),
    ),
    CONNECTIONS: (
        "The Connections page: one row per connection and per staged session.",
        (RAW_RESPONSES, CONNECT_SESSIONS, TOKENS),
    ),
    CONNECTIONS_HISTORY: (
        "SCD type 2 history of the tracked connection attributes.",
        (CONNECTIONS,),
    ),
    CONNECTION_ROW_HASHES: (
        "The loader's bookkeeping: a content hash per finch_connections row, so a run reads "
        "back only the rows whose content changed. Not for reporting.",
        (CONNECTIONS,),
    ),
    CONNECTION_ENTITIES: ("One row per entity of each live connection.", (RAW_RESPONSES,)),
    QUARANTINE: (
        "Records that could not be loaded (a Finch answer, a row, a token or session source "
        "row), with the reason.",
        (TOKEN_SOURCE, SESSION_SOURCE, RAW_RESPONSES),
    ),
    SYNC_RUNS: (
        "One row per sync: counts per state, requests, retries, 429s, duration, status.",
        (RAW_RESPONSES, CONNECTIONS, QUARANTINE),
    ),
    WEBHOOK_EVENTS: (
        "The webhook inbox, one row per Finch event: the receiver stores it, and the sync "
        "that answered it (the targeted sync the webhook sensor launched, or a full sync) "
        "marks it processed.",
        (WEBHOOK_SOURCE, RAW_RESPONSES),
    ),
}


class SyncConfig(dg.Config):
    company_ttl_days: float = Field(
        default=7.0, description="Reuse a company name this long before asking Finch again."
    )
    accept_mass_change: bool = Field(
        default=False,
        description="Load this run even if its changes look implausible (a mass "
        "disconnection, most tokens failing): set it once you have checked the change is real.",
    )
    webhook_event_ids: list[str] = Field(
        default_factory=list,
        description="Set by the finch_webhook_events sensor: a targeted sync of just the "
        "connections these webhook events name (the rest keep their rows); empty for a full "
        "sync.",
    )


@dg.multi_asset(
    name=SYNC_OP,
    specs=[
        dg.AssetSpec(
            key,
            description=description,
            deps=deps,
            group_name=SYNC_GROUP,
            kinds={"python"},
            metadata=table_schema_metadata(key),
        )
        for key, (description, deps) in SYNC_ASSETS.items()
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CONNECTIONS_VALID,
            asset="finch_connections",
            description="Rows failing the Pandera model are quarantined, not loaded.",
        ),
        dg.AssetCheckSpec(
            ENTITIES_VALID,
            asset="finch_connection_entities",
            description="Entity rows failing the Pandera model are quarantined, not loaded.",
        ),
        dg.AssetCheckSpec(
            TOKENS_ANSWERED,
            asset="finch_raw_responses",
            description="Warns when tokens could not be read after retries.",
        ),
        dg.AssetCheckSpec(
            SNAPSHOT_TRUSTED,
            asset="finch_connections",
            description="Fails when the run was held: too many live connections leaving Live, "
            "too many tokens without an answer, or tokens of another Finch application. "
            "Blocking: nothing downstream builds on a held run.",
            blocking=True,
        ),
    ],
    # A retry starts a new process whose pacer has forgotten what the failed attempt sent:
    # waiting out Finch's per-IP window first keeps the two from adding up to an IP block.
    retry_policy=dg.RetryPolicy(
        max_retries=MAX_SYNC_RETRIES,
        delay=FINCH_IP_WINDOW_SECONDS + 30,
        backoff=dg.Backoff.EXPONENTIAL,
    ),
    pool=FINCH_POOL,
)
def sync_finch_connections(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    finch: FinchResource,
    token_source: TokenSourceResource,
    warehouse: WarehouseResource,
    sync_guard: SyncGuardResource,
    notifier: NotifierResource,
):
    try:
        yield from _sync(context, config, finch, token_source, warehouse, sync_guard, notifier)
    except Exception as exc:
        # One alert per run: at its last attempt, and not for a held run (alerted as held).
        if _final_failure(context, exc):
            error = (
                exc.description if isinstance(exc, dg.Failure) else f"{type(exc).__name__}: {exc}"
            )
            alert = failed_alert(
                _run_key(context),
                scrub_resources(str(error), finch, token_source, warehouse, notifier),
                notifier.run_link(context.run.run_id),
            )
            notify_with_warehouse(context.log, notifier, warehouse, [alert])
        raise


def _run_key(context: dg.AssetExecutionContext) -> str:
    """The run a message is about: the first of a re-executed run's chain, so re-executing
    a failed run alerts once."""
    return context.run.root_run_id or context.run.run_id


def _final_failure(context: dg.AssetExecutionContext, exc: Exception) -> bool:
    if isinstance(exc, dg.Failure):
        cause = exc.metadata.get(FAILURE_CAUSE)
        if cause is not None and cause.value == HELD_CAUSE:
            return False
        if not exc.allow_retries:
            return True
    return context.retry_number >= MAX_SYNC_RETRIES


def _sync(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    finch: FinchResource,
    token_source: TokenSourceResource,
    warehouse: WarehouseResource,
    sync_guard: SyncGuardResource,
    notifier: NotifierResource,
):
    try:
        settings = SyncSettings(
            company_ttl=timedelta(days=config.company_ttl_days),
            thresholds=sync_guard.thresholds(),
            accept_mass_change=config.accept_mass_change,
            budget=sync_guard.budget(),
        )
    except SyncGuardError as exc:
        raise setting_failure(str(exc)) from None
    started = datetime.now(UTC)
    with opened_warehouse(warehouse) as store:
        try:
            work = _targeted_work(store, config.webhook_event_ids)
            if work is not None:
                context.log.info(
                    f"Targeted sync: {len(work.targets.connection_ids)} connections named by "
                    f"{work.events.height} webhook events"
                )
                settings = replace(
                    settings,
                    only_connection_ids=work.targets.connection_ids,
                    jobs_for_connection_ids=work.targets.jobs_for,
                )
            result = sync_with_resources(
                context.run.run_id,
                finch,
                token_source,
                store,
                settings,
                progress=progress_logger(context.log),
            )
        except WarehouseBusyError as exc:
            # Another process holds the DuckDB file: no setting to fix, and the retry delay
            # (sized for Finch's IP window) would only keep the caller waiting; fail once.
            raise dg.Failure(
                description=str(exc), metadata={FAILURE_CAUSE: BUSY_CAUSE}, allow_retries=False
            ) from None
        except SETTINGS_ERRORS as exc:
            raise setting_failure(str(exc), finch, token_source, warehouse) from None
        except SyncHeld as held:
            # Recorded as held; the previous snapshot stays and nothing downstream runs on it.
            yield _trust_check(held.result.verdict, held.result)
            figures = _figures(held.result.verdict)
            reason = held.result.sync_run["status_reason"] or str(held)
            alert = held_alert(
                _run_key(context), reason, figures, notifier.run_link(context.run.run_id)
            )
            notified = notify(context.log, notifier, store, [alert])
            raise dg.Failure(
                description=str(held),
                metadata={FAILURE_CAUSE: HELD_CAUSE, **figures, **notified},
                allow_retries=False,
            ) from None
        settled = _settle(context, store, work, started)
        alerts = []
        if result.status == RUN_PARTIAL:
            reason = result.sync_run["status_reason"] or "some calls failed after retries"
            figures = {"failed_tokens": result.token_outcomes.get("failed", 0)}
            link = notifier.run_link(context.run.run_id)
            alerts.append(partial_alert(_run_key(context), reason, figures, link))
        notified = digest_after_load(
            context.log, notifier, store, result.as_of, context.run.run_id, alerts
        )
        # Rows in each table once the run's transaction committed, for `dagster/row_count`.
        row_counts = store.row_counts(SYNC_ASSETS)
        table_prefix = store.schema
    context.log.info(
        "Synced as of %s (%s): %s; %d quarantined",
        result.as_of.isoformat(),
        result.status,
        ", ".join(f"{state} {count}" for state, count in result.state_counts.items()),
        result.quarantine.height,
    )
    if result.sync_run["status_reason"]:
        context.log.warning("Sync %s: %s", result.status, result.sync_run["status_reason"])
    metadata = sync_metadata(result, row_counts, table_prefix)
    metadata[CONNECTIONS].update(notified)
    metadata[WEBHOOK_EVENTS] = {
        **_webhook_metadata(work, settled),
        ROW_COUNT: row_counts[WEBHOOK_EVENTS],
        TABLE_NAME: f"{table_prefix}.{WEBHOOK_EVENTS}",
    }
    # In SYNC_ASSETS' order: Dagster wants a multi-asset's outputs upstream first.
    for key in SYNC_ASSETS:
        yield dg.MaterializeResult(asset_key=key, metadata=metadata[key])
    yield _trust_check(result.verdict, result)
    yield dg.AssetCheckResult(
        check_name=CONNECTIONS_VALID,
        asset_key="finch_connections",
        passed=result.validation.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined_rows": result.validation.quarantined.height,
            "loaded_rows": result.validation.valid.height,
            "failed_checks": dg.MetadataValue.json(result.validation.failed_checks),
        },
    )
    yield dg.AssetCheckResult(
        check_name=ENTITIES_VALID,
        asset_key="finch_connection_entities",
        passed=result.entity_validation.passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantined_rows": result.entity_validation.quarantined.height},
    )
    failed = result.token_outcomes.get("failed", 0)
    yield dg.AssetCheckResult(
        check_name=TOKENS_ANSWERED,
        asset_key="finch_raw_responses",
        passed=failed == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed_tokens": failed,
            "outcomes": dg.MetadataValue.json(result.token_outcomes),
        },
    )


def sync_with_resources(
    run_id: str,
    finch: FinchResource,
    token_source: TokenSourceResource,
    warehouse: Warehouse,
    settings: SyncSettings | None = None,
    progress: Any = None,
) -> SyncResult:
    """The sync from its resources: every setting checked before anything is read or
    written, then the token source read and `run_sync`.

    Raises:
        FinchConfigError, TokenSourceError, WarehouseConnectionError: unusable settings.
        SyncHeld: the run was held.
    """
    application = finch.application()
    kind = token_source.resolved_kind(finch)
    warehouse.check_connection()
    batch = token_source.load(finch)
    settings = settings or SyncSettings()
    simulated = settings.clock.simulated_clock or _simulated_clock(finch, kind)
    clock = replace(settings.clock, simulated_clock=simulated)
    return run_sync(
        run_id,
        finch,
        batch,
        warehouse,
        replace(settings, application=application, clock=clock),
        progress=progress,
        scrub=lambda text: scrub_resources(text, finch, token_source),
    )


def _simulated_clock(finch: FinchResource, token_kind: str) -> str | None:
    """How the summary names the clock of an emulator, None for Finch. The emulator's
    clock is simulated (moved days ahead by tests and demos); a sync reading its tokens (the
    `sandbox` source) is talking to one, embedded or served at FINCH_BASE_URL."""
    if token_kind != "sandbox":
        return None
    where = "embedded" if finch.embedded else "served"
    return f"the {where} Finch sandbox's simulated clock"


def _targeted_work(store: Warehouse, event_ids: list[str]) -> InboxWork | None:
    if not event_ids:
        return None
    store.ensure_tables()
    return inbox_work(store, event_ids)


def _settle(
    context: dg.AssetExecutionContext,
    store: Warehouse,
    work: InboxWork | None,
    started: datetime,
) -> Settled | int:
    """Mark the webhook events this loaded sync answered; a full sync answers those that
    arrived before it started, for the connections it asked about."""
    run_id = context.run.run_id
    if work is None:
        marked = settle_full(store, run_id, started)
        if marked:
            context.log.info(f"{marked} waiting webhook events answered by this full sync")
        return marked
    if work.missing:
        context.log.warning(f"{len(work.missing)} webhook event IDs are not in the inbox")
    settled = settle_targeted(store, run_id, work)
    if settled.unknown_connections:
        shown = ", ".join(settled.unknown_connections[:20])
        context.log.warning(
            f"Webhook events named {len(settled.unknown_connections)} connections the token "
            f"source has no token of (recorded as unknown_connection, no row made): {shown}"
        )
    return settled


def _webhook_metadata(work: InboxWork | None, settled: Settled | int) -> dict[str, Any]:
    if work is None or not isinstance(settled, Settled):
        answered = int(settled)
        return {"sync_scope": "full", "webhook_events_answered": answered, ROWS_CHANGED: answered}
    marked = sum(n for outcome, n in settled.counts.items() if outcome != LEFT_WAITING)
    return {
        ROWS_CHANGED: marked,
        "sync_scope": "targeted",
        "targeted_connections": len(work.targets.connection_ids),
        "webhook_events": dg.MetadataValue.json(settled.counts),
        "unknown_connections": dg.MetadataValue.json(list(settled.unknown_connections[:100])),
    }


def _figures(verdict: Verdict) -> dict[str, Any]:
    figures = verdict.figures
    return {
        "previous_live": figures.previous_live,
        "leaving_live": figures.leaving_live,
        "leaving_source": figures.leaving_source,
        "tokens": figures.tokens,
        "failed_tokens": figures.failed_tokens,
        "newly_invalid_tokens": figures.newly_invalid_tokens,
        "source_rows_rejected": figures.rejected_source_rows,
        "other_application_tokens": figures.other_application_tokens,
    }


def _trust_check(verdict: Verdict, result: SyncResult) -> dg.AssetCheckResult:
    held = result.status == RUN_HELD
    return dg.AssetCheckResult(
        check_name=SNAPSHOT_TRUSTED,
        asset_key="finch_connections",
        passed=not held,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.sync_run["status_reason"] or "every figure within its threshold",
        metadata={
            "status": result.status,
            "accepted_mass_change": bool(result.sync_run["accepted_mass_change"]),
            **_figures(verdict),
        },
    )
