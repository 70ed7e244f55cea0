"""Finch going away near the end of a run: the run is partial, not a success; what it could
not refresh keeps its row, marked stale; the CSVs say which snapshot they hold."""

import threading
import time
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest
from export.export_helpers import materialize_states, partition_metadata, resources
from guard_helpers import run_row
from sandbox.sandbox_helpers import cli_server
from sync.sync_helpers import TIME_SCALE, make_warehouse

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.resources import FinchResource, TokenSourceResource
from connections_pipeline.sync.run import SyncSettings
from connections_pipeline.transform.guards import HoldThresholds

pytestmark = pytest.mark.slow
CONNECTIONS = 200
DAYS_LATER = 3
TOLERANT = SyncSettings(thresholds=HoldThresholds(max_token_failure_share=0.5))


def _introspections(base_url: str) -> int:
    stats = httpx.get(f"{base_url}/_sandbox/stats", timeout=5).json()
    return sum(stats["by_endpoint"].get("introspect", {}).values())


def _kill_after(process, base_url: str, requests: int) -> threading.Thread:
    """SIGKILL the emulator once it has answered `requests` introspections in all."""

    def watch() -> None:
        while process.poll() is None:
            try:
                if _introspections(base_url) >= requests:
                    process.kill()
                    return
            except httpx.HTTPError:
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_emulator_killed_late_in_a_run_makes_it_partial_and_the_csv_says_so(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    options = ("--seed", "58", "--connections", str(CONNECTIONS), "--time-scale", str(TIME_SCALE))
    with cli_server(*options, "--latency-ms", "25") as (process, base_url):
        finch = FinchResource(
            base_url=base_url,
            time_scale=TIME_SCALE,
            timeout_seconds=2.0,
            max_attempts=2,
            max_concurrency=4,
        )
        source = TokenSourceResource(kind="sandbox")
        sync_with_resources("run-1", finch, source, warehouse)
        tokens = run_row(warehouse, "run-1")["tokens"]
        httpx.post(f"{base_url}/_sandbox/advance", json={"days": DAYS_LATER}, timeout=30)
        # Kill it once about 80% of the tokens of the second run have been answered (the
        # run reads the emulator's token ledger before its first introspection). The hold
        # threshold is raised so that where exactly the kill lands does not matter.
        watcher = _kill_after(process, base_url, tokens + int(tokens * 0.8))
        result = sync_with_resources("run-2", finch, source, warehouse, TOLERANT)
        watcher.join(timeout=30)
        assert process.poll() is not None, "the emulator should have been killed mid-run"

    assert result.status == "partial"
    row = run_row(warehouse, "run-2")
    assert row["status"] == "partial"
    assert 0 < row["failed_tokens"] < 0.5 * row["tokens"]
    assert f"{row['failed_tokens']} tokens failed after retries" in row["status_reason"]
    current = warehouse.read_current()
    stale = current.filter(pl.col("stale"))
    assert stale.height > 0
    assert all(
        error.startswith("not refreshed: token answered failed") for error in stale["last_error"]
    )
    assert set(stale["run_id"]) <= {"run-1", "run-2"}

    exports = tmp_path / "exports"
    exported = materialize_states(
        resources(warehouse.url.render_as_string(hide_password=False), str(exports)),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert exported.success
    as_of = result.as_of
    for state, metadata in partition_metadata(exported).items():
        assert metadata["sync_status"] == "partial"
        assert metadata["sync_run_id"] == "run-2"
        assert metadata["snapshot_as_of"] == as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
        # Dated by the snapshot (the emulator's clock, days ahead of this machine's).
        assert Path(metadata["path"]).name == f"connections_{state}_{as_of.date().isoformat()}.csv"
    warehouse.dispose()
