"""Automation beyond schedules: refresh the CSV exports after each successful sync."""

from typing import Any

import dagster as dg

from connections_pipeline.partitions import CONNECTION_STATES

EXPORT_SENSOR_NAME = "export_csv_after_sync"

# What `dg.define_asset_job` returns; Dagster does not export the class's name.
AssetJob = Any


def export_after_sync_sensor(
    sync_job: AssetJob, export_job: AssetJob
) -> dg.RunStatusSensorDefinition:
    """A sensor asking for one export run per connection state when `sync_job` succeeds.

    One run per state (not `partitions_def` on the job, deprecated in Dagster 1.13): the
    export job targets a partitioned asset, so each request names its partition. The run
    key is the sync run's ID and the state, so a sync never triggers the same export twice.
    """

    @dg.run_status_sensor(
        name=EXPORT_SENSOR_NAME,
        description="After each successful sync_connections run, export every state's CSV.",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[sync_job],
        request_job=export_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def export_csv_after_sync(context: dg.RunStatusSensorContext) -> list[dg.RunRequest]:
        sync_run_id = context.dagster_run.run_id
        return [
            dg.RunRequest(
                run_key=f"{sync_run_id}:{state}",
                partition_key=state,
                tags={"connections_pipeline/sync_run_id": sync_run_id},
            )
            for state in CONNECTION_STATES
        ]

    return export_csv_after_sync
