"""A production-shaped deployment for end-to-end tests: `dagster-daemon` on the shipped
instance config (`examples/dagster.yaml`) over a fresh PostgreSQL database, the emulator
served over HTTP, the code location loaded from `workspace.yaml`.

Every process it starts runs in a session of its own and is stopped with its whole process
group (daemon, code server, run workers) on exit, whatever the test did.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx
import sqlalchemy as sa
from documentation import documentation_text
from sandbox.sandbox_helpers import cli_server

from connections_pipeline.assets.exports import EXPORT_ASSET
from connections_pipeline.definitions import SYNC_JOB_NAME
from connections_pipeline.settings import INSTANCE_URL_SETTING

REPO = Path(__file__).resolve().parents[2]
INSTANCE_CONFIG = REPO / "examples" / "dagster.yaml"
WORKSPACE = REPO / "workspace.yaml"
DEFINITIONS_MODULE = "connections_pipeline.definitions"
BIN = Path(sys.executable).parent
# Finch's windows scaled down: at 0.01 a product window is 0.6 s and company calls 32 ms
# apart, so a busy machine's scheduling jitter alone pushed one call into the emulator's
# window (a 429 the client then waited out); 0.03 gives the pacing three times that slack.
TIME_SCALE = "0.03"
SCHEMA = "finch"
SCHEDULE = "sync_connections_schedule"
T = TypeVar("T")


def readme_instance_url_scheme() -> str:
    """The scheme of the `DAGSTER_PG_URL` README shows: the form the tests must prove."""
    found = re.findall(r"DAGSTER_PG_URL=(postgresql[a-z0-9+]*)://", documentation_text())
    assert found, "README shows no DAGSTER_PG_URL example"
    assert len(set(found)) == 1, f"README shows several DAGSTER_PG_URL forms: {set(found)}"
    return found[0]


def cron_that_does_not_fire_soon() -> str:
    later = datetime.now(UTC) + timedelta(hours=12)
    return f"{later.minute} {later.hour} * * *"


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(pgid: int, grace: float = 20.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _group_members(pgid):
            return


@dataclass
class Deployment:
    """One instance (its own database), one emulator, settings for every process."""

    home: Path
    workdir: Path
    exports: Path
    finch_url: str
    warehouse_url: str
    env: dict[str, str]
    stack: ExitStack
    log: Path
    groups: list[int] = field(default_factory=list)
    daemon: subprocess.Popen | None = None

    def start_daemon(self) -> subprocess.Popen:
        """`dagster-daemon run` on the shipped instance config, in a session of its own."""
        handle = self.log.open("a")
        self.stack.callback(handle.close)
        self.daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)],
            cwd=self.workdir,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.groups.append(self.daemon.pid)
        return self.daemon

    def kill(self, pid: int) -> None:
        """SIGKILL one process this deployment started (a run worker, say)."""
        assert os.getpgid(pid) in self.groups, f"pid {pid} is not one of this deployment's"
        os.kill(pid, signal.SIGKILL)

    def kill_daemon(self) -> None:
        """SIGKILL the daemon with its code server and run workers: a crashed machine."""
        assert self.daemon is not None
        os.killpg(self.daemon.pid, signal.SIGKILL)
        self.daemon.wait(timeout=30)
        stop_group(self.daemon.pid)

    def start_dagster(self, *args: str) -> subprocess.Popen:
        """A `dagster` CLI command in a session of its own (stopped on exit if still alive)."""
        process = subprocess.Popen(
            [str(BIN / "dagster"), *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.groups.append(process.pid)
        return process

    def dagster(self, *args: str, timeout: float = 300) -> str:
        """Run a `dagster` CLI command to its end; its output. Fails the test if it fails."""
        process = self.start_dagster(*args)
        try:
            output, _ = process.communicate(timeout=timeout)
        finally:
            stop_group(process.pid, grace=5)
        assert process.returncode == 0, f"dagster {' '.join(args)} failed:\n{output[-4000:]}"
        return output

    def launch_sync(self, tags: dict[str, str] | None = None) -> None:
        """Submit a sync run to the instance's queue, as the UI's Launch button does."""
        extra = ["--tags", json.dumps(tags)] if tags else []
        self.dagster("job", "launch", "-w", str(WORKSPACE), "-j", SYNC_JOB_NAME, *extra)

    def instance(self) -> dg.DagsterInstance:
        instance = dg.DagsterInstance.from_config(str(self.home))
        self.stack.callback(instance.dispose)
        return instance

    def finch(self, path: str) -> Any:
        return httpx.get(f"{self.finch_url}{path}", timeout=30).json()

    def wait_for(
        self, what: str, probe: Callable[[], T | None], timeout: float = 300, every: float = 1.0
    ) -> T:
        """Poll `probe` until it returns something truthy; fail naming `what` after `timeout`
        seconds, with the end of the daemon's log."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(f"the daemon exited while waiting for {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(every)

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for pgid in reversed(self.groups):
            stop_group(pgid)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[sa.URL]:
    """A database of its own (an instance's tables must not meet another test's)."""
    name = f"cp_deploy_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def deployment(
    admin_url: str,
    tmp_path: Path,
    *,
    cron: str | None = None,
    sandbox: tuple[str, ...] = ("--seed", "7", "--connections", "60"),
    warehouse_url: str | None = None,
) -> Iterator[Deployment]:
    """The shipped instance config over a fresh database and the emulator over HTTP.

    `DAGSTER_PG_URL` takes README's form; the warehouse is `warehouse_url`, by default a
    schema in the same database. This process sees the instance's URL too, so that
    `Deployment.instance()` reads it.
    """
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database(admin_url))
        _, finch_url = stack.enter_context(cli_server(*sandbox, "--time-scale", TIME_SCALE))
        home, workdir = tmp_path / "dagster_home", tmp_path / "work"
        home.mkdir()
        workdir.mkdir()
        shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
        instance_url = database.set(drivername=readme_instance_url_scheme())
        warehouse_url = warehouse_url or database.set(
            drivername="postgresql+psycopg"
        ).render_as_string(hide_password=False)
        settings = {
            "DAGSTER_HOME": str(home),
            INSTANCE_URL_SETTING: instance_url.render_as_string(hide_password=False),
            "FINCH_BASE_URL": finch_url,
            "CONNECTIONS_TOKENS_SOURCE": "sandbox",
            "CONNECTIONS_FINCH_TIME_SCALE": TIME_SCALE,
            "CONNECTIONS_WAREHOUSE_URL": warehouse_url,
            "CONNECTIONS_WAREHOUSE_SCHEMA": SCHEMA,
            "CONNECTIONS_EXPORT_URL": str(tmp_path / "exports"),
            "CONNECTIONS_SYNC_CRON": cron or cron_that_does_not_fire_soon(),
            # Every company name in the first sync (tests/scale covers names over runs).
            "CONNECTIONS_COMPANY_SHARE": "0.9",
        }
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("DAGSTER_", "CONNECTIONS_", "FINCH_"))
        }
        env = {**inherited, **settings, "PYTHONUNBUFFERED": "1"}
        saved = {name: os.environ.get(name) for name in ("DAGSTER_HOME", INSTANCE_URL_SETTING)}
        os.environ.update({name: settings[name] for name in saved})
        stack.callback(_restore, saved)
        deployed = Deployment(
            home=home,
            workdir=workdir,
            exports=tmp_path / "exports",
            finch_url=finch_url,
            warehouse_url=warehouse_url,
            env=env,
            stack=stack,
            log=tmp_path / "daemon.log",
        )
        # Registered after the database and the emulator, so it runs before they go: every
        # process is stopped before its database is dropped.
        stack.callback(deployed.stop)
        yield deployed


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# What the instance holds, read the way an operator would in the UI.


def runs(instance: dg.DagsterInstance, **filters: Any) -> list[dg.RunRecord]:
    """Run records, oldest first."""
    records = instance.get_run_records(filters=dg.RunsFilter(**filters) if filters else None)
    return sorted(records, key=lambda record: record.create_timestamp)


def sync_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return runs(instance, job_name=SYNC_JOB_NAME)


def runs_of_asset(instance: dg.DagsterInstance, key: str) -> list[dg.RunRecord]:
    wanted = dg.AssetKey(key)
    return [r for r in runs(instance) if wanted in (r.dagster_run.asset_selection or ())]


def export_runs(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    return runs_of_asset(instance, EXPORT_ASSET)


def bi_runs(instance: dg.DagsterInstance, models: set[str]) -> list[dg.RunRecord]:
    return [
        r
        for r in runs(instance)
        if {k.to_user_string() for k in r.dagster_run.asset_selection or ()} & models
    ]


def finished(record: dg.RunRecord) -> bool:
    return record.dagster_run.is_finished


def refreshed(instance: dg.DagsterInstance, record: dg.RunRecord) -> dg.RunRecord:
    [fresh] = instance.get_run_records(filters=dg.RunsFilter(run_ids=[record.dagster_run.run_id]))
    return fresh


def step_window(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the run's (one) step started and when it ended, from its event log."""
    logs = instance.all_logs(run_id)
    starts = [e.timestamp for e in logs if e.dagster_event_type == dg.DagsterEventType.STEP_START]
    ends = [
        e.timestamp
        for e in logs
        if e.dagster_event_type
        in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
    ]
    assert starts and ends, f"run {run_id} has no finished step"
    return min(starts), max(ends)


def materialized_at(instance: dg.DagsterInstance, run_id: str, key: str) -> float:
    """When run `run_id` materialized asset `key`. A follower run may be created as soon as
    this happens, before the run itself has ended (its end time is recorded later)."""
    times = [
        event.timestamp
        for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if event.asset_materialization.asset_key == dg.AssetKey(key)
    ]
    assert times, f"run {run_id} materialized no {key}"
    return min(times)


def exported_syncs(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """The sync runs whose snapshots export run `run_id` wrote (its `sync_run_id`)."""
    return {
        event.asset_materialization.metadata["sync_run_id"].value
        for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if event.asset_materialization.asset_key == dg.AssetKey(EXPORT_ASSET)
    }
