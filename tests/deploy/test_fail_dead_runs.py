"""Which runs `fail_dead_runs` may fail, and the watch `run_watched` keeps while a run waits
for the Finch pool: on real Dagster instances (SQLite, and PostgreSQL as in production), with
runs recorded through Dagster's own API and real processes behind their pids."""

import logging
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil
import pytest
import sqlalchemy as sa
from cli_helpers import POOL_LIMITED_INSTANCE, home_of, start_run, wait_for
from deploy_helpers import fresh_database

from connections_pipeline.cli import EXIT_BUSY
from connections_pipeline.local_instance import (
    HOST_TAG,
    LAUNCHED_BY_CODE_SERVER_TAG,
    PoolWaitExpired,
    fail_dead_runs,
    fail_if_dead,
    run_watched,
)
from connections_pipeline.pools import FINCH_POOL

STARTED, SUCCESS, FAILURE = (
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
)
# What Dagster's DefaultRunLauncher tags a run with when a code server starts its worker.
CODE_SERVER = {LAUNCHED_BY_CODE_SERVER_TAG: '{"host": "code-server", "port": 4000}'}
WATCHER = "connections_pipeline.local_instance"


@dg.op
def sync() -> None:
    pass


@dg.job(name="sync_connections")
def sync_job() -> None:
    sync()


@contextmanager
def dagster_instance(
    home: Path, storage: str = "", exists: bool = False
) -> Iterator[dg.DagsterInstance]:
    if not exists:
        home.mkdir()
        (home / "dagster.yaml").write_text(storage + POOL_LIMITED_INSTANCE)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        if not exists:
            # The pool's limit (1) from default_limit, as Dagster sets it before a step claims.
            instance.event_log_storage.initialize_concurrency_limit_to_default(FINCH_POOL)
        yield instance


@pytest.fixture
def sqlite_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    with dagster_instance(tmp_path / "dagster_home") as instance:
        yield instance


@pytest.fixture
def postgres_database(postgres_admin_url: str) -> Iterator[sa.URL]:
    with fresh_database(postgres_admin_url) as database:
        yield database


@pytest.fixture
def postgres_instance(tmp_path: Path, postgres_database: sa.URL) -> Iterator[dg.DagsterInstance]:
    # Production's storage (examples/dagster.yaml); its launcher is the default one.
    url = postgres_database.set(drivername="postgresql+psycopg2")
    storage = f"storage:\n  postgres:\n    postgres_url: '{url.render_as_string(False)}'\n"
    with dagster_instance(tmp_path / "dagster_home", storage) as instance:
        yield instance


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request: pytest.FixtureRequest) -> dg.DagsterInstance:
    return request.getfixturevalue(f"{request.param}_instance")


@pytest.fixture
def gone_pid() -> int:
    """The pid of a process that has ended (and was reaped)."""
    child = subprocess.Popen(["sleep", "60"])
    child.kill()
    child.wait()
    return child.pid


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(["sleep", "300"])
    yield child
    child.kill()
    child.wait()


def started_run(
    instance: dg.DagsterInstance,
    pid: int,
    tags: dict[str, str] | None = None,
    at: float | None = None,
) -> str:
    """A run whose worker, process `pid`, logged its start (at `at`, by default now)."""
    run = instance.create_run_for_job(sync_job, tags=tags or {})
    start = dg.DagsterEvent(dg.DagsterEventType.RUN_START.value, sync_job.name, pid=pid)
    instance.report_dagster_event(start, run.run_id, timestamp=at)
    assert instance.get_run_by_id(run.run_id).status == STARTED
    return run.run_id


def claim_slot(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Claim the finch_api slot for run `run_id`, as its step does; whether it got it."""
    return instance.event_log_storage.claim_concurrency_slot(FINCH_POOL, run_id, "sync").is_claimed


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def test_a_run_whose_process_is_gone_is_failed_and_gives_its_slot_back(
    instance: dg.DagsterInstance, gone_pid: int
) -> None:
    run_id = started_run(instance, gone_pid, tags={HOST_TAG: socket.gethostname()})
    assert claim_slot(instance, run_id)

    [dead] = fail_dead_runs(instance)

    assert (dead.run_id, dead.pids) == (run_id, (gone_pid,))
    assert status(instance, run_id) == FAILURE
    assert instance.event_log_storage.get_concurrency_info(FINCH_POOL).claimed_slots == []


def test_the_cli_leaves_alone_a_daemon_run_it_cannot_see_and_its_slot(
    postgres_instance: dg.DagsterInstance, gone_pid: int
) -> None:
    # Regression: a run the daemon launched carries no host tag; from a laptop or another
    # container its worker's pid is not to be seen, and the CLI failed the live scheduled
    # sync and freed its finch_api slot.
    instance = postgres_instance
    daemon_run = started_run(instance, gone_pid, tags=CODE_SERVER)
    assert claim_slot(instance, daemon_run)
    elsewhere = started_run(instance, gone_pid, tags={HOST_TAG: "another-machine"})

    assert fail_dead_runs(instance) == []

    waiting = instance.create_run_for_job(sync_job)
    assert not claim_slot(instance, waiting.run_id)
    release = threading.Event()
    try:
        with pytest.raises(PoolWaitExpired, match=f"held by run {daemon_run}"):
            run_watched(release.wait, instance, waiting.run_id, FINCH_POOL, 0.5, 0.05)
    finally:
        release.set()
    assert status(instance, daemon_run) == status(instance, elsewhere) == STARTED
    info = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
    assert [slot.run_id for slot in info.claimed_slots] == [daemon_run]


@pytest.mark.slow
def test_connections_pipeline_run_waits_for_a_daemon_run_it_cannot_see_then_gives_up(
    tmp_path: Path, postgres_database: sa.URL, gone_pid: int
) -> None:
    # The same, end to end: `connections-pipeline run` on the production instance, from a
    # machine that does not see the daemon's run worker.
    home = home_of(tmp_path)
    home.parent.mkdir(parents=True)
    url = postgres_database.set(drivername="postgresql+psycopg2")
    storage = f"storage:\n  postgres:\n    postgres_url: '{url.render_as_string(False)}'\n"
    with dagster_instance(home, storage) as instance:
        daemon_run = started_run(instance, gone_pid, tags=CODE_SERVER)
        assert claim_slot(instance, daemon_run)

    run = start_run(tmp_path, "--pool-wait-seconds", "3", CONNECTIONS_SANDBOX_CONNECTIONS="20")
    output, errors = run.communicate(timeout=300)

    assert run.returncode == EXIT_BUSY, errors
    assert "had stopped without ending" not in output
    assert f"held by run {daemon_run}" in errors
    with dagster_instance(home, storage, exists=True) as instance:
        assert status(instance, daemon_run) == STARTED
        info = instance.event_log_storage.get_concurrency_info(FINCH_POOL)
        assert [slot.run_id for slot in info.claimed_slots] == [daemon_run]


def test_the_code_servers_sensor_still_fails_its_dead_launched_runs(
    postgres_instance: dg.DagsterInstance, gone_pid: int
) -> None:
    run_id = started_run(postgres_instance, gone_pid, tags=CODE_SERVER)

    [dead] = fail_dead_runs(postgres_instance, trust_launcher=True)

    assert dead.run_id == run_id
    assert status(postgres_instance, run_id) == FAILURE


def test_a_run_that_ended_after_it_was_read_keeps_its_end(
    instance: dg.DagsterInstance, live_process: subprocess.Popen[bytes]
) -> None:
    # Regression: runs were read STARTED first and their pids checked later; a worker that
    # reported success and exited in between had its run overwritten with FAILURE.
    run_id = started_run(instance, live_process.pid, tags={HOST_TAG: socket.gethostname()})
    [record] = instance.get_run_records(dg.RunsFilter(statuses=[STARTED]))
    success = dg.DagsterEvent(dg.DagsterEventType.RUN_SUCCESS.value, sync_job.name)
    instance.report_dagster_event(success, run_id)
    live_process.kill()
    live_process.wait()

    assert fail_if_dead(instance, record.dagster_run) is None
    assert status(instance, run_id) == SUCCESS


def test_no_run_ids_means_no_run(sqlite_instance: dg.DagsterInstance, gone_pid: int) -> None:
    # Regression: an empty set became "every STARTED run" (the watch asked every 0.5 s).
    run_id = started_run(sqlite_instance, gone_pid)

    assert fail_dead_runs(sqlite_instance, set()) == []
    assert status(sqlite_instance, run_id) == STARTED


def test_a_live_process_is_alive_though_the_clock_stepped_after_the_run_logged(
    sqlite_instance: dg.DagsterInstance, live_process: subprocess.Popen[bytes]
) -> None:
    # Regression: the process must have started at most 2 s after the run's logged start;
    # a wall clock stepped back (NTP) between the two made a live run's process look reused.
    created = psutil.Process(live_process.pid).create_time()
    run_id = started_run(sqlite_instance, live_process.pid, at=created - 60)

    assert fail_dead_runs(sqlite_instance) == []
    assert status(sqlite_instance, run_id) == STARTED


def test_a_pid_reused_long_after_the_run_started_is_not_its_process(
    sqlite_instance: dg.DagsterInstance, live_process: subprocess.Popen[bytes]
) -> None:
    created = psutil.Process(live_process.pid).create_time()
    run_id = started_run(sqlite_instance, live_process.pid, at=created - 2 * 3600)

    [dead] = fail_dead_runs(sqlite_instance)

    assert dead.run_id == run_id
    assert status(sqlite_instance, run_id) == FAILURE


# The watch over a run waiting for the pool, on PostgreSQL: a table lock held by the test
# makes the watch's reads slow (or, past a lock timeout, fail) as a busy database would.


@pytest.fixture
def waiting_run(
    postgres_instance: dg.DagsterInstance, live_process: subprocess.Popen[bytes]
) -> str:
    """A run waiting for the finch_api slot, held by a live run of this machine."""
    instance = postgres_instance
    holder = started_run(instance, live_process.pid, tags={HOST_TAG: socket.gethostname()})
    assert claim_slot(instance, holder)
    waiting = instance.create_run_for_job(sync_job)
    assert not claim_slot(instance, waiting.run_id)
    return waiting.run_id


def _watch_in_thread(
    instance: dg.DagsterInstance, run_id: str, deadline: float, release: threading.Event
) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def watch() -> None:
        try:
            outcome["result"] = run_watched(
                lambda: release.wait(120) and "done", instance, run_id, FINCH_POOL, deadline, 0.05
            )
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=watch)
    thread.start()
    return thread, outcome


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], bool]:
    return lambda: any(text in record.getMessage() for record in caplog.records)


def _blocked_on(database: sa.Engine, table: str) -> bool:
    with database.connect() as connection:
        waiting = connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks"
                " WHERE relation = CAST(:t AS regclass) AND NOT granted"
            ),
            {"t": table},
        )
        return bool(waiting.scalar())


def test_the_pool_deadline_counts_the_time_that_passed(
    postgres_instance: dg.DagsterInstance,
    postgres_database: sa.URL,
    waiting_run: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Regression: the deadline added one poll interval per check, however long the check
    # took; a slow database stretched a 600 s deadline many times over.
    caplog.set_level(logging.INFO, logger=WATCHER)
    database = sa.create_engine(postgres_database)
    release = threading.Event()
    thread, outcome = _watch_in_thread(postgres_instance, waiting_run, 1.0, release)
    try:
        wait_for("the watch to see the run wait", _logged(caplog, "waits for the finch_api"))
        with database.connect() as locker, locker.begin():
            locker.execute(sa.text("LOCK TABLE concurrency_slots IN ACCESS EXCLUSIVE MODE"))
            wait_for(
                "the watch blocked on the lock", lambda: _blocked_on(database, "concurrency_slots")
            )
            time.sleep(3)  # the lock held 3 s: the watch's read takes that long
    finally:
        release.set()
        thread.join(60)
        database.dispose()

    error = outcome.get("error")
    assert isinstance(error, PoolWaitExpired), outcome
    waited = int(re.search(r"waited (\d+) s", str(error)).group(1))
    assert waited >= 3
    assert status(postgres_instance, waiting_run) == FAILURE


def test_a_storage_error_while_watching_is_logged_and_the_run_goes_on(
    postgres_instance: dg.DagsterInstance,
    postgres_database: sa.URL,
    waiting_run: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Regression: a failed read of the pool's state (SQLite's "database is locked", a lock
    # timeout here) escaped as a traceback and left the run STARTED.
    caplog.set_level(logging.INFO, logger=WATCHER)
    database = sa.create_engine(postgres_database)
    with database.connect() as connection:
        name = postgres_database.database
        connection.execute(sa.text(f"ALTER DATABASE \"{name}\" SET lock_timeout = '200ms'"))
        connection.commit()
    release = threading.Event()
    thread, outcome = _watch_in_thread(postgres_instance, waiting_run, 60.0, release)
    try:
        wait_for("the watch to see the run wait", _logged(caplog, "waits for the finch_api"))
        with database.connect() as locker, locker.begin():
            locker.execute(sa.text("LOCK TABLE concurrency_slots IN ACCESS EXCLUSIVE MODE"))
            wait_for("the watch's failed read", _logged(caplog, "could not read the finch_api"))
    finally:
        release.set()
        thread.join(60)
        database.dispose()

    assert outcome == {"result": "done"}
    [warning] = {
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == WATCHER
    }
    assert waiting_run in warning and "OperationalError" in warning
