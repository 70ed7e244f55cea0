"""The README's commands: `connections-pipeline run` and the Dagster CLI's single run."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from export_helpers import HEADER, STATES, expected_rows, read_with_csv, sync_into

from connections_pipeline.cli import main
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_run_command_also_writes_the_three_csvs_and_prints_their_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("CONNECTIONS_EXPORT_URL", raising=False)
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "50")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_SEED", "99")

    assert main(["run"]) == 0

    printed = capsys.readouterr().out.splitlines()
    exports = tmp_path / "data" / "exports"
    current = Warehouse(f"duckdb:///{tmp_path / 'data' / 'connections.duckdb'}").read_current()
    for state in STATES:
        latest = exports / f"connections_{state}_latest.csv"
        [dated] = [path for path in exports.glob(f"connections_{state}_2*.csv")]
        assert any(line.split() == [str(latest)] for line in printed)
        [row_line] = [line for line in printed if line.endswith(str(dated))]
        assert row_line.split() == [state, str(len(expected_rows(current, state))), str(dated)]
        assert read_with_csv(latest) == [HEADER, *expected_rows(current, state)]


def test_dagster_cli_materializes_all_states_in_one_run(tmp_path: Path) -> None:
    warehouse_url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with Warehouse(warehouse_url) as warehouse:
        sync_into(warehouse, seed=3, connections=40)
        current = warehouse.read_current()
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CONNECTIONS_WAREHOUSE_URL": warehouse_url,
        "CONNECTIONS_EXPORT_URL": str(tmp_path / "exports"),
    }
    command = [
        *(str(Path(sys.executable).parent / "dagster"),),
        "asset",
        "materialize",
        "-m",
        "connections_pipeline.definitions",
        "--select",
        "finch_connections_csv",
        "--partition-range",
        "live...disconnected",
    ]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # One run, recorded in the instance under DAGSTER_HOME, materialized every state.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        materialized = instance.get_materialized_partitions(dg.AssetKey("finch_connections_csv"))
    assert materialized == set(STATES)
    for state in STATES:
        latest = tmp_path / "exports" / f"connections_{state}_latest.csv"
        assert read_with_csv(latest) == [HEADER, *expected_rows(current, state)]
