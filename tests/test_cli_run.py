"""The README's run command: a whole sync on the embedded defaults, from a fresh folder."""

from pathlib import Path

import pytest

from connections_pipeline.cli import main
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_run_syncs_the_embedded_sandbox_into_a_local_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "50")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_SEED", "99")

    assert main(["run"]) == 0

    printed = capsys.readouterr().out
    database = tmp_path / "data" / "connections.duckdb"
    assert database.is_file()
    assert (tmp_path / "data" / "dagster_home").is_dir()
    current = Warehouse(f"duckdb:///{database}").read_current()
    for state in ("live", "staged", "disconnected"):
        count = current.filter(current["state"] == state).height
        assert any(line.split()[:2] == [state, str(count)] for line in printed.splitlines())
    assert "duckdb:///data/connections.duckdb" in printed


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONNECTIONS_WAREHOUSE_SCHEMA", "pg_x"),
        ("CONNECTIONS_WAREHOUSE_SCHEMA", "a;drop table x"),
        ("CONNECTIONS_SANDBOX_CONNECTIONS", "many"),
    ],
)
def test_run_refuses_an_unusable_setting_before_writing_anything(
    variable: str,
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Regression: a bad setting ended `run` in a traceback instead of a one-line error.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv(variable, value)

    assert main(["run"]) == 2

    error = capsys.readouterr().err
    assert error.startswith(f"run: {variable}") and "Traceback" not in error
    assert not (tmp_path / "data" / "connections.duckdb").exists()
    assert not (tmp_path / "data" / "exports").exists()


def test_run_summary_reads_the_schema_set_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Regression: with a setting bound from the environment the summary read an unresolved
    # EnvVar and failed after a successful sync.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "20")
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_SCHEMA", "dashboard")

    assert main(["run"]) == 0

    assert "(schema dashboard)" in capsys.readouterr().out
    database = tmp_path / "data" / "connections.duckdb"
    assert Warehouse(f"duckdb:///{database}", schema="dashboard").read_current().height > 0
