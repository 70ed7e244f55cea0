"""Runs that cannot block each other: one `connections-pipeline run` per Dagster instance
folder, and runs whose process died failed so that they give their pool slot back.

Dagster keeps a run `STARTED`, holding its `finch_api` slot, until some process reports its
end; a run killed with SIGKILL has none left to do so. With the default run launcher Dagster
cannot ask whether a local run worker is alive, so run monitoring would only fail it after
`max_runtime_seconds`. The pids Dagster records in a run's events say it, when the run ran on
this machine; `fail_dead_runs` checks them (the CLI before each job, the sensor
`dead_runs_sensor` under the daemon).
"""

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

import dagster as dg
import psutil
from filelock import FileLock, Timeout

# Tags `connections-pipeline run` puts on its runs: which machine and process executes them.
HOST_TAG = "connections_pipeline/host"
PID_TAG = "connections_pipeline/pid"
# Set by Dagster's DefaultRunLauncher on the runs it starts as local processes of a code server.
LAUNCHED_BY_CODE_SERVER_TAG = ".dagster/grpc_info"
LOCK_FILE = "connections-pipeline.lock"
OWNER_FILE = "connections-pipeline.lock.owner"
# A process created this long after the event naming its pid is another one (pid reused).
# Wide: the event's time and the process's start time come from the wall clock, which NTP
# may step between them; a pid reused within the margin only makes a dead run look alive.
PID_REUSE_MARGIN_SECONDS = 600.0
T = TypeVar("T")
logger = logging.getLogger(__name__)


class FolderBusy(Exception):
    """Another `connections-pipeline run` holds the folder's instance and warehouse."""


class PoolWaitExpired(Exception):
    """A run waited past its deadline for a pool slot that another run holds."""


class Stopped(Exception):
    """The command was asked to stop (SIGINT, SIGTERM)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.signal_name = signal_name


@contextmanager
def folder_lock(home: Path) -> Iterator[None]:
    """Hold the lock of the instance folder `home` while the block runs, or raise `FolderBusy`.

    Two commands opening one SQLite instance at once can both migrate its new database and
    leave it with two schema heads; the second one refuses at once instead. The kernel drops
    the lock of a killed process, so a crash never leaves the folder locked.
    """
    lock = FileLock(home / LOCK_FILE)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise FolderBusy(
            f"another connections-pipeline run{_owner(home)} is using this folder's Dagster "
            f"instance and warehouse ({home}); wait for it to end, then run again"
        ) from None
    try:
        (home / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        yield
    finally:
        lock.release()


def _owner(home: Path) -> str:
    try:
        pid = int((home / OWNER_FILE).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return ""
    return f" (pid {pid})"


def process_tags() -> dict[str, str]:
    """The tags that tell `fail_dead_runs` which process executes a run started here."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    job_name: str
    pids: tuple[int, ...]


def fail_dead_runs(
    instance: dg.DagsterInstance,
    run_ids: set[str] | None = None,
    *,
    trust_launcher: bool = False,
) -> list[DeadRun]:
    """Mark failed every `STARTED` run (of `run_ids`, when given) whose processes on this
    machine are all gone, and free the pool slots it held.

    `trust_launcher` is for the code server alone (see `fail_if_dead`).
    """
    if run_ids is not None and not run_ids:
        return []
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED],
            run_ids=sorted(run_ids) if run_ids is not None else None,
        )
    )
    dead = [fail_if_dead(instance, r.dagster_run, trust_launcher=trust_launcher) for r in records]
    return [run for run in dead if run is not None]


def fail_if_dead(
    instance: dg.DagsterInstance, run: dg.DagsterRun, *, trust_launcher: bool = False
) -> DeadRun | None:
    """Mark `run` (read `STARTED` a moment ago) failed if its processes on this machine are
    all gone and it is still `STARTED`; free its pool slots.

    A run is judged only when it is known to run here: tagged by this machine's CLI, or
    recorded in a SQLite instance, which lives on one machine. With `trust_launcher`, also a
    run the default run launcher started as a local process of a code server: only the code
    server itself may say so, since the daemon's runs carry no host tag and their workers are
    invisible from any other machine or container.
    """
    if not _runs_here(instance, run, trust_launcher):
        return None
    processes = _processes_of(instance, run)
    if not processes or any(_alive(pid, since) for pid, since in processes):
        return None
    # Read again now that its processes are known gone: one that reported the run's end and
    # exited since the first read has stored that end, which report_run_failed would
    # overwrite.
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status != dg.DagsterRunStatus.STARTED:
        return None
    pids = tuple(sorted({pid for pid, _ in processes}))
    instance.report_run_failed(
        current,
        f"Marked failed by connections_pipeline: the run's process (pid "
        f"{', '.join(map(str, pids))}) is gone; it was killed or crashed",
    )
    instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return DeadRun(run.run_id, run.job_name, pids)


def _runs_here(instance: dg.DagsterInstance, run: dg.DagsterRun, trust_launcher: bool) -> bool:
    host = run.tags.get(HOST_TAG)
    if host is not None:
        return host == socket.gethostname()
    if (
        trust_launcher
        and LAUNCHED_BY_CODE_SERVER_TAG in run.tags
        and isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    ):
        return True
    return "sqlite" in type(instance.run_storage).__name__.lower()


def _processes_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[tuple[int, float]]:
    """(pid, when it logged) of the processes that executed the run or one of its steps."""
    found = []
    tagged = run.tags.get(PID_TAG)
    starts = instance.all_logs(
        run.run_id, of_type={dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_START}
    )
    for record in starts:
        pid = record.dagster_event.pid if record.dagster_event else None
        if pid is not None:
            found.append((pid, record.timestamp))
    if tagged and tagged.isdigit() and starts:
        found.append((int(tagged), starts[0].timestamp))
    return found


def _alive(pid: int, since: float) -> bool:
    """Whether process `pid` may be the one that logged at `since`: only a process known gone
    (or a zombie, or a pid since reused) counts as dead; one this process may not inspect
    counts as alive."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.create_time() <= since + PID_REUSE_MARGIN_SECONDS
    except psutil.ZombieProcess:
        return False
    except psutil.NoSuchProcess:
        # /proc mounted with hidepid hides other users' processes; the kernel still knows.
        return _pid_exists(pid)
    except psutil.AccessDenied:
        return True


def _pid_exists(pid: int) -> bool:
    if pid <= 0:  # kill(0) and kill(-1) would name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class PoolWait:
    """A run's step waiting for a slot of `pool`, held by `holders`."""

    pool: str
    holders: tuple[str, ...]


def pool_wait(instance: dg.DagsterInstance, pool: str, run_id: str) -> PoolWait | None:
    """What run `run_id` waits for in `pool`, or None when it waits for nothing there."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    if not any(s.run_id == run_id and not s.assigned_timestamp for s in info.pending_steps):
        return None
    holders = {slot.run_id for slot in info.claimed_slots if slot.run_id != run_id}
    return PoolWait(pool, tuple(sorted(holders)))


def run_watched(
    execute: Callable[[], T],
    instance: dg.DagsterInstance,
    run_id: str,
    pool: str,
    pool_deadline_seconds: float,
    poll_seconds: float = 0.5,
) -> T:
    """`execute()` (one in-process run, `run_id`), stoppable and never waiting for ever.

    It runs in a thread of its own: Dagster installs its interrupt handling only on the main
    thread, where a step blocked on a pool ignores SIGINT and SIGTERM; the main thread,
    inside `signals_stop()`, gets `Stopped` at once. While the run waits for a slot of
    `pool`, dead holders are failed (their slot freed); past `pool_deadline_seconds` of
    waiting, `PoolWaitExpired` names the holders. After either exception the run is marked
    failed, and the caller must end the process: the thread cannot be stopped.
    """
    outcome: dict[str, T | BaseException] = {}

    def target() -> None:
        try:
            outcome["result"] = execute()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"run-{run_id}", daemon=True)
    waiting_since: float | None = None
    try:
        worker.start()
        while worker.is_alive():
            worker.join(poll_seconds)
            if not worker.is_alive():
                break
            try:
                waiting = pool_wait(instance, pool, run_id)
                if waiting is not None and _failed_dead_holders(instance, waiting):
                    continue
            except Stopped:
                raise
            except Exception as exc:
                # The watch is only a watch: a storage hiccup ("database is locked", a
                # dropped connection) must not end a run that may be going well.
                logger.warning(
                    "could not read the %s pool's state for run %s (%s); trying again",
                    pool,
                    run_id,
                    type(exc).__name__,
                )
                continue
            if waiting is None:
                waiting_since = None
                continue
            now = time.monotonic()
            if waiting_since is None:
                waiting_since = now
                logger.info(
                    "run %s waits for the %s pool's slot, held by run %s",
                    run_id,
                    pool,
                    ", ".join(waiting.holders) or "none yet",
                )
            if now - waiting_since >= pool_deadline_seconds:
                raise PoolWaitExpired(_pool_wait_message(waiting, now - waiting_since))
    except (Stopped, PoolWaitExpired) as exc:
        _fail_own_run(instance, run_id, str(exc))
        raise
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


def _failed_dead_holders(instance: dg.DagsterInstance, waiting: PoolWait) -> bool:
    """Whether some holder of the slot `waiting` waits for was dead, and is now failed."""
    return bool(waiting.holders) and bool(fail_dead_runs(instance, set(waiting.holders)))


def _pool_wait_message(waiting: PoolWait, waited: float) -> str:
    holders = ", ".join(waiting.holders) or "a run that has not claimed it yet"
    return (
        f"waited {int(waited)} s for the {waiting.pool} pool's slot, held by run {holders}; "
        "let that run finish, or if it is stuck (its process gone on another machine) "
        "terminate it in Dagster's UI (Runs), which frees the slot; then run again"
    )


def _fail_own_run(instance: dg.DagsterInstance, run_id: str, reason: str) -> None:
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_failed(run, f"connections-pipeline run gave up: {reason}")
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


@contextmanager
def signals_stop() -> Iterator[None]:
    """Make SIGINT and SIGTERM raise `Stopped` in the main thread while the block runs."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
