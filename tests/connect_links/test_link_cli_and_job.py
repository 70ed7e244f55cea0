"""`connections-pipeline connect-link` and the `create_connect_link` / re-auth Dagster jobs."""

import csv
import itertools
from pathlib import Path

import polars as pl
import pytest

from connections_pipeline.cli import main
from connections_pipeline.definitions import SYNC_JOB_NAME, defs
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow
ARGS = [
    "connect-link",
    "--customer-id",
    "cust-cli-1",
    "--customer-name",
    "CLI Co",
    "--products",
    "company,directory",
    "--redirect-uri",
    "https://app.example.com/cb",
]
# The embedded emulator is one per seed and process: a seed per test keeps them apart.
SEEDS = itertools.count(601)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for the embedded emulator (a seed of its own) and a DuckDB file in tmp."""
    database = tmp_path / "cli.duckdb"
    for name in ("FINCH_BASE_URL", "FINCH_CLIENT_ID", "FINCH_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"duckdb:///{database}")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_SEED", str(next(SEEDS)))
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "30")
    monkeypatch.setenv("CONNECTIONS_EXPORT_URL", str(tmp_path / "exports"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    return database


def _ledger(database: Path) -> pl.DataFrame:
    with Warehouse(f"duckdb:///{database}") as warehouse:
        warehouse.ensure_tables()
        return warehouse.read_sessions()


def test_cli_prints_the_url_and_records_every_input(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = ["--customer-email", "a@cli.example", "--minutes-to-expire", "120"]
    extra += ["--provider", "gusto", "--auth-method", "oauth", "--manual", "--sandbox", "finch"]
    assert main([*ARGS, *extra]) == 0
    url = capsys.readouterr().out.strip()
    [row] = _ledger(env).rows(named=True)
    assert row["connect_url"] == url and url.startswith("https://")
    assert (row["customer_id"], row["customer_name"], row["customer_email"]) == (
        "cust-cli-1",
        "CLI Co",
        "a@cli.example",
    )
    assert (row["products"], row["redirect_uri"]) == ("company,directory", ARGS[-1])
    assert (row["provider_id"], row["auth_method"], row["manual"], row["sandbox"]) == (
        "gusto",
        "oauth",
        True,
        "finch",
    )
    assert (row["minutes_to_expire"], row["created_by"], row["status"]) == (120, "cli", "pending")
    assert (row["expires_at"] - row["created_at"]).total_seconds() == 120 * 60


def test_cli_refuses_a_duplicate_unless_forced(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(ARGS) == 0
    capsys.readouterr()
    assert main(ARGS) != 0
    assert "already has an active Connect session" in capsys.readouterr().err
    assert _ledger(env).height == 1
    assert main([*ARGS, "--force"]) == 0
    assert _ledger(env).height == 2


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        (["--products", "company,payroll"], "unknown product"),
        (["--redirect-uri", "http://app.example.com/cb"], "redirect_uri must use https"),
        (["--minutes-to-expire", "200000"], "minutes_to_expire"),
        (["--provider", "nobody"], "known providers"),
        (["--customer-id", ""], "customer_id is required"),
    ],
)
def test_cli_exits_non_zero_with_the_reason(
    env: Path, capsys: pytest.CaptureFixture[str], changed: list[str], reason: str
) -> None:
    args = list(ARGS)
    if changed[0] in args:
        args[args.index(changed[0]) + 1] = changed[1]
    else:
        args += changed
    assert main(args) == 2
    assert reason in capsys.readouterr().err
    assert _ledger(env).height == 0


def _job_config(**values: object) -> dict:
    config = {
        "customer_id": "cust-job-1",
        "customer_name": "Job Co",
        "products": ["company"],
        "redirect_uri": "https://app.example.com/cb",
        **values,
    }
    return {"ops": {"create_connect_session": {"config": config}}}


def test_dagster_job_creates_a_link_from_typed_config(env: Path) -> None:
    job = defs().resolve_job_def("create_connect_link")
    result = job.execute_in_process(run_config=_job_config(provider="gusto"))
    assert result.success
    url = result.output_for_node("create_connect_session")
    [row] = _ledger(env).rows(named=True)
    assert row["connect_url"] == url
    assert row["created_by"] == f"dagster:{result.run_id}"
    assert row["provider_id"] == "gusto"

    refused = job.execute_in_process(run_config=_job_config(), raise_on_error=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "already has an active Connect session" in str(failure.event_specific_data.error)
    assert _ledger(env).height == 1
    forced = job.execute_in_process(run_config=_job_config(force=True))
    assert forced.success and _ledger(env).height == 2


def test_dagster_job_refuses_bad_input_and_records_nothing(env: Path) -> None:
    job = defs().resolve_job_def("create_connect_link")
    result = job.execute_in_process(
        run_config=_job_config(sandbox="maybe", minutes_to_expire=0), raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "sandbox must be one of" in str(failure.event_specific_data.error)
    assert _ledger(env).height == 0


def test_reauth_asset_is_opt_in_and_writes_the_queue_csv(env: Path, tmp_path: Path) -> None:
    definitions = defs()
    sync_job = definitions.resolve_job_def(SYNC_JOB_NAME)
    sync_keys = {key.to_user_string() for key in sync_job.asset_layer.executable_asset_keys}
    assert "finch_reauth_queue" not in sync_keys
    assert sync_job.execute_in_process().success
    reauth = definitions.resolve_job_def("reauthenticate_connections")
    for _ in range(2):
        assert reauth.execute_in_process().success
    with Warehouse(f"duckdb:///{env}") as warehouse:
        queue = warehouse.read_reauth_queue()
        current = warehouse.read_current()
        ledger = warehouse.read_sessions()
    in_reauth = current.filter(
        (pl.col("state") == "live") & (pl.col("connection_status") == "reauth")
    )
    assert sorted(queue["connection_id"]) == sorted(in_reauth["connection_id"])
    ours = ledger.filter(pl.col("created_by").str.starts_with("dagster:"))
    assert ours["reauth_connection_id"].n_unique() == ours.height
    with open(tmp_path / "exports" / "reauth_queue.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["connection_id"] for row in rows] == queue["connection_id"].to_list()
    assert all(row["connect_url"].startswith("https://") for row in rows)
    assert {"customer_name", "provider_name", "days_in_reauth"} <= set(rows[0])


def _single_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["--minutes-to-expire", "soon"],
            "argument --minutes-to-expire: invalid int value: 'soon'",
        ),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["stray"], "unrecognized arguments: stray"),
    ],
)
def test_cli_refuses_a_bad_argument_in_one_line(
    env: Path, capsys: pytest.CaptureFixture[str], args: list[str], reason: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*ARGS, *args])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert _single_line(captured.err) == f"connect-link: {reason}"


def test_cli_names_every_missing_argument_in_one_line(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["connect-link", "--customer-id", "x"])
    assert exited.value.code == 2
    line = _single_line(capsys.readouterr().err)
    assert "--customer-name, --products, --redirect-uri" in line


def _corrupt_duckdb(path: Path) -> None:
    path.write_bytes(b"not a duckdb file")


def _foreign_ledger(path: Path) -> None:
    """A ledger table someone else created, with a column of another type."""
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema finch")
        connection.execute(
            "create table finch.finch_connect_sessions (session_id varchar primary key, "
            "created_at varchar)"
        )
        connection.execute("insert into finch.finch_connect_sessions values ('s', 'yesterday')")


@pytest.mark.parametrize(
    ("settings", "prepare", "reason"),
    [
        ({"CONNECTIONS_WAREHOUSE_URL": "nope://x"}, None, "CONNECTIONS_WAREHOUSE_URL uses 'nope'"),
        ({"CONNECTIONS_WAREHOUSE_SCHEMA": "pg_links"}, None, "CONNECTIONS_WAREHOUSE_SCHEMA"),
        ({"CONNECTIONS_FINCH_TIMEOUT_SECONDS": "soon"}, None, "CONNECTIONS_FINCH_TIMEOUT"),
        ({"FINCH_BASE_URL": "ftp://finch.example"}, None, "FINCH_BASE_URL"),
        ({"FINCH_BASE_URL": "http://127.0.0.1:9"}, None, "FINCH_CLIENT_ID, FINCH_CLIENT_SECRET"),
        (
            {"CONNECTIONS_WAREHOUSE_URL": "postgresql+psycopg://u:hunter2@127.0.0.1:1/wh"},
            None,
            "is unreachable",
        ),
        ({}, _corrupt_duckdb, "not a valid DuckDB database file"),
        # Nothing anticipates this one: it still ends in one line, and the traceback goes
        # to the DEBUG log only.
        ({}, _foreign_ledger, "ComputeError"),
    ],
)
def test_cli_refuses_a_bad_setting_in_one_line(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, str],
    prepare: object,
    reason: str,
) -> None:
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    if prepare is not None:
        prepare(env)
    with caplog.at_level("DEBUG", logger="connections_pipeline.cli"):
        assert main(ARGS) == 2
    captured = capsys.readouterr()
    line = _single_line(captured.err)
    assert captured.out == ""
    assert line.startswith("connect-link: ") and reason in line
    assert "hunter2" not in line
    [logged] = [r for r in caplog.records if r.name == "connections_pipeline.cli"]
    assert logged.levelname == "DEBUG" and "Traceback" in logged.getMessage()
    assert "hunter2" not in logged.getMessage()
