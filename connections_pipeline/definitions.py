"""The one `Definitions` of the code location: assets, checks, jobs, schedules, sensors."""

import os
from datetime import timedelta

import dagster as dg

from connections_pipeline.assets.connect_links import (
    create_connect_link_job,
    finch_reauth_queue,
    reauth_job,
)
from connections_pipeline.assets.exports import EXPORT_GROUP, finch_connections_csv
from connections_pipeline.assets.notifications import NOTIFICATION_TABLES
from connections_pipeline.assets.report import REPORT_GROUP, finch_connections_report
from connections_pipeline.assets.sql_models import sql_model_assets
from connections_pipeline.assets.sync import SOURCE_ASSETS, SYNC_GROUP, sync_finch_connections
from connections_pipeline.automation import automation_sensor
from connections_pipeline.dead_run_sensor import dead_run_sensor
from connections_pipeline.notification_sensor import notifications_sensor
from connections_pipeline.settings import (
    build_resources,
    check_instance_storage_url,
    freshness_hours,
    notifications_configured,
    sync_cron,
    webhook_sensor_seconds,
    webhooks_configured,
)
from connections_pipeline.webhook_sensor import webhook_sensor

SYNC_JOB_NAME = "sync_connections"
EXPORT_JOB_NAME = "export_connections_csv"
REPORT_JOB_NAME = "publish_connections_report"


@dg.definitions
def defs() -> dg.Definitions:
    # Settings are read when Dagster loads the code location, not at import.
    env = dict(os.environ)
    check_instance_storage_url(env)
    sync_job = dg.define_asset_job(
        SYNC_JOB_NAME,
        selection=dg.AssetSelection.groups(SYNC_GROUP),
        description="Rebuild the Connections page from Finch into the warehouse.",
        # One step, so a step subprocess would add a process start and nothing else. In the
        # run worker's own process a sync killed mid-run (SIGKILL, out of memory) is a dead
        # run worker and the run fails at once; in a subprocess the kill became a step retry
        # 330 s later, sending the whole sync again while the run showed as started.
        executor_def=dg.in_process_executor,
    )
    # Partitioned by state through its asset; a run names one partition or a range.
    export_job = dg.define_asset_job(
        EXPORT_JOB_NAME,
        selection=dg.AssetSelection.groups(EXPORT_GROUP),
        description="Write the Connections page's CSV export of each connection state.",
    )
    # Not partitioned: one page holds the three states.
    report_job = dg.define_asset_job(
        REPORT_JOB_NAME,
        selection=dg.AssetSelection.groups(REPORT_GROUP),
        description="Write the Connections page as one HTML report next to the CSV exports.",
    )
    return dg.Definitions(
        assets=[
            *SOURCE_ASSETS,
            *NOTIFICATION_TABLES,
            with_freshness_policy(sync_finch_connections, _sync_freshness(env)),
            finch_connections_csv,
            finch_connections_report,
            finch_reauth_queue,
            *sql_model_assets(),
        ],
        jobs=[sync_job, export_job, report_job, create_connect_link_job, reauth_job],
        schedules=[
            dg.ScheduleDefinition(
                name="sync_connections_schedule",
                job=sync_job,
                cron_schedule=sync_cron(env),
                execution_timezone="UTC",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        ],
        # The exports and SQL models follow each sync through their automation conditions;
        # webhook events start targeted syncs of the connections they name; dead runs give
        # their pool slot back; notifications that could not be sent when their run ended are
        # sent again.
        sensors=[
            automation_sensor(),
            webhook_sensor(
                SYNC_JOB_NAME,
                webhook_sensor_seconds(env),
                dg.DefaultSensorStatus.RUNNING
                if webhooks_configured(env)
                else dg.DefaultSensorStatus.STOPPED,
            ),
            dead_run_sensor(),
            notifications_sensor(
                freshness_hours(env),
                dg.DefaultSensorStatus.RUNNING
                if notifications_configured(env)
                else dg.DefaultSensorStatus.STOPPED,
            ),
        ],
        resources=build_resources(env),
        # Steps of the export, report and SQL-model runs each get a process of their own, as
        # by default, but forked from one that imported this code location once: spawned, each
        # paid the same seconds of imports again for a few seconds of work.
        executor=dg.multiprocess_executor.configured({"start_method": {"forkserver": {}}}),
    )


# The table people read: it must not silently stop moving.
FRESHNESS_CHECKED = dg.AssetKey("finch_connections")


def with_freshness_policy(
    assets: dg.AssetsDefinition, policy: dg.FreshnessPolicy
) -> dg.AssetsDefinition:
    return assets.map_asset_specs(
        lambda spec: (
            dg.apply_freshness_policy(spec, policy) if spec.key == FRESHNESS_CHECKED else spec
        )
    )


def _sync_freshness(env: dict[str, str]) -> dg.FreshnessPolicy:
    """Warn once the last successful sync is older than the schedule allows
    (CONNECTIONS_FRESHNESS_HOURS), fail once it is twice that old."""
    hours = freshness_hours(env)
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=2 * hours), warn_window=timedelta(hours=hours)
    )
