"""Two `connections-pipeline run` in one folder: the second refuses in one line, and the
folder's SQLite instance stays whole (regression: 2 of 10 such pairs left `runs.db` with two
alembic heads, and every later command failed)."""

import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from cli_helpers import cli_env, home_of, start_run

from connections_pipeline.cli import EXIT_BUSY

pytestmark = pytest.mark.slow

TRIES = 20
# Two of these race on each try's folder: both wait for the same start signal, then do what
# `connections-pipeline run` does first, take the folder's lock and open its instance.
RACER = """
import sys, time
from pathlib import Path
import dagster as dg
from connections_pipeline.local_instance import FolderBusy, folder_lock
root, tries = Path(sys.argv[1]), int(sys.argv[2])
for i in range(tries):
    home, go = root / str(i) / "data" / "dagster_home", root / str(i) / "go"
    while not go.exists():
        time.sleep(0.002)
    try:
        with folder_lock(home):
            with dg.DagsterInstance.from_config(str(home)) as instance:
                instance.get_runs()
            time.sleep(0.2)
        print(f"{i} ran", flush=True)
    except FolderBusy as exc:
        print(f"{i} refused {exc}", flush=True)
"""


def _schema_heads(home: Path) -> dict[str, int]:
    """Rows of `alembic_version` in each SQLite database of the instance: one each when whole."""
    heads = {}
    for database in sorted(home.rglob("*.db")):
        with sqlite3.connect(database) as connection:
            found = connection.execute(
                "select count(*) from sqlite_master where name = 'alembic_version'"
            ).fetchone()[0]
            if found:
                heads[database.name] = connection.execute(
                    "select count(*) from alembic_version"
                ).fetchone()[0]
    return heads


def test_two_runs_racing_for_one_folder_never_corrupt_its_instance(tmp_path: Path) -> None:
    for i in range(TRIES):
        home_of(tmp_path / str(i)).mkdir(parents=True)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(TRIES)],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    lines = []
    for i in range(TRIES):
        # Both racers are at the starting line: each reported the previous try.
        (tmp_path / str(i) / "go").touch()
        lines += [racer.stdout.readline().strip() for racer in racers]  # type: ignore[union-attr]
    errors = [racer.communicate(timeout=60)[1] for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], errors

    for i in range(TRIES):
        outcomes = sorted(line.split(" ", 2)[1] for line in lines if line.split()[0] == str(i))
        assert outcomes == ["ran", "refused"], (i, lines, errors)
        home = home_of(tmp_path / str(i))
        assert set(_schema_heads(home).values()) == {1}, (i, _schema_heads(home))
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs() == []
    refusals = [line for line in lines if " refused " in line]
    assert all("is using this folder's Dagster instance and warehouse" in r for r in refusals)


def test_a_second_run_in_the_same_folder_refuses_in_one_line(tmp_path: Path) -> None:
    settings = {"CONNECTIONS_SANDBOX_CONNECTIONS": "20"}
    first, second = start_run(tmp_path, **settings), start_run(tmp_path, **settings)
    results = [(p, *p.communicate(timeout=600)) for p in (first, second)]

    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, EXIT_BUSY], [err for _, _, err in results]
    [(_, _, refusal)] = [(p, out, err) for p, out, err in results if p.returncode == EXIT_BUSY]
    [line] = refusal.strip().splitlines()
    assert line.startswith("run: another connections-pipeline run (pid ")
    assert str(home_of(tmp_path)) in line and "wait for it to end, then run again" in line
    home = home_of(tmp_path)
    assert set(_schema_heads(home).values()) == {1}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert {run.status for run in instance.get_runs()} == {dg.DagsterRunStatus.SUCCESS}
