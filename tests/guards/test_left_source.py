"""Connections whose tokens all left the token source (the customer offboarded): shown as no
longer tracked in the warehouse, the CSV, the report and the BI view, counted in the run, and
held when many leave at once. Driven end to end: the emulator over HTTP, a token file, real
DuckDB and PostgreSQL."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from export.export_helpers import materialize_states, read_with_csv, resources
from guard_helpers import data_checksums, run_row, write_token_file
from sql_models.sql_model_helpers import materialize_models, read_relation
from sync.sync_helpers import make_warehouse, served_sandbox

from connections_pipeline.assets.metadata import sync_metadata
from connections_pipeline.assets.report import finch_connections_report
from connections_pipeline.assets.sync import SYNC_ASSETS, sync_with_resources
from connections_pipeline.concepts import NO_SOURCE_TOKEN
from connections_pipeline.export.columns import latest_file_name, latest_report_name
from connections_pipeline.resources import FinchResource, TokenSourceResource, WarehouseResource
from connections_pipeline.sync.run import SyncHeld, SyncResult, SyncSettings
from connections_pipeline.transform.guards import HoldThresholds, TrustFigures, judge
from connections_pipeline.transform.polling import RunBudget
from connections_pipeline.warehouse import Warehouse
from finch_sandbox import FinchSandbox
from finch_sandbox.validation import ReauthRequest

ISO = "%Y-%m-%dT%H:%M:%SZ"
SEED, CONNECTIONS = 63, 30


def test_many_live_connections_leaving_the_source_hold_the_run() -> None:
    thresholds = HoldThresholds(max_live_drop_share=0.2, min_count=3)
    held = judge(TrustFigures(previous_live=10, leaving_source=3, tokens=7), thresholds)
    assert held.held
    assert "3 of 10 live connections (30%)" in held.summary
    assert "no token of theirs" in held.summary
    assert "CONNECTIONS_HOLD_LIVE_DROP_SHARE" in held.summary
    # Below the count, or within the share, the run loads.
    assert not judge(TrustFigures(previous_live=4, leaving_source=2, tokens=2), thresholds).held
    assert not judge(TrustFigures(previous_live=20, leaving_source=4, tokens=16), thresholds).held


@contextmanager
def _fleet() -> Iterator[tuple[FinchSandbox, FinchResource, list[dict], list[str]]]:
    """The emulator, its tokens, and its live connection ids (sorted)."""
    with served_sandbox(seed=SEED, connections=CONNECTIONS) as (sandbox, finch, _):
        live = sorted(row["connection_id"] for row in sandbox.truth() if row["state"] == "live")
        yield sandbox, finch, sandbox.tokens(), live


def _source(tmp_path: Path, name: str, tokens: list[dict], *fields: str) -> TokenSourceResource:
    return TokenSourceResource(tokens_file=str(write_token_file(tmp_path / name, tokens, *fields)))


def _without(tokens: list[dict], connection_ids: set[str]) -> list[dict]:
    return [token for token in tokens if token["connection_id"] not in connection_ids]


def _row(warehouse: Warehouse, connection_id: str) -> dict[str, Any]:
    current = warehouse.read_current().filter(pl.col("connection_id") == connection_id)
    assert current.height == 1
    return current.row(0, named=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_an_offboarded_connection_is_shown_no_longer_tracked_everywhere(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with _fleet() as (_, finch, tokens, live):
        full = _source(tmp_path, "all.jsonl", tokens, "connection_id", "issued_at")
        sync_with_resources("run-1", finch, full, warehouse)
        gone = live[0]
        before = _row(warehouse, gone)
        # Without connection_id: the pipeline ties the remaining tokens to their connections
        # from what run-1 learnt (finch_tokens).
        rest = _source(tmp_path, "rest.jsonl", _without(tokens, {gone}))
        result = sync_with_resources("run-2", finch, rest, warehouse)
        third = sync_with_resources("run-3", finch, rest, warehouse)

    assert result.status == "success"
    row = _row(warehouse, gone)
    assert row["state"] == "live"
    assert row["connection_status"] == before["connection_status"]
    assert row["stale"] is True and row["last_error"] == NO_SOURCE_TOKEN
    # The first run that found it gone, kept by the runs after it.
    assert row["left_source_at"] == result.as_of
    others = warehouse.read_current().filter(
        (pl.col("state") == "live") & (pl.col("connection_id") != gone)
    )
    assert others.height == len(live) - 1
    assert others["left_source_at"].null_count() == others.height
    assert not others["stale"].any()
    assert run_row(warehouse, "run-2")["leaving_source"] == 1
    assert result.sync_run["leaving_source"] == 1
    assert third.sync_run["leaving_source"] == 0 and third.status == "success"
    shown_in_dagster = sync_metadata(third, dict.fromkeys(SYNC_ASSETS, 0), "finch")
    assert shown_in_dagster["finch_connections"]["rows_not_in_token_source"] == 1
    assert shown_in_dagster["finch_connections"]["leaving_source"] == 0

    exported = _exports(warehouse, tmp_path / "out")
    shown = result.as_of.strftime(ISO)
    assert exported["csv"][gone] == shown
    assert {value for key, value in exported["csv"].items() if key != gone} == {""}
    assert exported["report"][gone] == shown
    assert {value for key, value in exported["report"].items() if key != gone} == {""}
    assert exported["view"][gone] == result.as_of
    assert exported["view_stale"] == {gone}
    assert exported["freshness"][gone] == result.as_of
    assert {value for key, value in exported["freshness"].items() if key != gone} == {None}
    warehouse.dispose()


def _exports(warehouse: Warehouse, folder: Path) -> dict[str, Any]:
    """What the live CSV, the report and the BI `connections` view show of left_source_at,
    by connection id."""
    url = warehouse.url.render_as_string(hide_password=False)
    wired = resources(url, str(folder), schema=warehouse.schema)
    assert materialize_states(wired, partition="live").success
    assert dg.materialize([finch_connections_report], resources=wired).success
    header, *rows = read_with_csv(folder / latest_file_name("live"))
    column = header.index("Left Token Source")
    csv = {row[header.index("Connection ID")]: row[column] for row in rows}
    html = (folder / latest_report_name()).read_text(encoding="utf-8")
    report = {}
    for key, body in re.findall(r'<tr data-key="([^"]+)"[^>]*>(.*?)</tr>', html, re.DOTALL):
        last_cell = re.findall(r"<td[^>]*>(.*?)</td>", body, re.DOTALL)[-1]
        moment = re.search(r'<time datetime="([^"]+)"', last_cell)
        report[key] = moment.group(1) if moment else last_cell.strip()
    report = {key: value for key, value in report.items() if key in csv}
    bi = WarehouseResource(url=url, schema_name=warehouse.schema)
    built = materialize_models(bi)
    assert built.success
    assert [
        check.check_name for check in built.get_asset_check_evaluations() if not check.passed
    ] == []
    view = read_relation(bi, "connections")
    freshness = read_relation(bi, "sync_freshness")
    return {
        "freshness": {row["connection_id"]: row["left_source_at"] for row in freshness},
        "csv": csv,
        "report": report,
        "view": {row["Connection ID"]: row["Left Token Source"] for row in view},
        "view_stale": {row["Connection ID"] for row in view if row["stale"]},
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_many_connections_leaving_the_source_at_once_hold_until_accepted(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with _fleet() as (_, finch, tokens, live):
        full = _source(tmp_path, "all.jsonl", tokens, "connection_id", "issued_at")
        sync_with_resources("run-1", finch, full, warehouse)
        before = data_checksums(warehouse)
        gone = set(live[: len(live) // 2])
        half = _source(tmp_path, "half.jsonl", _without(tokens, gone), "connection_id")
        with pytest.raises(SyncHeld, match="no token of theirs") as held:
            sync_with_resources("run-2", finch, half, warehouse)
        assert f"{len(gone)} of {len(live)} live connections" in str(held.value)
        assert data_checksums(warehouse) == before
        assert run_row(warehouse, "run-2")["leaving_source"] == len(gone)

        accepted = sync_with_resources(
            "run-3", finch, half, warehouse, SyncSettings(accept_mass_change=True)
        )
    assert accepted.sync_run["accepted_mass_change"] is True
    marked = warehouse.read_current().filter(pl.col("left_source_at").is_not_null())
    assert set(marked["connection_id"]) == gone
    assert set(marked["state"]) == {"live"} and marked["stale"].all()
    warehouse.dispose()


def _run_row(result: SyncResult, connection_id: str) -> dict[str, Any]:
    """The run's own row for `connection_id`, as it loaded it."""
    rows = result.connections.filter(pl.col("connection_id") == connection_id)
    assert rows.height == 1
    return rows.row(0, named=True)


def _reauthenticate(sandbox: FinchSandbox, tokens: list[dict], connection_id: str) -> list[dict]:
    """The source after `connection_id` re-authenticated: its old tokens replaced by the new
    one, which no run has seen yet."""
    session = sandbox.reauthenticate(
        ReauthRequest(connection_id, products=None, redirect_uri=None, minutes_to_expire=30)
    )
    new = sandbox.complete_session(session["session_id"])["access_token"]
    old = {token["access_token"] for token in tokens if token["connection_id"] == connection_id}
    fresh = [token for token in sandbox.tokens() if token["access_token"] == new]
    return [token for token in tokens if token["access_token"] not in old] + fresh


@pytest.mark.slow
def test_unpolled_tokens_of_a_budgeted_or_targeted_run_have_not_left(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with _fleet() as (sandbox, finch, tokens, live):
        full = _source(tmp_path, "all.jsonl", tokens, "connection_id", "issued_at")
        sync_with_resources("run-1", finch, full, warehouse)
        # A source that does not name connections: the new token has no known owner until
        # a run polls it.
        reauthed = _reauthenticate(sandbox, tokens, live[0])
        source = _source(tmp_path, "reauthed.jsonl", reauthed)
        # One request for tokens: the new token's connection (never seen, so it also needs
        # its job listing) does not fit; a known connection's single token does.
        budgeted = sync_with_resources(
            "run-2", finch, source, warehouse, SyncSettings(budget=RunBudget(max_requests=2))
        )
        past_deadline = sync_with_resources(
            "run-3", finch, source, warehouse, SyncSettings(budget=RunBudget(deadline=timedelta()))
        )
        # The run the re-authenticated connection's own account.updated triggers.
        targeted = sync_with_resources(
            "run-4", finch, source, warehouse, SyncSettings(only_connection_ids=frozenset(live[:1]))
        )
        # A row the source cannot read (its issue time garbled) still lists the token.
        garbled = [
            {**token, "issued_at": "not a time"} if token["connection_id"] == live[1] else token
            for token in reauthed
        ]
        unreadable = sync_with_resources(
            "run-5", finch, _source(tmp_path, "garbled.jsonl", garbled, "issued_at"), warehouse
        )
    runs = (budgeted, past_deadline, targeted)
    for run in runs:
        assert run.sync_run["tokens_deferred"] > 0
        assert run.sync_run["leaving_source"] == 0
        reauthed_row = _run_row(run, live[0])
        assert reauthed_row["left_source_at"] is None
        assert reauthed_row["stale"] is False
        assert reauthed_row["last_error"] != NO_SOURCE_TOKEN
    assert unreadable.sync_run["source_rows_rejected"] > 0
    assert unreadable.sync_run["leaving_source"] == 0
    current = warehouse.read_current()
    assert current["left_source_at"].null_count() == current.height
    assert not current.filter(pl.col("state") == "live")["stale"].any()
    warehouse.dispose()
