"""`connections-pipeline run` into Snowflake, the way a person runs it: a process of its own
in a folder, the Finch emulator served over HTTP, the Snowflake emulator (fakesnow over HTTP)
as the warehouse. It must land exactly what the same run lands in DuckDB, change nothing when
run again, and never print the warehouse password."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest
from cli_helpers import BIN, cli_env, home_of, start_run
from polars.testing import assert_frame_equal
from sandbox.sandbox_helpers import cli_server

from connections_pipeline.warehouse import Warehouse
from connections_pipeline.warehouse.columns import CONNECTIONS_HISTORY, SYNC_RUNS

if TYPE_CHECKING:
    from snowflake_emulator import SnowflakeEmulator

pytestmark = pytest.mark.slow

# Finch's rate-limit windows scaled down as in the deployment tests (deploy_helpers).
TIME_SCALE = "0.03"
# The emulator's virtual clock is frozen at its start between explicit advances (nothing
# here advances it), and the sync only reads from Finch: every run below sees one world.
# A fixed start rather than the default "today 00:00 UTC", so no run straddles midnight.
FINCH = ("--seed", "11", "--connections", "40", "--start-time", "2026-03-02T00:00:00+00:00")
# The Dagster run that last changed a row: each run has its own ID, whatever the warehouse.
RUN_ID = "run_id"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def printed(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Landed:
    password: str
    database: str
    folder: Path
    snowflake: tuple[Run, Run]
    duckdb: Run
    current: tuple[pl.DataFrame, pl.DataFrame]
    history: tuple[pl.DataFrame, pl.DataFrame]
    duckdb_current: pl.DataFrame
    sync_runs: pl.DataFrame
    models: subprocess.CompletedProcess[str]
    model_rows: dict[str, int]


def run_cli(folder: Path, **settings: str) -> Run:
    folder.mkdir(exist_ok=True)
    process = start_run(folder, **settings)
    stdout, stderr = process.communicate(timeout=900)
    return Run(process.returncode, stdout, stderr)


def by_key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("connection_key")


@pytest.fixture(scope="module")
def landed(
    snowflake_emulator: SnowflakeEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Landed]:
    root = tmp_path_factory.mktemp("cli_snowflake")
    # Distinctive, so that finding it in any output cannot be a coincidence.
    password = f"Hush{secrets.token_hex(8)}Pw"
    database = snowflake_emulator.new_database()
    snowflake_url = snowflake_emulator.url(database, password=password)
    duckdb_url = f"duckdb:///{root / 'duckdb' / 'warehouse.duckdb'}"
    with cli_server(*FINCH, "--time-scale", TIME_SCALE) as (_, finch_url):
        finch = {
            "FINCH_BASE_URL": finch_url,
            "CONNECTIONS_TOKENS_SOURCE": "sandbox",
            "CONNECTIONS_FINCH_TIME_SCALE": TIME_SCALE,
            # Every company name in the first run: by default the names are spread over
            # runs, and the second run filling the rest would be a change (a new history
            # version per name), not the nothing-to-do rerun this test is about.
            "CONNECTIONS_COMPANY_SHARE": "0.9",
        }
        on_snowflake = {
            **finch,
            "CONNECTIONS_WAREHOUSE_URL": snowflake_url,
            "CONNECTIONS_WAREHOUSE_CONNECT_ARGS": snowflake_emulator.connect_args,
        }
        snowflake_folder = root / "snowflake"
        first = run_cli(snowflake_folder, **on_snowflake)
        assert first.returncode == 0, first.printed
        with Warehouse(snowflake_url, connect_args=snowflake_emulator.connect_args) as warehouse:
            current_first = warehouse.read_current()
            history_first = warehouse.read_table(CONNECTIONS_HISTORY)

        on_duckdb = run_cli(root / "duckdb", **finch, CONNECTIONS_WAREHOUSE_URL=duckdb_url)
        assert on_duckdb.returncode == 0, on_duckdb.printed
        with Warehouse(duckdb_url) as warehouse:
            duckdb_current = warehouse.read_current()

        # Run again in the same folder, as a person would the next time.
        second = run_cli(snowflake_folder, **on_snowflake)
        assert second.returncode == 0, second.printed
        with Warehouse(snowflake_url, connect_args=snowflake_emulator.connect_args) as warehouse:
            current_second = warehouse.read_current()
            history_second = warehouse.read_table(CONNECTIONS_HISTORY)
            sync_runs = warehouse.read_table(SYNC_RUNS)
        # The SQL models, as README says to build them, on the runs' own instance.
        models = subprocess.run(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "connections_pipeline.definitions",
                "--select",
                "group:sql_models",
            ],
            cwd=snowflake_folder,
            env=cli_env(DAGSTER_HOME=str(home_of(snowflake_folder)), **on_snowflake),
            capture_output=True,
            text=True,
            timeout=900,
        )
        with (
            Warehouse(snowflake_url, connect_args=snowflake_emulator.connect_args) as warehouse,
            warehouse._engine.connect() as connection,
        ):
            model_rows = {
                name: connection.exec_driver_sql(f"SELECT COUNT(*) FROM finch.{name}").scalar_one()
                for name in ("connections", "needs_action_queue", "provider_health")
            }
    yield Landed(
        password=password,
        database=database,
        folder=snowflake_folder,
        snowflake=(first, second),
        duckdb=on_duckdb,
        current=(current_first, current_second),
        history=(history_first, history_second),
        duckdb_current=duckdb_current,
        sync_runs=sync_runs,
        models=models,
        model_rows=model_rows,
    )


def test_snowflake_holds_what_duckdb_holds_row_for_row(landed: Landed) -> None:
    on_snowflake, on_duckdb = landed.current[0], landed.duckdb_current
    # Every tab of the Connections page is there, so the comparison covers all three.
    assert set(on_duckdb["state"]) == {"live", "staged", "disconnected"}
    assert on_duckdb.height >= 40
    assert on_snowflake.columns == on_duckdb.columns
    # The two runs' IDs differ by construction; every other column must be the same.
    assert_frame_equal(by_key(on_snowflake).drop(RUN_ID), by_key(on_duckdb).drop(RUN_ID))
    assert on_snowflake[RUN_ID].n_unique() == 1
    assert on_snowflake[RUN_ID][0] != on_duckdb[RUN_ID][0]


def test_running_again_changes_nothing_in_snowflake(landed: Landed) -> None:
    (current_first, current_second), (history_first, history_second) = (
        landed.current,
        landed.history,
    )
    # The second run was a sync of its own that loaded its snapshot, not a skipped one.
    assert landed.sync_runs.height == 2
    assert landed.sync_runs["status"].to_list() == ["success", "success"]
    assert current_first[RUN_ID][0] in landed.sync_runs[RUN_ID].to_list()
    # The first run left nothing for later (no name pending), so the second had nothing to do.
    assert not current_first["company_name_pending"].any()
    # Nothing changed in Finch, so no row changed: not even the run that last changed it.
    assert_frame_equal(by_key(current_second), by_key(current_first))
    assert history_first.height == current_first.height
    assert_frame_equal(
        history_second.sort("connection_key", "valid_from"),
        history_first.sort("connection_key", "valid_from"),
    )


def test_the_snowflake_password_is_never_printed(landed: Landed) -> None:
    for run in landed.snowflake:
        # The summary names the warehouse the run wrote to, its password masked.
        shown = f"Warehouse: snowflake://loader:***@fakesnow/{landed.database} (schema finch)"
        assert shown in run.stdout
        assert landed.password not in run.printed
    # Nor is it kept in what the runs leave in the folder: logs, Dagster's instance, exports.
    kept = [path for path in landed.folder.rglob("*") if path.is_file()]
    assert any(path.name == "connections-pipeline.log" for path in kept)
    assert [path for path in kept if landed.password.encode() in path.read_bytes()] == []


def test_dagster_builds_every_sql_model_on_snowflake_and_its_checks_pass(landed: Landed) -> None:
    printed = landed.models.stdout + landed.models.stderr
    assert landed.models.returncode == 0, printed[-3000:]
    # Blocking checks: a failing one fails its model's step and the command.
    assert "ASSET_CHECK_EVALUATION" in printed
    assert "RUN_SUCCESS" in printed
    # The Dashboard-shaped model holds one row per connection the sync loaded.
    assert landed.model_rows["connections"] == landed.current[1].height
    assert landed.password not in printed
