"""Two syncs started together on one instance share one Finch budget: the `finch_api` pool
runs them one after the other, even when one of them bypasses the run queue."""

from pathlib import Path

import polars as pl
import pytest
from deploy_helpers import (
    DEFINITIONS_MODULE,
    SCHEMA,
    WORKSPACE,
    deployment,
    finished,
    step_window,
    sync_runs,
)
from sync.sync_helpers import disconnected_keys, truth_differences

from connections_pipeline.definitions import SYNC_JOB_NAME
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow

# Enough tokens that one sync alone paces at Finch's per-IP limit for several windows: two
# pacing independently would send about twice the limit and meet 429s and an IP block.
CONNECTIONS = "600"


def test_two_syncs_started_together_run_one_after_the_other(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    sandbox = ("--seed", "17", "--connections", CONNECTIONS)
    with deployment(postgres_admin_url, tmp_path, sandbox=sandbox) as deployed:
        instance = deployed.instance()
        deployed.start_daemon()
        # One through the run queue (as the UI or a schedule would), one executed directly
        # by the CLI, which no run queue sees: only the pool can keep them apart.
        queued = deployed.start_dagster("job", "launch", "-w", str(WORKSPACE), "-j", SYNC_JOB_NAME)
        direct = deployed.start_dagster(
            "job", "execute", "-m", DEFINITIONS_MODULE, "-j", SYNC_JOB_NAME
        )
        for process in (queued, direct):
            output, _ = process.communicate(timeout=600)
            assert process.returncode == 0, output[-4000:]

        both = deployed.wait_for(
            "two finished syncs",
            lambda: len(done := [r for r in sync_runs(instance) if finished(r)]) == 2 and done,
            timeout=600,
        )
        assert [r.dagster_run.status.value for r in both] == ["SUCCESS", "SUCCESS"]
        first, second = sorted(step_window(instance, r.dagster_run.run_id) for r in both)
        assert first[1] <= second[0], "the two syncs' steps overlapped"

        stats = deployed.finch("/_sandbox/stats")
        truth = deployed.finch("/_sandbox/truth")["rows"]
        assert stats["by_status"].get("429", 0) == 0, stats
        assert stats["ip_blocks"] == 0 and not stats["ip_blocked"]
        # Together they needed more than one IP window's budget: the pool was needed.
        assert stats["requests"] > 1_000

        with Warehouse(deployed.warehouse_url, schema=SCHEMA) as warehouse:
            current = warehouse.read_current()
            logged = warehouse.read_table("finch_sync_runs")
        assert truth_differences(truth, current, disconnected_keys(truth)) == []
        # No live row lost its company name to a refused company lookup.
        live = current.filter(pl.col("state") == "live")
        nameless = [r for r in truth if r["state"] == "live" and r["company_name"] is None]
        assert live.filter(pl.col("company_name").is_null()).height == len(nameless)
        assert logged.height == 2
        assert logged["rate_limited"].to_list() == [0, 0]
        assert logged["failed_tokens"].to_list() == [0, 0]
