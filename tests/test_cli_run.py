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
    # Paths are printed absolute, whatever the working directory was.
    assert f"Warehouse: duckdb:///{database} (schema finch)" in printed


def test_the_quick_start_prints_a_short_story_and_keeps_dagsters_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # README's quick start exactly: no settings. Regression: it printed Dagster's debug
    # events and telemetry notice in the middle of the sync, a relative warehouse path and
    # the emulator's clock without saying whose it was.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)

    assert main(["run"]) == 0

    captured = capsys.readouterr()
    printed = captured.out + captured.err
    lines = printed.splitlines()
    assert len(lines) <= 25, printed
    assert captured.err == ""
    assert "DEBUG" not in printed and "Telemetry" not in printed
    # Progress of each Finch phase (tokens introspected, follow-ups), one line each here.
    assert any(line.startswith("Tokens introspected: ") for line in lines)
    assert any(line.startswith("Follow-ups: ") for line in lines)
    [sync_line] = [line for line in lines if line.startswith("Sync ")]
    assert " UTC, by the embedded Finch sandbox's simulated clock (this machine's: " in sync_line
    [log_line] = [line for line in lines if line.startswith("Log: ")]
    log = Path(log_line.removeprefix("Log: ").split(" (")[0])
    assert log.is_absolute() and log.is_relative_to(tmp_path)
    assert 'Started execution of step "sync_finch_connections"' in log.read_text(encoding="utf-8")
    [report_line] = [line for line in lines if line.startswith("Report: ")]
    report = Path(report_line.removeprefix("Report: "))
    assert report.is_absolute() and report.is_file()
    assert report.parent == tmp_path / "data" / "exports"
    current = Warehouse(f"duckdb:///{tmp_path / 'data' / 'connections.duckdb'}").read_current()
    html = report.read_text(encoding="utf-8")
    for state in ("live", "staged", "disconnected"):
        count = current.filter(current["state"] == state).height
        assert f'<span class="count" id="count-{state}">{count}</span>' in html


def test_verbose_shows_dagsters_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "20")

    assert main(["run", "-v"]) == 0

    captured = capsys.readouterr()
    assert "STEP_START" in captured.out + captured.err


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
