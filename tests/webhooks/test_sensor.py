"""The webhook sensor over a real inbox: what it asks for, once, and what it marks itself."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from webhook_helpers import make_warehouse

from connections_pipeline.assets.sync import SYNC_OP
from connections_pipeline.definitions import SYNC_JOB_NAME
from connections_pipeline.resources import WarehouseResource
from connections_pipeline.warehouse import Warehouse
from connections_pipeline.webhook_sensor import WEBHOOK_SENSOR_NAME, webhook_sensor

T0 = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def event(event_id: str, connection_id: str | None, event_type: str, minute: int) -> dict:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "connection_id": connection_id,
        "entity_id": None,
        "status": "reauth" if event_type == "account.updated" else None,
        "finch_timestamp": T0 + timedelta(minutes=minute),
        "received_at": T0 + timedelta(minutes=minute, seconds=1),
    }


def tick(warehouse: Warehouse, cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
    sensor = webhook_sensor(SYNC_JOB_NAME)
    resource = WarehouseResource(url=warehouse.url.render_as_string(False), schema_name="finch")
    context = dg.build_sensor_context(
        cursor=cursor, sensor_name=WEBHOOK_SENSOR_NAME, resources={"warehouse": resource}
    )
    return sensor(context)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    store = make_warehouse("duckdb", tmp_path, "", hold_connections=False)
    store.ensure_tables()
    return store


def requested_ids(result: dg.SensorResult) -> list[list[str]]:
    return [
        request.run_config["ops"][SYNC_OP]["config"]["webhook_event_ids"]
        for request in result.run_requests or []
    ]


def test_no_inbox_yet_is_a_skip_not_an_error(tmp_path: Path) -> None:
    empty = make_warehouse("duckdb", tmp_path, "", hold_connections=False)
    result = tick(empty)
    skip = result.skip_reason if isinstance(result, dg.SensorResult) else result
    assert "inbox not readable" in str(skip)


def test_unprocessed_events_become_one_targeted_run_asked_for_once(warehouse: Warehouse) -> None:
    warehouse.store_webhook_event(event("e1", "conn-a", "account.updated", 0))
    warehouse.store_webhook_event(event("e2", "conn-b", "job.data_sync_all.completed", 1))
    warehouse.store_webhook_event(event("e3", None, "account.updated", 2))
    warehouse.store_webhook_event(event("e4", "conn-c", "directory.updated", 3))
    first = tick(warehouse)
    assert isinstance(first, dg.SensorResult)
    assert requested_ids(first) == [["e1", "e2"]]
    [request] = first.run_requests
    assert request.run_key and request.tags["connections/trigger"] == "webhook"
    assert json.loads(first.cursor) == ["e1", "e2"]
    inbox = {
        row["event_id"]: row
        for row in warehouse.read_table("finch_webhook_events").iter_rows(named=True)
    }
    assert (inbox["e3"]["outcome"], inbox["e4"]["outcome"]) == ("ignored", "ignored")
    assert inbox["e1"]["processed_at"] is None and inbox["e2"]["processed_at"] is None
    # The launched run has not processed them yet: nothing new to ask for.
    second = tick(warehouse, first.cursor)
    assert requested_ids(second) == []
    # A new event while the first run waits: a run for it alone.
    warehouse.store_webhook_event(event("e5", "conn-a", "account.updated", 4))
    third = tick(warehouse, second.cursor)
    assert requested_ids(third) == [["e5"]]
    # Once processed, events leave the cursor.
    warehouse.mark_webhook_events({"e1": "synced", "e2": "synced"}, "run-1", T0)
    fourth = tick(warehouse, third.cursor)
    assert requested_ids(fourth) == []
    assert json.loads(fourth.cursor) == ["e5"]


@pytest.mark.parametrize(("secret", "status"), [("", "STOPPED"), ("c2VjcmV0", "RUNNING")])
def test_the_sensor_runs_by_default_where_a_receiver_has_its_secret(
    secret: str, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connections_pipeline.definitions import defs

    monkeypatch.setenv("FINCH_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("CONNECTIONS_WEBHOOK_SENSOR_SECONDS", "45")
    [sensor] = [s for s in defs().sensors or [] if s.name == WEBHOOK_SENSOR_NAME]
    assert sensor.default_status == getattr(dg.DefaultSensorStatus, status)
    assert sensor.minimum_interval_seconds == 45
    assert sensor.job_name == SYNC_JOB_NAME


def test_an_unreachable_warehouse_is_a_skip_that_names_the_setting_without_the_password() -> None:
    sensor = webhook_sensor(SYNC_JOB_NAME)
    resource = WarehouseResource(url="postgresql+psycopg://loader:hunter2@127.0.0.1:1/analytics")
    context = dg.build_sensor_context(resources={"warehouse": resource})
    result = sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert "CONNECTIONS_WAREHOUSE_URL" in str(result.skip_message)
    assert "hunter2" not in str(result.skip_message)
