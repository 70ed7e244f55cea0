"""After a successful sync run, the sensor asks for one export run per state; they run."""

from pathlib import Path

import dagster as dg
import pytest
from export_helpers import STATES, partition_metadata

from connections_pipeline.definitions import EXPORT_JOB_NAME, SYNC_JOB_NAME, defs
from connections_pipeline.sensors import EXPORT_SENSOR_NAME

pytestmark = pytest.mark.slow


def test_successful_sync_requests_one_export_run_per_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "40")
    monkeypatch.setenv("CONNECTIONS_EXPORT_URL", str(tmp_path / "exports"))
    definitions = defs()
    sensor = definitions.resolve_sensor_def(EXPORT_SENSOR_NAME)
    assert sensor.job_name == EXPORT_JOB_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING

    instance = dg.DagsterInstance.ephemeral()
    sync = definitions.resolve_job_def(SYNC_JOB_NAME).execute_in_process(instance=instance)
    assert sync.success
    context = dg.build_run_status_sensor_context(
        sensor_name=EXPORT_SENSOR_NAME,
        dagster_event=sync.get_run_success_event(),
        dagster_instance=instance,
        dagster_run=sync.dagster_run,
    )
    requests = sensor(context)

    assert [request.partition_key for request in requests] == list(STATES)
    assert len({request.run_key for request in requests}) == len(STATES)
    assert all(sync.run_id in request.run_key for request in requests)

    export_job = definitions.resolve_job_def(EXPORT_JOB_NAME)
    for request in requests:
        run = export_job.execute_in_process(
            instance=instance, partition_key=request.partition_key, tags=request.tags
        )
        assert run.success
        assert set(partition_metadata(run)) == {request.partition_key}
        assert (tmp_path / "exports" / f"connections_{request.partition_key}_latest.csv").is_file()
