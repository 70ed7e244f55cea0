"""A sync killed with SIGKILL ends as a failed run and gives the `finch_api` slot back, so the
next sync runs: whether only its process died, or the daemon and code server with it."""

from pathlib import Path

import dagster as dg
import pytest
from deploy_helpers import (
    SCHEMA,
    Deployment,
    deployment,
    finished,
    refreshed,
    sync_runs,
)

from connections_pipeline.pools import FINCH_POOL
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow

# Slow answers keep the sync busy long enough to be killed halfway through its requests.
SLOW_FINCH = ("--seed", "23", "--connections", "80", "--latency-ms", "500")
KILL_AFTER_REQUESTS = 40


def _running_sync(deployed: Deployment, instance: dg.DagsterInstance) -> tuple[dg.RunRecord, int]:
    """The sync run once its step is sending requests, and the pid of the step's process."""
    run = deployed.wait_for("sync run", lambda: sync_runs(instance), timeout=180)[-1]
    run_id = run.dagster_run.run_id

    def step_pid() -> int | None:
        starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
        return starts[0].dagster_event.pid if starts else None

    pid = deployed.wait_for("sync step", step_pid, timeout=180)
    deployed.wait_for(
        "Finch requests",
        lambda: deployed.finch("/_sandbox/stats")["requests"] >= KILL_AFTER_REQUESTS,
        timeout=120,
        every=0.2,
    )
    return run, pid


def _failed(deployed: Deployment, instance: dg.DagsterInstance, run: dg.RunRecord) -> None:
    done = deployed.wait_for(
        "the killed run to end",
        lambda: finished(fresh := refreshed(instance, run)) and fresh,
        timeout=180,
    )
    assert done.dagster_run.status == dg.DagsterRunStatus.FAILURE


def _next_sync_runs_and_loads(deployed: Deployment, instance: dg.DagsterInstance) -> None:
    """Another sync gets the pool's one slot and loads; the killed one left nothing behind."""
    deployed.launch_sync()
    latest = deployed.wait_for(
        "a finished second sync",
        lambda: len(runs := sync_runs(instance)) == 2 and finished(runs[-1]) and runs[-1],
        timeout=300,
    )
    assert latest.dagster_run.status == dg.DagsterRunStatus.SUCCESS, deployed.tail()
    with Warehouse(deployed.warehouse_url, schema=SCHEMA) as warehouse:
        logged = warehouse.read_table("finch_sync_runs")
    assert logged["run_id"].to_list() == [latest.dagster_run.run_id]
    pool = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
    assert pool.slot_count == 1 and pool.active_slot_count == 0


def test_a_sync_whose_process_is_killed_fails_and_frees_the_pool(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    with deployment(postgres_admin_url, tmp_path, sandbox=SLOW_FINCH) as deployed:
        instance = deployed.instance()
        deployed.start_daemon()
        deployed.launch_sync()
        run, pid = _running_sync(deployed, instance)

        deployed.kill(pid)

        _failed(deployed, instance, run)
        messages = [e.message for e in instance.all_logs(run.dagster_run.run_id) if e.message]
        assert any("SIGKILL" in message for message in messages), messages[-5:]
        _next_sync_runs_and_loads(deployed, instance)


def test_a_sync_killed_with_its_daemon_is_failed_within_a_minute_not_at_max_runtime(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    # A crashed machine: the run worker dies with the daemon and the code server, and no
    # process is left that could report it. Regression: run monitoring failed it only once
    # it had run past its maximum runtime (12 hours), the finch_api slot held all along.
    # The sensor `fail_dead_runs` finds its worker's pid gone once the daemon is back.
    with deployment(postgres_admin_url, tmp_path, sandbox=SLOW_FINCH) as deployed:
        instance = deployed.instance()
        deployed.start_daemon()
        deployed.launch_sync()
        run, pid = _running_sync(deployed, instance)

        deployed.kill_daemon()
        assert refreshed(instance, run).dagster_run.status == dg.DagsterRunStatus.STARTED

        deployed.start_daemon()
        _failed(deployed, instance, run)
        messages = [e.message for e in instance.all_logs(run.dagster_run.run_id) if e.message]
        assert any(f"(pid {pid}) is gone" in message for message in messages), messages[-5:]
        assert not any("maximum runtime" in message.lower() for message in messages)
        _next_sync_runs_and_loads(deployed, instance)
