"""A Connect link whose creation may have reached Finch is never created twice by accident.

The emulator over real loopback HTTP drops the connection, hangs past the client's timeout
or answers 5xx after creating the session; `connections-pipeline connect-link` runs
in-process against it with a DuckDB file or a PostgreSQL schema, as an operator would.
"""

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from sql_models.sql_model_helpers import materialize_models, read_relation

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.cli import main
from connections_pipeline.connect_links import create_reauth_links
from connections_pipeline.connect_links.reauth import connections_needing_link
from connections_pipeline.definitions import defs
from connections_pipeline.resources import FinchResource, TokenSourceResource, WarehouseResource
from connections_pipeline.warehouse import Warehouse
from finch_sandbox import (
    EndpointFaults,
    FinchSandbox,
    SandboxConfig,
    serve_in_thread,
)

pytestmark = pytest.mark.slow
TIME_SCALE = 0.01
REDIRECT = "https://app.example.com/finch/callback"
# Faults that strike after the emulator created the session; env: settings for that step.
AFTER_THE_SESSION = {
    "dropped": (EndpointFaults(drop_rate=1.0), {}),
    "hang": (
        EndpointFaults(hang_rate=1.0, hang_seconds=3.0, after_effect=True),
        {"CONNECTIONS_FINCH_TIMEOUT_SECONDS": "1"},
    ),
    "5xx": (EndpointFaults(error_rate=1.0, after_effect=True), {}),
}


@dataclass
class Served:
    sandbox: FinchSandbox
    base_url: str
    warehouse_url: str
    schema: str
    monkeypatch: pytest.MonkeyPatch

    def finch(self) -> FinchResource:
        client_id, client_secret = self.sandbox.credentials
        return FinchResource(
            base_url=self.base_url,
            client_id=client_id,
            client_secret=client_secret,
            time_scale=TIME_SCALE,
            timeout_seconds=10.0,
        )

    def warehouse(self) -> Warehouse:
        return Warehouse(self.warehouse_url, schema=self.schema)

    def ledger(self) -> pl.DataFrame:
        with self.warehouse() as warehouse:
            warehouse.ensure_tables()
            return warehouse.read_sessions()

    def ledger_rows(self) -> list[tuple]:
        return sorted(self.ledger().rows(), key=repr)

    def finch_sessions(self, customer_id: str) -> list[dict[str, Any]]:
        """Finch's sessions of a customer (ids compared case-folded), over HTTP."""
        listed = httpx.get(f"{self.base_url}/_sandbox/sessions", timeout=10).json()["sessions"]
        key = customer_id.strip().casefold()
        return [s for s in listed if (s["customer_id"] or "").strip().casefold() == key]

    def faults(self, name: str | None) -> None:
        """Switch the connect_sessions fault `name` (and its settings) on, or all off."""
        for variable in ("CONNECTIONS_FINCH_TIMEOUT_SECONDS",):
            self.monkeypatch.delenv(variable, raising=False)
        if name is None:
            self.sandbox.set_faults({})
            return
        faults, env = AFTER_THE_SESSION[name]
        self.sandbox.set_faults({"connect_sessions": faults})
        for variable, value in env.items():
            self.monkeypatch.setenv(variable, value)


@pytest.fixture(params=["duckdb", "postgres"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    """A served emulator of its own and a warehouse, both set in the environment."""
    if request.param == "duckdb":
        warehouse_url, schema = f"duckdb:///{tmp_path / 'links.duckdb'}", "finch"
    else:
        warehouse_url = request.getfixturevalue("postgres_url")
        schema = f"links_{secrets.token_hex(4)}"
    with _served(warehouse_url, schema, tmp_path, monkeypatch) as served:
        yield served


@pytest.fixture
def served_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """As `served`, with a DuckDB file only: for paths whose SQL is the same either way."""
    url = f"duckdb:///{tmp_path / 'links.duckdb'}"
    with _served(url, "finch", tmp_path, monkeypatch) as served:
        yield served


@contextmanager
def _served(
    warehouse_url: str, schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Served]:
    sandbox = FinchSandbox(SandboxConfig(seed=71, connections=40, time_scale=TIME_SCALE))
    client_id, client_secret = sandbox.credentials
    with serve_in_thread(sandbox) as base_url:
        settings = {
            "FINCH_BASE_URL": base_url,
            "FINCH_CLIENT_ID": client_id,
            "FINCH_CLIENT_SECRET": client_secret,
            "CONNECTIONS_FINCH_TIME_SCALE": str(TIME_SCALE),
            "CONNECTIONS_WAREHOUSE_URL": warehouse_url,
            "CONNECTIONS_WAREHOUSE_SCHEMA": schema,
            "CONNECTIONS_TOKENS_SOURCE": "sandbox",
            "CONNECTIONS_EXPORT_URL": str(tmp_path / "exports"),
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("CONNECTIONS_FINCH_TIMEOUT_SECONDS", raising=False)
        yield Served(sandbox, base_url, warehouse_url, schema, monkeypatch)


def _connect_link(customer_id: str, *extra: str) -> list[str]:
    return [
        "connect-link",
        "--customer-id",
        customer_id,
        "--customer-name",
        "Red Team Payroll",
        "--products",
        "company,directory",
        "--redirect-uri",
        REDIRECT,
        "--customer-email",
        "payroll@redteam.example",
        *extra,
    ]


def _one_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """(stdout, the single line on stderr)."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.out, lines[0]


@pytest.mark.parametrize("fault", list(AFTER_THE_SESSION))
def test_a_lost_answer_is_recorded_once_and_blocks_the_customer_until_forced(
    served: Served, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    served.faults(fault)
    assert main(_connect_link("REDTEAM-1", "--minutes-to-expire", "600")) == 2
    out, error = _one_line(capsys)
    assert out == ""
    # Finch created one session; no retry created a second.
    assert len(served.finch_sessions("REDTEAM-1")) == 1
    [row] = served.ledger().rows(named=True)
    key = row["session_id"]
    assert key.startswith("unknown-")
    assert error.startswith("connect-link: outcome unknown: Finch may have created")
    assert key in error and "not retried" in error
    assert (row["status"], row["connect_url"], row["kind"]) == ("unknown", None, "connect")
    assert (row["customer_id"], row["customer_name"], row["customer_email"]) == (
        "REDTEAM-1",
        "Red Team Payroll",
        "payroll@redteam.example",
    )
    assert (row["products"], row["redirect_uri"], row["created_by"]) == (
        "company,directory",
        REDIRECT,
        "cli",
    )
    assert row["minutes_to_expire"] == 600
    assert (row["expires_at"] - row["created_at"]).total_seconds() == 600 * 60
    assert f"{row['expires_at']:%Y-%m-%dT%H:%M:%SZ}" in error

    served.faults(None)
    before = served.ledger_rows()
    for same_customer in ("REDTEAM-1", " redteam-1", "Redteam-1 "):
        assert main(_connect_link(same_customer)) == 2
        out, error = _one_line(capsys)
        assert out == "" and "unknown outcome" in error and key in error
        assert served.ledger_rows() == before
    assert len(served.finch_sessions("REDTEAM-1")) == 1

    assert main(_connect_link(" redteam-1", "--force")) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://")
    assert len(served.finch_sessions("REDTEAM-1")) == 2
    ledger = served.ledger()
    assert sorted(ledger["status"]) == ["pending", "unknown"]
    forced = ledger.filter(pl.col("status") == "pending").row(0, named=True)
    assert (forced["connect_url"], forced["customer_id"]) == (url, "redteam-1")


def test_an_unknown_attempt_stops_blocking_once_it_would_have_expired(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.faults("dropped")
    assert main(_connect_link("cust-expiry", "--minutes-to-expire", "30")) == 2
    capsys.readouterr()
    served.faults(None)
    assert main(_connect_link("CUST-EXPIRY")) == 2
    assert "unknown outcome" in _one_line(capsys)[1]

    httpx.post(f"{served.base_url}/_sandbox/advance", json={"days": 0.05}, timeout=10)  # 72 min
    assert main(_connect_link("CUST-EXPIRY")) == 0
    assert capsys.readouterr().out.startswith("https://")
    assert sorted(served.ledger()["status"]) == ["pending", "unknown"]


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://user:pw@app.example.com/cb",
        "https://app.example.com@evil.example/cb",
        "https://app.example.com/cb\r\nSet-Cookie: a=b",
        "https://app.example.com/cb\n",
        "https://app.example.com/c\tb",
        "https://app.example.com/cb\x00",
        "https://app.example.com/cb\x85",
        " https://app.example.com/cb",
        "https://app.example.com/c b",
    ],
)
def test_a_refused_redirect_uri_ledgers_nothing(
    served: Served, redirect_uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_connect_link("cust-kept")) == 0
    capsys.readouterr()
    before, finch_before = served.ledger_rows(), len(served.finch_sessions("cust-redirect"))
    args = _connect_link("cust-redirect")
    args[args.index("--redirect-uri") + 1] = redirect_uri
    assert main(args) == 2
    out, error = _one_line(capsys)
    assert out == "" and error.startswith("connect-link: invalid Connect link request: ")
    assert "redirect_uri must not" in error and "pw" not in error
    assert served.ledger_rows() == before
    assert len(served.finch_sessions("cust-redirect")) == finch_before


def test_an_unknown_attempt_is_never_staged_and_counts_apart_in_the_funnel(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.faults("dropped")
    assert main(_connect_link("cust-funnel", "--minutes-to-expire", "30")) == 2
    served.faults(None)
    assert main(_connect_link("cust-funnel", "--force", "--minutes-to-expire", "30")) == 0
    capsys.readouterr()
    [unknown] = served.ledger().filter(pl.col("status") == "unknown").rows(named=True)

    finch, source = served.finch(), TokenSourceResource(kind="sandbox")
    with served.warehouse() as warehouse:
        first = sync_with_resources("run-1", finch, source, warehouse)
        httpx.post(f"{served.base_url}/_sandbox/advance", json={"days": 0.05}, timeout=10)
        second = sync_with_resources("run-2", finch, source, warehouse)
        ledger = warehouse.read_sessions()
    for result in (first, second):
        keys = set(result.connections["connection_key"])
        assert unknown["session_id"] not in keys
        assert result.sync_run["status"] == "success" and result.quarantine.height == 0
    # The Staged rows are exactly Finch's open sessions: the one the lost answer created
    # (which the sandbox token source reports, as an application would) and the forced one.
    staged = first.connections.filter(pl.col("customer_id") == "cust-funnel")
    finch_ids = {s["session_id"] for s in served.finch_sessions("cust-funnel")}
    assert set(staged["session_id"]) == finch_ids and len(finch_ids) == 2
    assert second.connections.filter(pl.col("customer_id") == "cust-funnel").height == 0
    # A sync never changes an attempt of unknown outcome, before or after its expiry.
    [kept] = ledger.filter(pl.col("session_id") == unknown["session_id"]).rows(named=True)
    assert kept == unknown

    resource = WarehouseResource(url=served.warehouse_url, schema_name=served.schema)
    models = materialize_models(resource)
    assert models.success
    checks = [e for e in models.get_asset_check_evaluations() if e.check_name == "funnel_adds_up"]
    assert [check.passed for check in checks] == [True]
    funnel = {row["kind"]: row for row in read_relation(resource, "connect_session_funnel")}
    connect = ledger.filter(pl.col("kind") == "connect")
    row = funnel["connect"]
    assert row["attempts_unknown"] == 1
    assert row["sessions_created"] == connect.height - 1
    assert (
        row["sessions_completed"] + row["sessions_expired"] + row["sessions_pending"]
        == (row["sessions_created"])
    )
    assert float(row["completion_rate"]) == pytest.approx(
        (connect["status"] == "completed").sum() / (connect.height - 1)
    )


def test_the_dagster_job_fails_with_the_reason_and_records_the_attempt(
    served_duckdb: Served,
) -> None:
    served = served_duckdb
    job = defs().resolve_job_def("create_connect_link")
    config = {
        "customer_id": "Cust-Job",
        "customer_name": "Job Co",
        "products": ["company"],
        "redirect_uri": REDIRECT,
    }
    run_config = {"ops": {"create_connect_session": {"config": config}}}
    served.faults("dropped")
    failed = job.execute_in_process(run_config=run_config, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    message = str(failure.event_specific_data.error)
    [row] = served.ledger().rows(named=True)
    assert "outcome unknown" in message and row["session_id"] in message
    assert (row["status"], row["created_by"]) == ("unknown", f"dagster:{failed.run_id}")
    assert len(served.finch_sessions("cust-job")) == 1

    served.faults(None)
    config["customer_id"] = " cust-job"
    refused = job.execute_in_process(run_config=run_config, raise_on_error=False)
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert row["session_id"] in str(failure.event_specific_data.error)
    assert served.ledger().height == 1
    config["force"] = True
    assert job.execute_in_process(run_config=run_config).success
    assert len(served.finch_sessions("cust-job")) == 2


def test_an_unknown_reauthentication_attempt_is_not_repeated(served_duckdb: Served) -> None:
    served = served_duckdb
    finch = served.finch()
    with served.warehouse() as warehouse:
        sync_with_resources("run-1", finch, TokenSourceResource(kind="sandbox"), warehouse)
        # Connections in reauth without an open reauthentication link (Finch's clock).
        needing = connections_needing_link(
            warehouse.read_current(), warehouse.read_sessions(), served.sandbox.now
        )
        in_reauth = set(needing["connection_id"])
        assert in_reauth, "the dataset should hold connections in reauth without a link"
        before = len(served.sandbox.sessions())
        served.sandbox.set_faults({"reauthenticate": EndpointFaults(drop_rate=1.0)})
        lost = create_reauth_links(finch, warehouse, minutes_to_expire=600)
        assert (len(lost.created), len(lost.failed), len(lost.unknown)) == (0, 0, len(in_reauth))
        # One session per connection at Finch: none was asked for twice.
        assert len(served.sandbox.sessions()) == before + len(in_reauth)
        served.sandbox.set_faults({})
        again = create_reauth_links(finch, warehouse, minutes_to_expire=600)
        assert (len(again.created), len(again.unknown)) == (0, 0)
        assert len(served.sandbox.sessions()) == before + len(in_reauth)
        ours = warehouse.read_sessions().filter(pl.col("created_by") == "reauth_asset")
    assert set(ours["reauth_connection_id"]) == in_reauth
    assert set(ours["status"]) == {"unknown"} and ours["connect_url"].is_null().all()


@pytest.mark.parametrize("fault", [None, "dropped"])
def test_a_link_the_ledger_cannot_record_is_named_in_the_one_line(
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: str | None,
) -> None:
    schema = f"links_{secrets.token_hex(4)}"
    with _served(postgres_url, schema, tmp_path, monkeypatch) as served:
        served.ledger()  # creates the tables
        engine = sa.create_engine(postgres_url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    f"create function {schema}.refuse() returns trigger language plpgsql as "
                    "$$ begin raise exception 'the ledger is read-only'; end $$"
                )
            )
            connection.execute(
                sa.text(
                    f"create trigger read_only before insert on {schema}.finch_connect_sessions "
                    f"for each row execute function {schema}.refuse()"
                )
            )
        engine.dispose()
        served.faults(fault)
        assert main(_connect_link("cust-read-only")) == 2
        _, line = _one_line(capsys)
        [session] = served.finch_sessions("cust-read-only")
        assert "the ledger could not record it" in line and "the ledger is read-only" in line
        if fault is None:
            assert f"Finch created Connect session {session['session_id']}" in line
            assert session["connect_url"] in line
        else:
            assert "Finch may have created a Connect link" in line
            assert "outcome unknown, attempt unknown-" in line
        assert served.ledger().height == 0
