"""A full sync asks Finch about every connection: it answers the events that waited."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from connections_pipeline.assets.sync import sync_finch_connections
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)

pytestmark = pytest.mark.slow


def test_a_full_sync_reconciles_the_events_of_connections_it_asked_about(
    tmp_path: Path,
) -> None:
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    resources = {
        "finch": FinchResource(sandbox_seed=51, sandbox_connections=20),
        "token_source": TokenSourceResource(),
        "warehouse": warehouse,
        "sync_guard": SyncGuardResource(),
        "notifier": NotifierResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([sync_finch_connections], resources=resources, instance=instance).success
    store = warehouse.open()
    live = store.read_current().filter(store.read_current()["state"] == "live")
    known = live["connection_id"][0]
    earlier = datetime.now(UTC) - timedelta(minutes=3)
    events = {
        "e1": (known, "account.updated"),
        "e2": (known, "account.updated"),
        "e3": ("conn-nobody-knows", "account.updated"),
        "e4": (known, "directory.updated"),
    }
    for event_id, (connection_id, event_type) in events.items():
        store.store_webhook_event(
            {
                "event_id": event_id,
                "event_type": event_type,
                "connection_id": connection_id,
                "finch_timestamp": earlier,
                "received_at": earlier,
            }
        )
    store.mark_webhook_events({"e2": "synced"}, "an-earlier-run", earlier)
    result = dg.materialize([sync_finch_connections], resources=resources, instance=instance)
    assert result.success
    inbox = {
        row["event_id"]: (row["outcome"], row["processed_by_run"])
        for row in store.read_table("finch_webhook_events").iter_rows(named=True)
    }
    assert inbox == {
        "e1": ("reconciled", result.run_id),
        "e2": ("synced", "an-earlier-run"),
        "e3": (None, None),  # no token of it was asked about: it waits for the sensor
        "e4": ("ignored", result.run_id),
    }
    [metadata] = [
        event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("finch_webhook_events")
    ]
    assert metadata["sync_scope"].value == "full"
    assert metadata["webhook_events_answered"].value == 2
    store.dispose()
