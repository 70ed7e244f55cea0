"""Without a daemon (the quick start): a run that died cannot block the next one, waiting on
the Finch pool has a deadline, and Ctrl-C or SIGTERM stop the command within seconds."""

import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from cli_helpers import home_of, pool_limited_home, start_run, wait_for

from connections_pipeline.cli import EXIT_BUSY, EXIT_INTERRUPTED, EXIT_TERMINATED
from connections_pipeline.pools import FINCH_POOL

pytestmark = pytest.mark.slow

# Enough tokens that the sync is still sending requests when it is killed.
BUSY_SANDBOX = {"CONNECTIONS_SANDBOX_CONNECTIONS": "3000"}
SMALL_SANDBOX = {"CONNECTIONS_SANDBOX_CONNECTIONS": "20"}


def _sync_requests_started(folder: Path) -> bool:
    # The pipeline's own log records reach the log file as they happen: a Finch request
    # means the sync step runs, with its finch_api slot claimed.
    log = home_of(folder) / "connections-pipeline.log"
    return log.exists() and "/introspect" in log.read_text(errors="replace")


def _started(run: subprocess.Popen, folder: Path) -> bool:
    """The run sends Finch requests; an early end is the failure it is, not a wait."""
    if run.poll() is not None:
        _, errors = run.communicate()
        raise AssertionError(f"the run ended ({run.returncode}) before its requests: {errors}")
    return _sync_requests_started(folder)


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home))


def test_a_killed_run_is_failed_and_the_next_run_finishes_without_a_daemon(
    tmp_path: Path,
) -> None:
    # Regression: the SIGKILLed run stayed STARTED holding the finch_api slot, and the next
    # `connections-pipeline run` waited on "Step blocked by limit for pool finch_api" for
    # ever, at full CPU, deaf to SIGTERM and SIGINT.
    home = pool_limited_home(tmp_path)
    first = start_run(tmp_path, **BUSY_SANDBOX)
    try:
        wait_for("Finch requests of the first run", lambda: _started(first, tmp_path))
    finally:
        first.kill()
        first.communicate()
    with _instance(home) as instance:
        [killed] = instance.get_runs()
        assert killed.status == dg.DagsterRunStatus.STARTED

    second = start_run(tmp_path, **SMALL_SANDBOX)
    try:
        output, errors = second.communicate(timeout=600)
    finally:
        second.kill()  # still waiting on the pool, were the dead run not failed
        second.communicate()

    assert second.returncode == 0, errors
    assert f"Run {killed.run_id} (sync_connections) had stopped without ending" in output
    with _instance(home) as instance:
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        statuses = {run.status for run in instance.get_runs() if run.run_id != killed.run_id}
        assert statuses == {dg.DagsterRunStatus.SUCCESS}
        pool = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
        assert pool.claimed_slots == [] and pool.pending_steps == []


RELEASE = threading.Event()


@dg.op(pool=FINCH_POOL)
def hold_the_finch_slot() -> None:
    RELEASE.wait(300)


@dg.job
def finch_slot_holder() -> None:
    hold_the_finch_slot()


@pytest.fixture
def slot_held(tmp_path: Path) -> Iterator[tuple[dg.DagsterInstance, str]]:
    """A live run of this process holding the finch_api slot, as a sync started from the UI
    or `dagster job execute` would; released at the end."""
    home = pool_limited_home(tmp_path)
    RELEASE.clear()
    with _instance(home) as instance:
        results: list[dg.ExecuteInProcessResult] = []
        holder = threading.Thread(
            target=lambda: results.append(finch_slot_holder.execute_in_process(instance=instance))
        )
        holder.start()
        try:
            pool = lambda: instance.event_log_storage.get_concurrency_info(FINCH_POOL)  # noqa: E731
            claimed = wait_for("the holder's slot", lambda: pool().claimed_slots)
            yield instance, claimed[0].run_id
        finally:
            RELEASE.set()
            # Generous: on a loaded machine the run's end waits on Dagster's compute-log
            # tail process, which takes up to its 30 s cleanup timeout and more to stop.
            holder.join(300)
        assert results and results[0].success


def _waiting_run(instance: dg.DagsterInstance, holder: str) -> str | None:
    info = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
    waiting = [s.run_id for s in info.pending_steps if s.run_id != holder]
    return waiting[0] if waiting else None


def _one_line(errors: str) -> str:
    assert "Traceback" not in errors, errors
    [line] = errors.strip().splitlines()
    return line


def test_waiting_for_the_pool_ends_at_its_deadline_naming_the_run_that_holds_it(
    tmp_path: Path, slot_held: tuple[dg.DagsterInstance, str]
) -> None:
    instance, holder = slot_held
    run = start_run(tmp_path, "--pool-wait-seconds", "3", **SMALL_SANDBOX)
    _, errors = run.communicate(timeout=300)

    assert run.returncode == EXIT_BUSY
    line = _one_line(errors)
    waited = re.match(r"run: waited (\d+) s for the finch_api pool's slot, held by run ", line)
    assert waited and int(waited.group(1)) >= 3, line
    assert holder in line and "terminate it in Dagster's UI" in line
    # The run that gave up is failed, and waits for nothing any more; the holder kept its slot.
    [gave_up] = [r for r in instance.get_runs() if r.run_id != holder]
    assert gave_up.status == dg.DagsterRunStatus.FAILURE
    info = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
    assert [s.run_id for s in info.claimed_slots] == [holder]
    assert [s.run_id for s in info.pending_steps] == [holder]


@pytest.mark.parametrize(
    ("sent", "code"), [(signal.SIGTERM, EXIT_TERMINATED), (signal.SIGINT, EXIT_INTERRUPTED)]
)
def test_a_run_waiting_for_the_pool_stops_on_sigterm_and_ctrl_c(
    sent: signal.Signals,
    code: int,
    tmp_path: Path,
    slot_held: tuple[dg.DagsterInstance, str],
) -> None:
    # Regression: blocked on the pool, the command ignored both; only SIGKILL ended it.
    instance, holder = slot_held
    run = start_run(tmp_path, **SMALL_SANDBOX)
    try:
        waiting = wait_for("the run waiting for the pool", lambda: _waiting_run(instance, holder))
        run.send_signal(sent)
        _, errors = run.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
        raise AssertionError(f"{sent.name} did not stop the command") from None

    assert run.returncode == code
    assert _one_line(errors).startswith(f"run: stopped by {sent.name}")
    assert instance.get_run_by_id(waiting).status == dg.DagsterRunStatus.FAILURE
    info = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
    assert [s.run_id for s in info.pending_steps] == [holder]
