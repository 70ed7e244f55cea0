"""A sync against the emulator over HTTP rebuilds the Dashboard in DuckDB and in Postgres."""

from pathlib import Path

import polars as pl
import pytest
from sync_helpers import (
    NAMES_AT_ONCE,
    RUN_LOG_TABLES,
    disconnected_keys,
    make_warehouse,
    served_sandbox,
    table_contents,
    truth_differences,
)

from connections_pipeline.assets.sync import sync_with_resources

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_three_syncs_follow_the_dashboard(kind: str, tmp_path: Path, postgres_url: str) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with served_sandbox(seed=21) as (sandbox, finch, source):
        never_seen = disconnected_keys(sandbox.truth())

        first = sync_with_resources("run-1", finch, source, warehouse, NAMES_AT_ONCE)
        assert truth_differences(sandbox.truth(), warehouse.read_current(), never_seen) == []
        assert first.state_counts["live"] > 0 and first.state_counts["staged"] > 0
        before = {row["connection_key"]: row for row in sandbox.truth()}

        changes = sandbox.advance(4)["changes"]
        assert changes["disconnected"] > 0 and changes["sessions_completed"] > 0
        second = sync_with_resources("run-2", finch, source, warehouse, NAMES_AT_ONCE)
        truth = sandbox.truth()
        current = warehouse.read_current()
        assert truth_differences(truth, current, never_seen) == []

        # Disconnections detected, dated by the run that first saw them.
        newly_disconnected = disconnected_keys(truth) - never_seen
        assert newly_disconnected
        rows = current.filter(pl.col("connection_key").is_in(list(newly_disconnected)))
        assert set(rows["disconnected_at"].to_list()) == {second.as_of}
        # Staged sessions that completed became live connections carrying their customer.
        completed = {
            key
            for key, row in before.items()
            if row["state"] == "staged" and key not in {r["connection_key"] for r in truth}
        }
        live_from_sessions = current.filter(pl.col("session_id").is_in(list(completed)))
        assert live_from_sessions.height > 0
        assert set(live_from_sessions["state"].to_list()) == {"live"}

        # History: one open version per key, closed versions where tracked columns changed.
        history = warehouse.read_table("finch_connections_history")
        open_versions = history.filter(pl.col("is_current"))
        assert open_versions["connection_key"].n_unique() == open_versions.height
        assert set(open_versions["connection_key"]) == set(current["connection_key"])
        changed = history.filter(~pl.col("is_current"))
        assert changed.height > 0
        assert set(changed["valid_to"].to_list()) == {second.as_of}
        assert current["connection_key"].n_unique() == current.height

        # Names of connections new in run-2 come alongside the next run's introspections.
        extra = 0
        while second.sync_run["company_names_pending"] and extra < 3:
            extra += 1
            second = sync_with_resources(f"run-2.{extra}", finch, source, warehouse, NAMES_AT_ONCE)
        assert second.sync_run["company_names_pending"] == 0
        settled = table_contents(warehouse)
        third = sync_with_resources("run-3", finch, source, warehouse, NAMES_AT_ONCE)
        after = table_contents(warehouse)
        for table, rows in settled.items():
            if table not in RUN_LOG_TABLES:
                assert after[table] == rows, f"{table} changed on a sync with nothing new"
        runs = warehouse.read_table("finch_sync_runs")
        assert sorted(runs["run_id"].to_list()) == [
            "run-1",
            "run-2",
            *(f"run-2.{n}" for n in range(1, extra + 1)),
            "run-3",
        ]
        assert third.request_stats["requests"] <= 1.05 * third.sync_run["tokens"]
    warehouse.dispose()
