"""A full sync asks Finch about every connection: it answers every event that waited."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from connections_pipeline.assets.sync import sync_finch_connections
from connections_pipeline.resources import (
    FinchResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)

pytestmark = pytest.mark.slow


def test_a_full_sync_marks_the_events_received_before_it_reconciled(tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    store = warehouse.open()
    store.ensure_tables()
    earlier = datetime.now(UTC) - timedelta(minutes=3)
    for event_id in ("e1", "e2"):
        store.store_webhook_event(
            {
                "event_id": event_id,
                "event_type": "account.updated",
                "connection_id": f"conn-{event_id}",
                "finch_timestamp": earlier,
                "received_at": earlier,
            }
        )
    store.mark_webhook_events({"e2": "synced"}, "an-earlier-run", earlier)
    result = dg.materialize(
        [sync_finch_connections],
        resources={
            "finch": FinchResource(sandbox_seed=51, sandbox_connections=20),
            "token_source": TokenSourceResource(),
            "warehouse": warehouse,
            "sync_guard": SyncGuardResource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    inbox = {
        row["event_id"]: row
        for row in store.read_table("finch_webhook_events").iter_rows(named=True)
    }
    assert (inbox["e1"]["outcome"], inbox["e1"]["processed_by_run"]) == (
        "reconciled",
        result.run_id,
    )
    assert (inbox["e2"]["outcome"], inbox["e2"]["processed_by_run"]) == ("synced", "an-earlier-run")
    [metadata] = [
        event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey("finch_connections")
    ]
    assert metadata["sync_scope"].value == "full"
    assert metadata["webhook_events_reconciled"].value == 1
    store.dispose()
