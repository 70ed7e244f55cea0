"""The snapshot's clock: a `Date` header far from this machine's clock is not trusted.

The rule itself on plain dates, then whole runs against the emulator in-process, behind a
proxy that rewrites the `Date` header of chosen answers (as a misconfigured proxy or
server would), into DuckDB and PostgreSQL: one wild header among sane ones is ignored and
named, a Finch whose clock is mostly off holds the run, an unreadable header falls back to
this machine's clock and says so, and an emulator's simulated clock is still trusted.
"""

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from guard_helpers import data_checksums, run_row
from markupsafe import escape
from sync.sync_helpers import make_warehouse, served_sandbox

from connections_pipeline.assets.report import finch_connections_report
from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.export import Destination, ExportOptions, export_state
from connections_pipeline.finch import FinchClient, FinchClientConfig
from connections_pipeline.resources import (
    ExportDestinationResource,
    FinchResource,
    NotifierResource,
    WarehouseResource,
)
from connections_pipeline.run_summary import print_summary
from connections_pipeline.sources.records import SourceBatch, tokens_from_records
from connections_pipeline.sync.run import SyncHeld, SyncSettings, run_sync
from connections_pipeline.transform.finch_clock import ClockRule, HeaderDates, read_clock
from finch_sandbox import FinchSandbox, SandboxConfig
from finch_sandbox.app import create_app
from finch_sandbox.transport import LOOPBACK_CLIENT, SandboxTransport

NOW = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)
MACHINE = (NOW, NOW + timedelta(minutes=2))
YEAR_2999 = datetime(2999, 12, 31, tzinfo=UTC)
TIME_SCALE = 0.01
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


# --- the rule --------------------------------------------------------------------------------


def test_one_wild_header_among_sane_ones_is_ignored_and_named() -> None:
    sane = tuple(NOW + timedelta(seconds=s) for s in range(11))
    reading = read_clock(HeaderDates((*sane, YEAR_2999)), MACHINE, ClockRule())
    assert reading.held is None
    assert reading.as_of == max(sane)
    assert reading.clock.startswith("Finch's clock; ignored 1 of 12 Date headers")
    assert "2999-12-31 00:00:00 UTC" in reading.clock


def test_a_finch_clock_mostly_off_holds_the_run_with_how_far() -> None:
    wild = (YEAR_2999,) * 7
    reading = read_clock(HeaderDates((*wild, NOW, NOW)), MACHINE, ClockRule())
    assert reading.held is not None
    assert reading.held.startswith("Finch's clock is ")
    assert "days ahead of this machine's" in reading.held
    assert reading.as_of == MACHINE[1]  # nothing is dated by the wild clock

    behind = read_clock(HeaderDates((NOW - timedelta(hours=30),)), MACHINE, ClockRule())
    assert behind.held is not None and "30 h behind this machine's" in behind.held


def test_within_the_tolerance_either_way_is_trusted() -> None:
    ahead = NOW + timedelta(hours=23)
    reading = read_clock(HeaderDates((NOW - timedelta(hours=23), ahead)), MACHINE, ClockRule())
    assert reading.held is None and reading.as_of == ahead and reading.clock == "Finch's clock"


def test_missing_and_garbage_headers_are_counted_and_the_machine_clock_named() -> None:
    none_usable = read_clock(HeaderDates((), missing=2, unreadable=3), MACHINE, ClockRule())
    assert none_usable.as_of == MACHINE[1]
    assert none_usable.clock == (
        "this machine's clock: no answer carried a readable Date header "
        "(2 without a Date header, 3 with an unreadable one)"
    )
    some = read_clock(HeaderDates((NOW,), unreadable=1), MACHINE, ClockRule())
    assert some.as_of == NOW
    assert some.clock == "Finch's clock; of 2 answers, 1 with an unreadable one"
    unanswered = read_clock(HeaderDates(), MACHINE, ClockRule())
    assert unanswered.clock == "this machine's clock: no call got an answer from Finch"


def test_a_simulated_clock_far_from_the_machine_is_trusted_but_not_a_wild_answer() -> None:
    simulated = ClockRule(simulated_clock="the served Finch sandbox's simulated clock")
    year_later = NOW + timedelta(days=365)
    reading = read_clock(HeaderDates((year_later,) * 5 + (YEAR_2999,)), MACHINE, simulated)
    assert reading.held is None
    assert reading.as_of == year_later
    assert reading.clock.startswith(
        "the served Finch sandbox's simulated clock; ignored 1 of 6 Date headers more than "
        "24 h from the other answers"
    )


# --- whole runs --------------------------------------------------------------------------------


@dataclass
class WrongClockProxy:
    """An ASGI layer in front of the emulator that rewrites the `Date` header of the
    answers `date_for(path, authorization)` names ("" drops the header)."""

    app: Callable[[Scope, Any, Any], Awaitable[None]]
    date_for: Callable[[str, str], str | None]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        replacement = self.date_for(scope["path"], authorization)

        async def rewritten(message: Message) -> None:
            if message["type"] == "http.response.start" and replacement is not None:
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"date"]
                if replacement:
                    headers.append((b"date", replacement.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, rewritten)


@dataclass
class ProxiedFinch:
    """Finch settings whose clients reach the emulator through `WrongClockProxy`."""

    sandbox: FinchSandbox
    date_for: Callable[[str, str], str | None]

    def client_config(self) -> FinchClientConfig:
        client_id, client_secret = self.sandbox.credentials
        return FinchClientConfig(
            base_url="http://finch.proxy.test",
            client_id=client_id,
            client_secret=client_secret,
            time_scale=TIME_SCALE,
        )

    def open_client(self) -> FinchClient:
        proxy = WrongClockProxy(create_app(self.sandbox), self.date_for)
        transport = SandboxTransport(proxy, client=LOOPBACK_CLIENT)
        return FinchClient(self.client_config(), transport=transport)


def _sandbox(seed: int) -> tuple[FinchSandbox, SourceBatch]:
    # The emulator's clock set to this machine's: Finch's clock as it should be.
    config = SandboxConfig(
        seed=seed, connections=12, time_scale=TIME_SCALE, start_time=datetime.now(UTC)
    )
    sandbox = FinchSandbox(config)
    batch = tokens_from_records(sandbox.tokens(), "sandbox tokens")
    return sandbox, batch.with_sessions(sandbox.sessions())


def _http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_one_answer_dated_2999_among_good_ones_does_not_date_the_snapshot(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    sandbox, batch = _sandbox(seed=61)
    wild = f"Bearer {batch.tokens[3].access_token}"

    def date_for(path: str, authorization: str) -> str | None:
        return _http_date(YEAR_2999) if authorization == wild else None

    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    result = run_sync("clock-1", ProxiedFinch(sandbox, date_for), batch, warehouse)

    assert result.status == "success"
    assert result.as_of == sandbox.now
    row = run_row(warehouse, "clock-1")
    assert row["as_of"] == sandbox.now
    assert row["as_of_clock"].startswith("Finch's clock; ignored 1 of ")
    assert "2999-12-31 00:00:00 UTC" in row["as_of_clock"]
    # No time of the run is from the wild header, the raw answer's included.
    raw = warehouse.read_raw_responses("clock-1")
    assert raw["fetched_at"].max() <= datetime.now(UTC)
    current = warehouse.read_current()
    assert current["last_seen_at"].max() == sandbox.now
    written = export_state(
        current, "live", ExportOptions(), Destination(str(tmp_path)), row["as_of"]
    )
    assert Path(written.path).name == f"connections_live_{sandbox.now.date().isoformat()}.csv"
    warehouse.dispose()


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_finch_clock_years_off_holds_the_run_even_when_accepted(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    sandbox, batch = _sandbox(seed=62)
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    run_sync("clock-1", ProxiedFinch(sandbox, lambda path, auth: None), batch, warehouse)
    before = data_checksums(warehouse)

    off = ProxiedFinch(sandbox, lambda path, auth: _http_date(YEAR_2999))
    for run_id, settings in [
        ("clock-2", SyncSettings()),
        ("clock-3", SyncSettings(accept_mass_change=True)),
    ]:
        with pytest.raises(
            SyncHeld, match=r"Finch's clock is [0-9,]+ days ahead of this machine's"
        ):
            run_sync(run_id, off, batch, warehouse, settings)
        assert data_checksums(warehouse) == before
        row = run_row(warehouse, run_id)
        assert row["status"] == "held"
        assert row["accepted_mass_change"] is False
        assert row["as_of"] < YEAR_2999  # recorded on this machine's clock
        assert row["as_of_clock"].startswith("this machine's clock: Finch's clock is ")
    assert warehouse.latest_loaded_run()["run_id"] == "clock-1"
    warehouse.dispose()


@pytest.mark.parametrize("header", ["", "yesterday-ish"])
def test_a_missing_or_garbage_date_falls_back_to_this_machines_clock_and_says_so(
    header: str, tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox, batch = _sandbox(seed=63)
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    started = datetime.now(UTC)
    result = run_sync("clock-1", ProxiedFinch(sandbox, lambda path, auth: header), batch, warehouse)
    assert started <= result.as_of <= datetime.now(UTC)
    clock = run_row(warehouse, "clock-1")["as_of_clock"]
    what = "without a Date header" if not header else "with an unreadable one"
    assert clock.startswith("this machine's clock: no answer carried a readable Date header (")
    assert what in clock
    warehouse.dispose()

    # What people read says so too: the CLI's summary and the report.
    settings = {
        "warehouse": WarehouseResource(url=str(warehouse.url), schema_name=warehouse.schema),
        "finch": FinchResource(base_url="http://finch.proxy.test"),
        "export_destination": ExportDestinationResource(url=str(tmp_path / "out")),
        "notifier": NotifierResource(),
    }
    print_summary(settings, "clock-1")
    [status_line] = [line for line in capsys.readouterr().out.splitlines() if "clock-1" in line]
    assert status_line.endswith(f", by {clock}")
    assert "Finch's clock" not in status_line
    report = dg.materialize(
        [finch_connections_report],
        resources={
            name: settings[name] for name in ("warehouse", "export_destination", "notifier")
        },
    )
    assert report.success
    html = (tmp_path / "out" / "connections_report_latest.html").read_text(encoding="utf-8")
    [snapshot_line] = re.findall(r'<p class="snapshot" id="snapshot">.*?</p>', html, re.S)
    assert f"({escape(clock)})" in snapshot_line
    assert escape("Finch's clock") not in snapshot_line


def test_a_served_emulator_a_month_ahead_is_its_simulated_clock_not_a_hold(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("postgres", tmp_path, postgres_url)
    with served_sandbox(seed=64, connections=20) as (sandbox, finch, source):
        sync_with_resources("sim-1", finch, source, warehouse)
        sandbox.advance(30)
        result = sync_with_resources(
            "sim-2", finch, source, warehouse, SyncSettings(accept_mass_change=True)
        )
        assert result.status in ("success", "partial")
        assert result.as_of == sandbox.now
        assert sandbox.now - datetime.now(UTC) > timedelta(days=25)
    row = run_row(warehouse, "sim-2")
    assert row["as_of_clock"] == "the served Finch sandbox's simulated clock"
    assert warehouse.read_current().filter(pl.col("run_id") == "sim-2").height > 0
    warehouse.dispose()
