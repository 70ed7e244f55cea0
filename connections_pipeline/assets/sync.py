"""The sync asset: Finch → validated snapshot → warehouse tables, in one step.

One step on purpose: access tokens exist only in this step's memory, never in Dagster's
storage between steps, and the load is one transaction over every table it writes.
"""

from datetime import timedelta

import dagster as dg

from connections_pipeline.assets.metadata import progress_logger, sync_metadata
from connections_pipeline.finch import FinchConfigError
from connections_pipeline.finch.config import FINCH_IP_WINDOW_SECONDS
from connections_pipeline.pools import FINCH_POOL
from connections_pipeline.resources import FinchResource, TokenSourceResource, WarehouseResource
from connections_pipeline.resources.redaction import scrub_resources
from connections_pipeline.resources.token_source import TokenSourceError
from connections_pipeline.sync.run import SyncSettings, run_sync
from connections_pipeline.warehouse import WarehouseConnectionError

SYNC_GROUP = "finch_sync"
SETTINGS_ERRORS = (FinchConfigError, TokenSourceError, WarehouseConnectionError)
CONNECTIONS_VALID = "connections_pass_schema"
ENTITIES_VALID = "entities_pass_schema"
TOKENS_ANSWERED = "every_token_answered"

SYNC_ASSETS = {
    "finch_raw_responses": "Every Finch response of each run (JSON, fetch time, token "
    "fingerprint, outcome), so a run can be replayed without Finch.",
    "finch_connections": "The Connections page: one row per connection and per staged session.",
    "finch_connections_history": "SCD type 2 history of the tracked connection attributes.",
    "finch_connection_entities": "One row per entity of each live connection.",
    "finch_sync_runs": "One row per sync: counts per state, requests, retries, 429s, duration.",
}


class SyncConfig(dg.Config):
    company_ttl_days: float = 7.0


@dg.multi_asset(
    name="sync_finch_connections",
    specs=[
        dg.AssetSpec(key, description=description, group_name=SYNC_GROUP, kinds={"python"})
        for key, description in SYNC_ASSETS.items()
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
    ],
    # A retry starts a new process whose pacer has forgotten what the failed attempt sent:
    # waiting out Finch's per-IP window first keeps the two from adding up to an IP block.
    retry_policy=dg.RetryPolicy(
        max_retries=2, delay=FINCH_IP_WINDOW_SECONDS + 30, backoff=dg.Backoff.EXPONENTIAL
    ),
    pool=FINCH_POOL,
)
def sync_finch_connections(
    context: dg.AssetExecutionContext,
    config: SyncConfig,
    finch: FinchResource,
    token_source: TokenSourceResource,
    warehouse: WarehouseResource,
):
    try:
        store = warehouse.open()
    except ValueError as exc:
        raise dg.Failure(description=warehouse.scrub(str(exc)), allow_retries=False) from None
    try:
        result = run_sync(
            context.run.run_id,
            finch,
            token_source,
            store,
            SyncSettings(company_ttl=timedelta(days=config.company_ttl_days)),
            progress=progress_logger(context.log),
        )
    except SETTINGS_ERRORS as exc:
        # A wrong setting fails the same way on every retry: fail once, clearly. The
        # message may quote a URL: nothing any resource holds as a secret goes with it.
        description = scrub_resources(str(exc), finch, token_source, warehouse)
        raise dg.Failure(description=description, allow_retries=False) from None
    finally:
        store.dispose()
    context.log.info(
        "Synced as of %s: %s; %d quarantined",
        result.as_of.isoformat(),
        ", ".join(f"{state} {count}" for state, count in result.state_counts.items()),
        result.quarantine.height,
    )
    for key, metadata in sync_metadata(result).items():
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
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
