"""No access token or client secret anywhere, after real Dagster runs against a faulty Finch.

One scenario (a module fixture) serves the emulator over loopback HTTP with faults on every
endpoint and runs the code location's own jobs on a persistent Dagster instance in a
temporary folder: syncs into DuckDB and into a Postgres schema, the CSV export of each
state, a Connect link, the re-auth queue, and runs that fail (wrong client secret, Finch
answering 500 everywhere, revoked tokens, unusable warehouse and token-source URLs that
carry a password). The tests then scan everything those runs left behind.
"""

import asyncio
import base64
import logging
import secrets
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from secrets_helpers import (
    Corpus,
    RecordingHandler,
    SecretScanner,
    dagster_texts,
    exception_texts,
    file_texts,
    representations,
    warehouse_texts,
)

from connections_pipeline.assets.sync import sync_finch_connections
from connections_pipeline.cli import main as cli_main
from connections_pipeline.connect_links import ConnectLinkRequest, create_connect_link
from connections_pipeline.definitions import EXPORT_JOB_NAME, SYNC_JOB_NAME, defs
from connections_pipeline.partitions import CONNECTION_STATES, all_states_tags
from connections_pipeline.resources import (
    ExportDestinationResource,
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.sources.records import TokenSourceError
from connections_pipeline.sources.sql import read_token_query
from connections_pipeline.warehouse import Warehouse, WarehouseConnectionError
from finch_sandbox import (
    EndpointFaults,
    FinchSandbox,
    SandboxConfig,
    serve_in_thread,
)

slow = pytest.mark.slow

SEED = 8_317
CONNECTIONS = 60
TIME_SCALE = 0.01
FAULTS = EndpointFaults(
    error_rate=0.1,
    malformed_rate=0.05,
    drop_rate=0.05,
    hang_rate=0.03,
    hang_seconds=1.0,
    rate_limit_rate=0.05,
    extra_fields=True,
)
FINCH_DOWN = EndpointFaults(error_rate=1.0)
VERSION = {"Finch-API-Version": "2020-09-17"}
LINK_JOB = "create_connect_link"
REAUTH_JOB = "reauthenticate_connections"
# Loggers that hold DEBUG records back unless asked: where request headers would show.
DEBUG_LOGGERS = ("", "httpx", "httpcore", "aiohttp", "uvicorn", "connections_pipeline", "dagster")
# INFO logs every statement with its parameters; DEBUG would add every row read.
SQL_LOGGERS = ("sqlalchemy.engine",)
SETTINGS_TO_CLEAR = (
    "FINCH_BASE_URL",
    "FINCH_CLIENT_ID",
    "FINCH_CLIENT_SECRET",
    "CONNECTIONS_TOKENS_SOURCE",
    "CONNECTIONS_TOKENS_FILE",
    "CONNECTIONS_SESSIONS_FILE",
    "CONNECTIONS_TOKENS_URL",
    "CONNECTIONS_TOKENS_QUERY",
    "CONNECTIONS_SESSIONS_QUERY",
    "CONNECTIONS_WAREHOUSE_URL",
    "CONNECTIONS_WAREHOUSE_SCHEMA",
    "CONNECTIONS_EXPORT_URL",
    "CONNECTIONS_EXPORT_STORAGE_OPTIONS",
    "CONNECTIONS_NOTIFY_RUNS",
    "CONNECTIONS_NOTIFY_NEEDS_ACTION",
    "CONNECTIONS_NOTIFY_EXPORTS",
    "CONNECTIONS_SANDBOX_SEED",
    "CONNECTIONS_SANDBOX_CONNECTIONS",
)
# Runs that must fail: their failure events and error info are part of what is scanned.
MUST_FAIL = (
    "link with a wrong client secret",
    "link while Finch answers 500",
    "sync into an unreachable warehouse",
    "sync into an unreachable warehouse, password in the query",
    "link into an unreachable warehouse, password in the query",
    "sync into an unparsable warehouse URL",
    "export from an unparsable warehouse URL",
    "link into an unreachable warehouse",
    "reauth into an unreachable warehouse",
    "sync from an unreachable token database",
    "sync from a token query that quotes tokens",
)


@dataclass
class Scenario:
    scanner: SecretScanner
    corpus: Corpus
    results: dict[str, dg.ExecuteInProcessResult] = field(default_factory=dict)
    tokens: int = 0
    revoked_tokens: int = 0
    event_records: int = 0
    exports: Path = Path()
    instance_root: Path = Path()
    finch_requests: dict[str, Any] = field(default_factory=dict)
    log_lines: int = 0
    leaks: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # (kind, last_error) of the notifications the DuckDB runs queued
    notifications: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("secrets")
    sandbox = FinchSandbox(
        SandboxConfig(
            seed=SEED, connections=CONNECTIONS, time_scale=TIME_SCALE, faults={"*": FAULTS}
        )
    )
    client_id, client_secret = sandbox.credentials
    wrong_secret = f"wrong-secret-{secrets.token_hex(12)}"
    warehouse_password = f"wh-pw-{secrets.token_hex(12)}"
    token_db_password = f"app-pw-{secrets.token_hex(12)}"
    query_password = f"query-pw-{secrets.token_hex(12)}"
    notify_password = f"notify-pw-{secrets.token_hex(12)}"
    duckdb_url = f"duckdb:///{root / 'warehouse.duckdb'}"
    pg_schema = f"finch_leak_{secrets.token_hex(4)}"
    app_schema = f"app_leak_{secrets.token_hex(4)}"
    scenario = Scenario(SecretScanner(), Corpus(), exports=root / "exports")
    scenario.instance_root = root / "dagster"
    scenario.instance_root.mkdir()

    with (
        serve_in_thread(sandbox) as base_url,
        pytest.MonkeyPatch.context() as env,
        _recorded_logs() as recorded,
        dg.DagsterInstance.local_temp(str(scenario.instance_root)) as instance,
    ):
        for name in SETTINGS_TO_CLEAR:
            env.delenv(name, raising=False)
        settings = {
            "FINCH_BASE_URL": base_url,
            "FINCH_CLIENT_ID": client_id,
            "FINCH_CLIENT_SECRET": client_secret,
            "CONNECTIONS_TOKENS_SOURCE": "sandbox",
            "CONNECTIONS_FINCH_TIME_SCALE": str(TIME_SCALE),
            "CONNECTIONS_FINCH_TIMEOUT_SECONDS": "0.4",
            "CONNECTIONS_FINCH_MAX_ATTEMPTS": "4",
            "CONNECTIONS_WAREHOUSE_URL": duckdb_url,
            "CONNECTIONS_EXPORT_URL": str(scenario.exports),
            # Receivers that refuse every connection: each message fails, is kept and logged.
            "CONNECTIONS_NOTIFY_RUNS": f"json://alerts:{notify_password}@127.0.0.1:1/hook",
            "CONNECTIONS_NOTIFY_NEEDS_ACTION": (
                f"mailto://alerts:{notify_password}@127.0.0.1:1?from=a@example.com&to=b@example.com"
            ),
            "CONNECTIONS_NOTIFY_EXPORTS": f"json://alerts:{notify_password}@127.0.0.1:1/files",
            "CONNECTIONS_NOTIFY_TIMEOUT_SECONDS": "2",
        }
        for name, value in settings.items():
            env.setenv(name, value)

        def run(label: str, job_name: str, **options: Any) -> dg.ExecuteInProcessResult:
            # Settings are bound when the code location loads: load it for every run.
            started = time.perf_counter()
            job = defs().resolve_job_def(job_name)
            result = job.execute_in_process(instance=instance, raise_on_error=False, **options)
            scenario.results[label] = result
            scenario.seconds[label] = time.perf_counter() - started
            return result

        # Healthy-ish runs against a faulty Finch, DuckDB warehouse.
        run("sync", SYNC_JOB_NAME)
        for state in CONNECTION_STATES:
            run(f"export {state}", EXPORT_JOB_NAME, partition_key=state)
        run("link", LINK_JOB, run_config=_link_config("cust-leak-1"))
        run("reauth", REAUTH_JOB)

        # Revoked tokens: connections disconnected at Finch, then Finch moves on.
        live = [t["access_token"] for t in sandbox.tokens() if not t["revoked"]]
        for token in live[:6]:
            _disconnect(base_url, token)
        sandbox.advance(3)
        run("sync after revocations", SYNC_JOB_NAME)
        run("export every state", EXPORT_JOB_NAME, tags=all_states_tags())

        # The same into a Postgres schema.
        env.setenv("CONNECTIONS_WAREHOUSE_URL", postgres_url)
        env.setenv("CONNECTIONS_WAREHOUSE_SCHEMA", pg_schema)
        run("sync into postgres", SYNC_JOB_NAME)
        run("export from postgres", EXPORT_JOB_NAME, tags=all_states_tags())

        # A wrong client secret: the link fails, every re-auth link fails.
        env.setenv("FINCH_CLIENT_SECRET", wrong_secret)
        run("link with a wrong client secret", LINK_JOB, run_config=_link_config("cust-leak-2"))
        run("reauth with a wrong client secret", REAUTH_JOB)
        scenario.corpus.extend(_raised_by_failing_job(instance))
        env.setenv("FINCH_CLIENT_SECRET", client_secret)

        # Finch answering 500 everywhere.
        sandbox.set_faults({"*": FINCH_DOWN})
        run("sync while Finch answers 500", SYNC_JOB_NAME)
        run("link while Finch answers 500", LINK_JOB, run_config=_link_config("cust-leak-3"))
        sandbox.set_faults({"*": FAULTS})

        # Unusable warehouse URLs that carry a password.
        in_query = f"postgresql+psycopg://finch_app@127.0.0.1:1/wh?password={query_password}"
        env.setenv("CONNECTIONS_WAREHOUSE_URL", in_query)
        run("sync into an unreachable warehouse, password in the query", SYNC_JOB_NAME)
        run(
            "link into an unreachable warehouse, password in the query",
            LINK_JOB,
            run_config=_link_config("c-5"),
        )
        unreachable = f"postgresql+psycopg://finch_app:{warehouse_password}@127.0.0.1:1/wh"
        env.setenv("CONNECTIONS_WAREHOUSE_URL", unreachable)
        run("sync into an unreachable warehouse", SYNC_JOB_NAME)
        run("link into an unreachable warehouse", LINK_JOB, run_config=_link_config("c-4"))
        run("reauth into an unreachable warehouse", REAUTH_JOB)
        # (An export retries an unreachable warehouse for minutes; an unusable URL fails once.)
        unparsable = f"postgresql+psycopg://finch_app:{warehouse_password}@127.0.0.1:port/wh"
        env.setenv("CONNECTIONS_WAREHOUSE_URL", unparsable)
        run("export from an unparsable warehouse URL", EXPORT_JOB_NAME, partition_key="live")
        run("sync into an unparsable warehouse URL", SYNC_JOB_NAME)

        # Tokens from an application database: unreachable, then a query whose database
        # error would quote the tokens, then a working one.
        env.setenv("CONNECTIONS_WAREHOUSE_URL", postgres_url)
        _create_token_table(postgres_url, app_schema, sandbox.tokens())
        env.setenv("CONNECTIONS_TOKENS_SOURCE", "sql")
        env.setenv(
            "CONNECTIONS_TOKENS_URL",
            f"postgresql+psycopg://reader:{token_db_password}@127.0.0.1:1/app",
        )
        env.setenv("CONNECTIONS_TOKENS_QUERY", f"select access_token from {app_schema}.tokens")
        run("sync from an unreachable token database", SYNC_JOB_NAME)
        env.setenv("CONNECTIONS_TOKENS_URL", postgres_url)
        env.setenv(
            "CONNECTIONS_TOKENS_QUERY",
            f"select access_token::int as access_token from {app_schema}.tokens",
        )
        run("sync from a token query that quotes tokens", SYNC_JOB_NAME)
        env.setenv("CONNECTIONS_TOKENS_QUERY", f"select * from {app_schema}.tokens")
        run("sync from a token database", SYNC_JOB_NAME)

        # Errors raised to a caller, and every resource and config object as text.
        scenario.corpus.extend(
            _raised_by_direct_calls(base_url, client_id, wrong_secret, warehouse_password, root)
        )
        env.setenv("CONNECTIONS_WAREHOUSE_URL", unreachable)
        scenario.corpus.extend(_resource_texts(base_url, client_id, client_secret))
        scenario.finch_requests = dict(sandbox.stats()["by_endpoint"])

        scenario.corpus.add("python logging", "\n".join(recorded.lines))
        scenario.log_lines = len(recorded.lines)
        texts, scenario.event_records = dagster_texts(instance)
        scenario.corpus.extend(texts)

    all_tokens = sandbox.tokens()
    scenario.tokens = len(all_tokens)
    scenario.revoked_tokens = sum(token["revoked"] for token in all_tokens)
    for number, token in enumerate(all_tokens):
        scenario.scanner.add(f"access token #{number}", token["access_token"])
    scenario.scanner.add_basic_auth("the client secret", client_id, client_secret)
    scenario.scanner.add_basic_auth("the wrong client secret", client_id, wrong_secret)
    scenario.scanner.add("the warehouse password", warehouse_password)
    scenario.scanner.add("the token database password", token_db_password)
    scenario.scanner.add("the warehouse password in a query parameter", query_password)
    scenario.scanner.add("the notification URLs' password", notify_password)

    with Warehouse(duckdb_url) as store:
        queued = store.read_table("finch_notifications")
    scenario.notifications = list(zip(queued["kind"], queued["last_error"], strict=True))
    scenario.corpus.extend(warehouse_texts(duckdb_url))
    scenario.corpus.extend(warehouse_texts(postgres_url, [pg_schema]))
    scenario.corpus.extend(file_texts(root, "warehouse", "*.duckdb*"))
    scenario.corpus.extend(file_texts(scenario.exports, "export"))
    scenario.corpus.extend(file_texts(scenario.instance_root, "instance"))
    scenario.leaks = scenario.corpus.leaks(scenario.scanner)
    yield scenario


@contextmanager
def _recorded_logs() -> Iterator[RecordingHandler]:
    """Every log record at DEBUG, kept like caplog does, and also written to stderr so that
    the steps' captured compute logs hold the pipeline's own log lines."""
    recording = RecordingHandler()
    to_stderr = logging.StreamHandler(sys.stderr)
    to_stderr.setLevel(logging.DEBUG)
    to_stderr.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in (*DEBUG_LOGGERS, *SQL_LOGGERS)}
    root.addHandler(recording)
    root.addHandler(to_stderr)
    for name in DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in SQL_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        yield recording
    finally:
        root.removeHandler(recording)
        root.removeHandler(to_stderr)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _link_config(customer_id: str) -> dict[str, Any]:
    config = {
        "customer_id": customer_id,
        "customer_name": "Leak Check Co",
        "products": ["company", "directory"],
        "redirect_uri": "https://app.example.com/cb",
    }
    return {"ops": {"create_connect_session": {"config": config}}}


def _disconnect(base_url: str, token: str) -> None:
    """Revoke a token's connection at the emulator, through its injected faults."""
    headers = {**VERSION, "Authorization": f"Bearer {token}"}
    for _ in range(30):
        try:
            response = httpx.post(f"{base_url}/disconnect", headers=headers, timeout=0.5)
        except httpx.HTTPError:
            continue
        if response.status_code in (200, 401):
            return
    raise AssertionError("the emulator never accepted /disconnect")


def _create_token_table(url: str, schema: str, tokens: list[dict[str, Any]]) -> None:
    """The application's own table of tokens, outside the warehouse schema. (Written with
    SQL logging off: this test's own INSERT is not the pipeline's to answer for.)"""
    sql_logger = logging.getLogger("sqlalchemy.engine")
    level = sql_logger.level
    sql_logger.setLevel(logging.WARNING)
    try:
        _insert_tokens(url, schema, tokens)
    finally:
        sql_logger.setLevel(level)


def _insert_tokens(url: str, schema: str, tokens: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'create schema "{schema}"'))
        connection.execute(
            sa.text(
                f'create table "{schema}".tokens '
                "(access_token text, connection_id text, revoked boolean, issued_at text)"
            )
        )
        connection.execute(
            sa.text(
                f'insert into "{schema}".tokens values '
                "(:access_token, :connection_id, :revoked, :issued_at)"
            ),
            tokens,
        )
    engine.dispose()


def _raised_by_failing_job(instance: dg.DagsterInstance) -> Iterator[tuple[str, str]]:
    """A failing run with raise_on_error=True: the exception its caller receives."""
    job = defs().resolve_job_def(LINK_JOB)
    try:
        job.execute_in_process(instance=instance, run_config=_link_config("cust-leak-raise"))
    except Exception as exc:
        yield from exception_texts("raised by execute_in_process", exc)
    else:
        raise AssertionError("the link job should have failed with a wrong client secret")


def _raised_by_direct_calls(
    base_url: str, client_id: str, wrong_secret: str, password: str, root: Path
) -> Iterator[tuple[str, str]]:
    """The errors the library raises to a caller (CLI, notebook) for the same failures."""
    wrong = FinchResource(
        base_url=base_url, client_id=client_id, client_secret=wrong_secret, time_scale=TIME_SCALE
    )
    request = ConnectLinkRequest(
        customer_id="cust-direct",
        customer_name="Direct Co",
        products=("company",),
        redirect_uri="https://app.example.com/cb",
    )
    calls: dict[str, Callable[[], object]] = {
        "create_connect_link with a wrong secret": lambda: create_connect_link(
            request, wrong, Warehouse(f"duckdb:///{root / 'direct.duckdb'}")
        ),
        "unreachable warehouse": lambda: Warehouse(
            f"postgresql+psycopg://app:{password}@127.0.0.1:1/wh"
        ).check_connection(),
        "unparsable warehouse URL": lambda: Warehouse(
            f"postgresql+psycopg://app:{password}@127.0.0.1:port/wh"
        ),
        "unreachable token database": lambda: read_token_query(
            f"postgresql+psycopg://app:{password}@127.0.0.1:1/app", "select 1"
        ),
        "Finch URL with credentials in it": lambda: FinchResource(
            base_url=f"ftp://{client_id}:{wrong_secret}@127.0.0.1/", client_secret=wrong_secret
        ).client_config(),
    }
    for label, call in calls.items():
        try:
            call()
        except Exception as exc:
            yield from exception_texts(label, exc)
        else:
            raise AssertionError(f"{label}: expected an error")


def _resource_texts(base_url: str, client_id: str, client_secret: str) -> Iterator[tuple[str, str]]:
    """repr/str/format of every resource, unresolved (as the code location holds them) and
    resolved (secrets filled in from the environment), and of their config objects."""
    definitions = defs()
    yield from representations("Definitions.resources", definitions.resources)
    for name, resource in definitions.resources.items():
        yield from representations(f"resource {name}", resource)
        resolved = resource.process_config_and_initialize()
        yield from representations(f"resolved resource {name}", resolved)
        if isinstance(resolved, FinchResource):
            yield from representations("FinchClientConfig", resolved.client_config())
            yield from representations("FinchClient", asyncio.run(_client_repr(resolved)))
            batch = TokenSourceResource(kind="sandbox").load(resolved)
            yield from representations("token batch", batch)
            yield from representations("source token", batch.tokens[0])
        if isinstance(resolved, WarehouseResource):
            warehouse = resolved.open()
            yield from representations("Warehouse", warehouse)
            warehouse.dispose()
        if isinstance(resolved, ExportDestinationResource):
            yield from representations("Destination", resolved.open())
    literal = {
        "finch": FinchResource(base_url=base_url, client_id=client_id, client_secret=client_secret),
        "token_source": TokenSourceResource(
            tokens_url=f"postgresql+psycopg://app:{client_secret}@db/app",
            tokens_query="select access_token from tokens",
        ),
        "export_destination": ExportDestinationResource(
            url=f"s3://{client_id}:{client_secret}@bucket/prefix",
            storage_options=f'{{"secret": "{client_secret}"}}',
        ),
        "warehouse": WarehouseResource(
            url=f"postgresql+psycopg://app:{client_secret}@127.0.0.1:1/wh"
        ),
    }
    for name, resource in literal.items():
        yield from representations(f"literal resource {name}", resource)
        yield from representations(
            f"literal resolved {name}", resource.process_config_and_initialize()
        )


async def _client_repr(finch: FinchResource) -> str:
    async with finch.open_client() as client:
        return repr(client)


# ---------------------------------------------------------------------------------------
# The scan looked at something, and would have found a secret.


@slow
def test_the_scenario_ran_what_it_claims(scenario: Scenario) -> None:
    assert scenario.tokens >= CONNECTIONS and scenario.revoked_tokens > 0
    assert scenario.scanner.count >= scenario.tokens + 7
    results = scenario.results
    for label in ("sync", "sync after revocations", "sync into postgres", "export every state"):
        assert results[label].success, label
    assert [label for label in MUST_FAIL if results[label].success] == []
    assert {"introspect", "jobs", "connect_sessions", "reauthenticate", "disconnect"} <= set(
        scenario.finch_requests
    )
    assert scenario.event_records > 500
    assert scenario.log_lines > 100
    # The notification URLs were used, and every delivery failed with its reason kept (the
    # failed syncs' alerts went straight to the URL: their warehouse was what failed).
    kinds = {kind for kind, _ in scenario.notifications}
    assert {"digest", "export"} <= kinds
    assert all(error for _, error in scenario.notifications)


@slow
def test_the_scan_covered_every_kind_of_place(scenario: Scenario) -> None:
    corpus = scenario.corpus
    tables = {source.split()[1] for source, _ in corpus.sources("warehouse ")}
    assert {"finch.finch_raw_responses", "finch.finch_quarantine", "finch.finch_tokens"} <= tables
    assert {
        "finch.finch_sync_runs",
        "finch.finch_reauth_queue",
        "finch.finch_connect_sessions",
    } <= tables
    assert any(name.startswith("finch_leak_") for name in tables)
    csvs = [source for source, _ in corpus.sources("export file") if source.endswith(".csv")]
    assert len(csvs) >= 7  # a dated and a latest file per state, and the re-auth queue
    compute_logs = [
        text for source, text in corpus.sources("instance file") if "compute_logs" in source
    ]
    assert compute_logs and any("Finch introspect" in text for text in compute_logs)
    assert corpus.sources("instance sqlite")
    assert corpus.sources("dagster job snapshot")
    assert corpus.sources("raised by execute_in_process")
    assert corpus.sources("resolved resource finch")


def test_the_scanner_finds_planted_secrets(tmp_path: Path) -> None:
    token = f"{secrets.token_hex(4)}-1111-2222-3333-{secrets.token_hex(6)}"
    scanner = SecretScanner()
    scanner.add("planted token", token)
    scanner.add_basic_auth("planted secret", "client-id", "planted-secret-value")
    corpus = Corpus()
    # A warehouse cell, a CSV, a compressed SQLite blob, a log line, a repr.
    url = f"duckdb:///{tmp_path / 'planted.duckdb'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("create schema s; create table s.t (a int, b text)"))
        connection.execute(sa.text("insert into s.t values (1, :b)"), {"b": token.upper()})
    engine.dispose()
    corpus.extend(warehouse_texts(url))
    (tmp_path / "files").mkdir()
    # Hex just before the token must not hide it.
    (tmp_path / "files" / "x.csv").write_text(f"a,b\n1,abc{token.replace('-', '')}\n")
    _planted_sqlite(tmp_path / "files" / "runs.db", "planted-secret-value")
    corpus.extend(file_texts(tmp_path / "files", "planted"))
    basic = base64.b64encode(b"client-id:planted-secret-value").decode()
    corpus.add("log", f"Authorization: Basic {basic}")
    corpus.add("repr", repr({"secret": "planted-secret-value"}))
    leaks = corpus.leaks(scanner)
    assert {source.split()[0] for source, _ in leaks} == {"warehouse", "planted", "log", "repr"}
    assert ("planted sqlite runs.db table snapshots", "planted secret") in leaks
    assert ("log", "Basic credentials of planted secret") in leaks


def _planted_sqlite(path: Path, secret: str) -> None:
    connection = sqlite3.connect(path)
    connection.execute("create table snapshots (body blob)")
    connection.execute("insert into snapshots values (?)", (zlib.compress(secret.encode()),))
    connection.commit()
    connection.close()


# ---------------------------------------------------------------------------------------
# Nothing secret, place by place.


@slow
@pytest.mark.parametrize(
    "place",
    [
        "warehouse ",
        "export file",
        "dagster ",
        "instance ",
        "python logging",
        "raised by",
        "create_connect_link",
        "unreachable",
        "unparsable",
        "Finch URL",
    ],
)
def test_no_secret_in(scenario: Scenario, place: str) -> None:
    assert scenario.corpus.sources(place), f"nothing was collected for {place!r}"
    assert [leak for leak in scenario.leaks if leak[0].startswith(place)] == []


@slow
@pytest.mark.parametrize(
    "place",
    [
        "Definitions",
        "resource ",
        "resolved resource",
        "literal ",
        "Finch",
        "token batch",
        "source token",
        "Warehouse",
        "Destination",
    ],
)
def test_no_secret_in_representations(scenario: Scenario, place: str) -> None:
    assert scenario.corpus.sources(place), f"nothing was collected for {place!r}"
    assert [leak for leak in scenario.leaks if leak[0].startswith(place)] == []


@slow
def test_no_secret_anywhere_collected(scenario: Scenario) -> None:
    # The per-place tests above say where a leak is; this one covers any place added later.
    assert scenario.leaks == []


# ---------------------------------------------------------------------------------------
# Regressions: one focused test per leak or bug the scan found.

SECRET = "s3cr3t-value-never-shown"


def _text_forms(value: object) -> str:
    """Every way a resource becomes text: repr, str, f-string, and the `__repr_args__`
    that pydantic's str(), rich and devtools print."""
    args = list(value.__repr_args__()) if hasattr(value, "__repr_args__") else []
    return "\n".join([repr(value), str(value), f"{value}", repr(args)])


@pytest.mark.parametrize(
    "resource",
    [
        FinchResource(base_url="http://127.0.0.1:1", client_id="app", client_secret=SECRET),
        FinchResource(base_url=f"https://app:{SECRET}@api.example.com"),
        WarehouseResource(url=f"postgresql+psycopg://app:{SECRET}@db.internal:5432/wh"),
        WarehouseResource(url=f"postgresql+psycopg://app@db.internal:5432/wh?password={SECRET}"),
        # A password that repr() escapes differently from the URL text.
        WarehouseResource(url=f"postgresql+psycopg://app:{SECRET}\\'x@db.internal/wh"),
        TokenSourceResource(
            tokens_url=f"postgresql+psycopg://reader:{SECRET}@db.internal/app",
            tokens_query="select access_token from tokens",
        ),
        ExportDestinationResource(
            url=f"s3://key:{SECRET}@bucket/prefix", storage_options=f'{{"secret": "{SECRET}"}}'
        ),
    ],
    ids=[
        "finch",
        "finch-url",
        "warehouse",
        "warehouse-query",
        "warehouse-escaped",
        "tokens",
        "export",
    ],
)
def test_no_text_form_of_a_resource_shows_its_secret(resource: dg.ConfigurableResource) -> None:
    # Bug: str(), f-strings and pretty-printers went through pydantic's field listing,
    # not the redacting __repr__; the warehouse repr only hid a password repr() kept as is.
    for form in (resource, resource.process_config_and_initialize()):
        text = _text_forms(form)
        assert SECRET not in text and SECRET.replace("-", "") not in text
        assert type(resource).__name__ in text


def test_unresolved_resources_show_environment_variable_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FINCH_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"postgresql+psycopg://a:{SECRET}@h/db")
    resources = defs().resources
    text = "\n".join(_text_forms(resource) for resource in resources.values())
    assert SECRET not in text
    assert "EnvVar('FINCH_CLIENT_SECRET')" in text
    assert "EnvVar('CONNECTIONS_WAREHOUSE_URL')" in text


def test_warehouse_scrub_removes_the_password_wherever_the_url_holds_it() -> None:
    for url in (
        f"postgresql+psycopg://app:{SECRET}@h/db",
        f"postgresql+psycopg://app@h/db?password={SECRET}",
    ):
        resource = WarehouseResource(url=url)
        assert resource.scrub(f"failed: {url} ({SECRET})") == f"failed: {resource.scrub(url)} (***)"
        assert SECRET not in resource.scrub(url)


def test_token_sources_kind_can_be_set_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bug: `kind` was a Literal, which refuses the EnvVar that binds
    # CONNECTIONS_TOKENS_SOURCE, so setting the documented variable broke the code location.
    monkeypatch.setenv("CONNECTIONS_TOKENS_SOURCE", "sandbox")
    source = defs().resources["token_source"]
    assert isinstance(source.kind, dg.EnvVar)
    finch = FinchResource(base_url="http://127.0.0.1:1")
    assert source.process_config_and_initialize().resolved_kind(finch) == "sandbox"
    monkeypatch.setenv("CONNECTIONS_TOKENS_SOURCE", "ldap")
    resolved = defs().resources["token_source"].process_config_and_initialize()
    with pytest.raises(TokenSourceError, match="CONNECTIONS_TOKENS_SOURCE must be one of"):
        resolved.resolved_kind(finch)


def test_token_database_errors_hide_a_password_given_as_a_query_parameter() -> None:
    # Bug: the message rendered the URL with hide_password=True, which hides only the
    # user-info password; libpq also takes `?password=`.
    with pytest.raises(TokenSourceError) as raised:
        read_token_query(
            f"postgresql+psycopg://reader@127.0.0.1:1/app?password={SECRET}", "select 1"
        )
    assert "did not connect" in str(raised.value)
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)


def test_sync_failure_hides_a_warehouse_password_given_as_a_query_parameter(
    tmp_path: Path,
) -> None:
    # Bug: the asset passed WarehouseConnectionError's text, URL included, to dg.Failure.
    resources = {
        "finch": FinchResource(sandbox_seed=8_318, sandbox_connections=5),
        "token_source": TokenSourceResource(),
        "warehouse": WarehouseResource(
            url=f"postgresql+psycopg://app@127.0.0.1:1/wh?password={SECRET}"
        ),
        "sync_guard": SyncGuardResource(),
        "notifier": NotifierResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [sync_finch_connections], resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    message = str(failure.step_failure_data.error)
    assert "CONNECTIONS_WAREHOUSE_URL" in message and "unreachable" in message
    events = "\n".join(dg.serialize_value(record) for record in instance.all_logs(result.run_id))
    assert SECRET not in message and SECRET not in events


def test_connect_link_cli_hides_a_warehouse_password_given_as_a_query_parameter(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("FINCH_BASE_URL", "FINCH_CLIENT_ID", "FINCH_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONNECTIONS_SANDBOX_SEED", "8319")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "5")
    monkeypatch.setenv(
        "CONNECTIONS_WAREHOUSE_URL", f"postgresql+psycopg://app@127.0.0.1:1/wh?password={SECRET}"
    )
    args = ["connect-link", "--customer-id", "c-1", "--customer-name", "C", "--products"]
    assert cli_main([*args, "company", "--redirect-uri", "https://app.example.com/cb"]) == 2
    err = capsys.readouterr().err
    assert "unreachable" in err and SECRET not in err


def test_warehouse_errors_hide_a_password_given_as_a_query_parameter() -> None:
    warehouse = Warehouse(f"postgresql+psycopg://app@127.0.0.1:1/wh?password={SECRET}")
    with pytest.raises(WarehouseConnectionError) as raised:
        warehouse.check_connection()
    warehouse.dispose()
    assert SECRET not in repr(warehouse)
    assert SECRET not in str(raised.value)
