"""What a person sees when a setting is wrong or a sync is held: one line, an exit code that
says which, nothing written; and how a real mass change is accepted."""

from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest
from guard_helpers import data_checksums
from sandbox.sandbox_helpers import cli_server
from sync.sync_helpers import TIME_SCALE

from connections_pipeline.assets.sync import SNAPSHOT_TRUSTED, sync_finch_connections
from connections_pipeline.cli import EXIT_HELD, EXIT_SETTING, main
from connections_pipeline.definitions import defs
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.settings import SettingError, build_resources
from connections_pipeline.sources.records import TokenSourceError
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return tmp_path


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err
    assert "Traceback" not in error
    lines = error.strip().splitlines()
    assert len(lines) == 1, error
    return lines[0]


@pytest.mark.parametrize("variable", ["CONNECTIONS_TOKENS_FILE", "CONNECTIONS_TOKENS_URL"])
def test_the_embedded_emulator_refuses_the_applications_own_tokens(
    variable: str,
    fresh_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Regression: with FINCH_BASE_URL forgotten, real tokens went to the emulator, every one
    # answered 401 and every live connection became Disconnected in a "successful" run.
    monkeypatch.setenv(variable, "tokens.jsonl")
    monkeypatch.setenv("CONNECTIONS_TOKENS_QUERY", "select access_token from t")
    assert main(["run"]) == EXIT_SETTING
    line = _one_line(capsys)
    assert line.startswith(f"run: {variable} is set but FINCH_BASE_URL is not")
    assert not (fresh_folder / "data").exists()
    # The resource refuses the same, for definitions built some other way.
    with pytest.raises(TokenSourceError, match="FINCH_BASE_URL"):
        TokenSourceResource(tokens_file="tokens.jsonl").resolved_kind(FinchResource())


def test_a_duckdb_file_under_a_file_is_refused_before_anything(
    fresh_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (fresh_folder / "blocker").write_text("a file, not a folder")
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", "duckdb:///blocker/wh/connections.duckdb")
    assert main(["run"]) == EXIT_SETTING
    assert _one_line(capsys).startswith("run: CONNECTIONS_WAREHOUSE_URL: the DuckDB file")
    assert not (fresh_folder / "data").exists()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CONNECTIONS_HOLD_LIVE_DROP_SHARE", "1.5", "must be a share from 0 to 1"),
        ("CONNECTIONS_HOLD_TOKEN_FAILURE_SHARE", "-0.1", "must be positive"),
        ("CONNECTIONS_HOLD_MIN_COUNT", "some", "must be a whole number"),
        ("CONNECTIONS_FINCH_CLIENT_TYPE", "prod", "must be one of development, production"),
        ("CONNECTIONS_FRESHNESS_HOURS", "0", "must be positive"),
    ],
)
def test_unusable_guard_settings_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingError, match=f"{variable} {message}"):
        build_resources({variable: value})


def test_guard_settings_are_bound_from_the_environment() -> None:
    guard = build_resources(
        {"CONNECTIONS_HOLD_LIVE_DROP_SHARE": "0.5", "CONNECTIONS_HOLD_MIN_COUNT": "0"}
    )["sync_guard"]
    thresholds = guard.thresholds()
    assert (thresholds.max_live_drop_share, thresholds.min_count) == (0.5, 0)
    assert thresholds.max_token_failure_share == 0.2


def test_the_snapshot_check_is_blocking_and_finch_connections_has_a_freshness_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONNECTIONS_FRESHNESS_HOURS", "3")
    graph = defs().resolve_asset_graph()
    [check] = [key for key in graph.asset_check_keys if key.name == SNAPSHOT_TRUSTED]
    assert check.asset_key == dg.AssetKey("finch_connections")
    assert graph.get_check_spec(check).blocking
    policy = graph.get(dg.AssetKey("finch_connections")).freshness_policy
    assert policy.warn_window.to_timedelta().total_seconds() == 3 * 3600
    assert policy.fail_window.to_timedelta().total_seconds() == 6 * 3600


def test_a_warehouse_folder_that_cannot_exist_fails_the_step_once(tmp_path: Path) -> None:
    # Regression: the run's retry policy retried it after 330 s, then 990 s.
    (tmp_path / "blocker").write_text("a file")
    resources = {
        "finch": FinchResource(sandbox_seed=5, sandbox_connections=5),
        "token_source": TokenSourceResource(),
        "warehouse": WarehouseResource(url=f"duckdb:///{tmp_path / 'blocker' / 'wh.duckdb'}"),
        "sync_guard": SyncGuardResource(),
        "notifier": NotifierResource(),
    }
    result = dg.materialize([sync_finch_connections], resources=resources, raise_on_error=False)
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    data = failure.step_failure_data.user_failure_data
    assert data.metadata["cause"].value == "setting"
    assert "is a file, not a folder" in data.description
    assert not [event for event in result.all_events if event.is_step_up_for_retry]


def test_a_held_sync_is_one_line_and_exit_3_until_accepted(
    fresh_folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ("--seed", "59", "--connections", "60", "--time-scale", str(TIME_SCALE))
    with cli_server(*options) as (_, base_url):
        monkeypatch.setenv("FINCH_BASE_URL", base_url)
        monkeypatch.setenv("CONNECTIONS_TOKENS_SOURCE", "sandbox")
        monkeypatch.setenv("CONNECTIONS_FINCH_TIME_SCALE", str(TIME_SCALE))
        assert main(["run"]) == 0
        capsys.readouterr()
        exports = fresh_folder / "data" / "exports"
        files_before = sorted(path.name for path in exports.iterdir())
        warehouse = Warehouse(f"duckdb:///{fresh_folder / 'data' / 'connections.duckdb'}")
        before = data_checksums(warehouse)
        warehouse.dispose()

        httpx.post(f"{base_url}/_sandbox/advance", json={"days": 365}, timeout=60)
        assert main(["run"]) == EXIT_HELD
        line = _one_line(capsys)
        assert line.startswith("run: sync ") and "failed: sync held, nothing loaded:" in line
        assert "would leave Live in one run" in line and "--accept-mass-change" in line
        log = fresh_folder / "data" / "dagster_home" / "connections-pipeline.log"
        assert f"(log: {log})" in line
        assert "Failure: sync held, nothing loaded" in log.read_text()
        assert sorted(path.name for path in exports.iterdir()) == files_before
        warehouse = Warehouse(f"duckdb:///{fresh_folder / 'data' / 'connections.duckdb'}")
        assert data_checksums(warehouse) == before
        warehouse.dispose()

        assert main(["run", "--accept-mass-change"]) == 0
    warehouse = Warehouse(f"duckdb:///{fresh_folder / 'data' / 'connections.duckdb'}")
    runs = warehouse.read_table("finch_sync_runs").sort("started_at")
    assert runs["status"].to_list() == ["success", "held", "success"]
    assert runs["accepted_mass_change"].to_list() == [False, False, True]
    as_of = runs["as_of"][-1]
    warehouse.dispose()
    # The CSVs of the accepted run carry its snapshot's date, a year after the first.
    assert (exports / f"connections_live_{as_of.date().isoformat()}.csv").is_file()
    assert "connections_live_" + as_of.date().isoformat() not in "".join(files_before)
    latest = pl.read_csv(exports / "connections_live_latest.csv")
    dated = pl.read_csv(exports / f"connections_live_{as_of.date().isoformat()}.csv")
    assert latest.equals(dated)
