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
