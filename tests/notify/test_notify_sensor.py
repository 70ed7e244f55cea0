"""Run alerts from the sync asset however it is launched (here `dg.materialize`, as
`dagster job execute` does: no daemon, no run-status sensor), and the notifications sensor:
it sends what waited and says once that the snapshot is stale."""

from pathlib import Path

import dagster as dg
import pytest
from receivers import http_receiver

from connections_pipeline.assets.sync import sync_finch_connections
from connections_pipeline.notification_sensor import notifications_sensor
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow


def sync_resources(tmp_path: Path, notifier: NotifierResource, **token_source: str) -> dict:
    return {
        "finch": FinchResource(sandbox_seed=59, sandbox_connections=60),
        "token_source": TokenSourceResource(**token_source),
        "warehouse": WarehouseResource(url=f"duckdb:///{tmp_path / 'wh.duckdb'}"),
        "sync_guard": SyncGuardResource(),
        "notifier": notifier,
    }


def tick(sensor: dg.SensorDefinition, resources: dict) -> str:
    context = dg.build_sensor_context(
        resources={name: resources[name] for name in ("notifier", "warehouse")}
    )
    result = sensor(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message


def test_a_failed_sync_alerts_once_naming_the_cause(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-tokens.csv"
    with http_receiver() as hook:
        notifier = NotifierResource(runs=hook.url, timeout_seconds=3)
        resources = sync_resources(tmp_path, notifier, kind="file", tokens_file=str(missing))
        result = dg.materialize([sync_finch_connections], resources=resources, raise_on_error=False)
    assert not result.success
    [alert] = hook.posts
    assert alert["title"] == "Connections sync failed"
    [failure] = [event for event in result.all_events if event.is_step_failure]
    cause = failure.step_failure_data.user_failure_data.description
    assert "CONNECTIONS_TOKENS_FILE" in cause
    assert f"Sync run {result.run_id} failed: {cause}" in alert["message"]


def test_the_sensor_sends_what_waited_then_alerts_a_stale_snapshot_once(tmp_path: Path) -> None:
    with http_receiver(up=False) as hook:
        notifier = NotifierResource(runs=hook.url, needs_action=hook.url, timeout_seconds=3)
        resources = sync_resources(tmp_path, notifier)
        assert dg.materialize([sync_finch_connections], resources=resources).success
        with Warehouse(resources["warehouse"].url) as store:
            [waiting] = store.read_table("finch_notifications")["kind"].to_list()
        assert waiting == "digest"

        hook.start()
        fresh = notifications_sensor(24.0, dg.DefaultSensorStatus.RUNNING)
        assert tick(fresh, resources) == "1 sent, 0 waiting"
        assert [post["title"].split(":")[0] for post in hook.posts] == ["Finch connections"]
        assert tick(fresh, resources) == "0 sent, 0 waiting"

        # A policy the snapshot has outlived: one alert, however many ticks.
        strict = notifications_sensor(1e-4, dg.DefaultSensorStatus.RUNNING)
        assert tick(strict, resources) == "1 sent, 0 waiting"
        assert tick(strict, resources) == "0 sent, 0 waiting"
    stale = [post for post in hook.posts if post["title"] == "Connections snapshot is stale"]
    assert len(stale) == 1 and "CONNECTIONS_FRESHNESS_HOURS" in stale[0]["message"]
