"""The sensor that turns Finch webhook events into targeted syncs.

Each tick reads the unprocessed events of `finch_webhook_events` and asks for one run of the
sync job with the event IDs in its run config; that run asks Finch (`/introspect`, plus
`/jobs/automated` after a job completion) about those connections only, loads through the
same guarded path as the scheduled sync, in the same Finch pool, and marks the events
processed. The exports and SQL models follow it like any sync (`automation.py`).

The cursor holds the event IDs a tick already launched a run for and that are not processed
yet, so a run still queued is not asked for twice. Events that no sync needs (another event
type, no connection ID) are marked `ignored` here, without a run.
"""

import hashlib
import json
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa

from connections_pipeline.assets.failures import error_line
from connections_pipeline.assets.sync import SYNC_OP
from connections_pipeline.resources import WarehouseResource
from connections_pipeline.warehouse import WEBHOOK_IGNORED, WarehouseConnectionError
from connections_pipeline.webhooks.plan import plan_tick

WEBHOOK_SENSOR_NAME = "finch_webhook_events"
INTERVAL_SETTING = "CONNECTIONS_WEBHOOK_SENSOR_SECONDS"
DEFAULT_INTERVAL_SECONDS = 30
# Events per targeted run: a burst (a provider outage moving thousands of connections to
# reauth) becomes several runs, each a short hold on the Finch pool.
MAX_EVENTS_PER_RUN = 500
PENDING_READ_LIMIT = 5_000
TRIGGER_TAG = "connections/trigger"
WEBHOOK_TRIGGER = "webhook"


def webhook_run_config(event_ids: list[str]) -> dict:
    return {"ops": {SYNC_OP: {"config": {"webhook_event_ids": event_ids}}}}


def webhook_sensor(
    job_name: str,
    interval_seconds: int = DEFAULT_INTERVAL_SECONDS,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """The sensor, targeting the sync job.

    Args:
        job_name: the sync job's name.
        interval_seconds: time between ticks; an event reaches the warehouse about one tick
            plus one targeted run after it arrives.
        default_status: running by default only where a receiver feeds the inbox.
    """

    @dg.sensor(
        name=WEBHOOK_SENSOR_NAME,
        job_name=job_name,
        minimum_interval_seconds=interval_seconds,
        default_status=default_status,
        description="Syncs just the connections that Finch webhook events (account.updated, "
        "job completions) named, minutes after the event instead of at the next scheduled "
        "sync.",
    )
    def finch_webhook_events(
        context: dg.SensorEvaluationContext, warehouse: WarehouseResource
    ) -> dg.SensorResult | dg.SkipReason:
        launched = json.loads(context.cursor) if context.cursor else []
        try:
            # Opened per tick: a DuckDB file stays free for the runs in between.
            store = warehouse.open(hold_connections=False)
        except ValueError as exc:
            return dg.SkipReason(f"warehouse setting unusable: {warehouse.scrub(str(exc))}")
        try:
            pending = store.pending_webhook_events(PENDING_READ_LIMIT)
            plan = plan_tick(pending, launched, MAX_EVENTS_PER_RUN)
            if plan.ignored:
                now = datetime.now(UTC)
                store.mark_webhook_events(dict.fromkeys(plan.ignored, WEBHOOK_IGNORED), None, now)
        except (WarehouseConnectionError, sa.exc.DBAPIError) as exc:
            # No inbox yet (no receiver has run) or the warehouse is busy: try next tick.
            return dg.SkipReason(f"inbox not readable: {error_line(exc, warehouse)}")
        finally:
            store.dispose()
        cursor = json.dumps(sorted({*plan.in_flight, *plan.launch}))
        if not plan.launch:
            skip = f"no new events ({len(plan.in_flight)} waiting for a launched run"
            skip += f", {len(plan.ignored)} ignored)" if plan.ignored else ")"
            return dg.SensorResult(skip_reason=skip, cursor=cursor)
        event_ids = list(plan.launch)
        key = hashlib.sha256("\n".join(sorted(event_ids)).encode()).hexdigest()[:24]
        context.log.info(f"Targeted sync for {len(event_ids)} webhook events")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"webhooks-{key}",
                    run_config=webhook_run_config(event_ids),
                    tags={TRIGGER_TAG: WEBHOOK_TRIGGER},
                )
            ],
            cursor=cursor,
        )

    return finch_webhook_events
