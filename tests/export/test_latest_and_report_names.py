"""`*_latest` is the newest loaded snapshot's export whatever the files' dates; the report
shows names as stored (HTML-escaped only) while the CSV keeps its formula guard."""

import csv
import secrets
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa
from export_helpers import STATES, materialize_states, resources, sync_into
from markupsafe import escape

from connections_pipeline.assets.exports import newest_loaded_check
from connections_pipeline.assets.report import finch_connections_report
from connections_pipeline.export import Destination, ExportOptions, export_state
from connections_pipeline.export.report import Snapshot, export_report
from connections_pipeline.resources import WarehouseResource
from connections_pipeline.warehouse import URL_SETTING, Warehouse, WarehouseConnectionError

pytestmark = pytest.mark.slow
# What spreadsheets run as a formula, written out here rather than read from the code.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
STALE = b"the export of a snapshot dated by a clock 973 years ahead"


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_files_dated_in_the_future_do_not_freeze_latest(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    if kind == "duckdb":
        url, schema = f"duckdb:///{tmp_path / 'warehouse.duckdb'}", "finch"
    else:
        url, schema = postgres_url, f"finch_{secrets.token_hex(4)}"
    with Warehouse(url, schema=schema) as warehouse:
        sync_into(warehouse, seed=5, connections=20)
        day = warehouse.latest_loaded_run()["as_of"].date().isoformat()
    out = tmp_path / "out"
    out.mkdir()
    # What a run dated 2999-12-31 left behind before the clock was checked.
    for name in [
        *(
            f"connections_{state}_{suffix}.csv"
            for state in STATES
            for suffix in ("2999-12-31", "latest")
        ),
        "connections_report_2999-12-31.html",
        "connections_report_latest.html",
    ]:
        (out / name).write_bytes(STALE)

    settings = resources(url, str(out), schema=schema)
    assert materialize_states(settings).success
    assert dg.materialize([finch_connections_report], resources=settings).success

    for state in STATES:
        latest = (out / f"connections_{state}_latest.csv").read_bytes()
        assert latest == (out / f"connections_{state}_{day}.csv").read_bytes() != STALE
    report = (out / "connections_report_latest.html").read_bytes()
    assert report == (out / f"connections_report_{day}.html").read_bytes() != STALE
    # The future-dated files themselves are left as they are: not this pipeline's to delete.
    assert (out / "connections_report_2999-12-31.html").read_bytes() == STALE


def test_a_csv_export_overtaken_by_a_later_load_leaves_latest_to_it(
    synced_current: pl.DataFrame, tmp_path: Path
) -> None:
    destination = Destination(str(tmp_path))
    as_of = synced_current["last_seen_at"].max()
    (tmp_path / "connections_live_latest.csv").write_bytes(STALE)
    written = export_state(
        synced_current, "live", ExportOptions(), destination, as_of, still_newest=lambda: False
    )
    assert written.latest_path is None and Path(written.path).exists()
    assert (tmp_path / "connections_live_latest.csv").read_bytes() == STALE


def test_the_report_shows_names_as_stored_and_the_csv_keeps_its_guard(
    synced_current: pl.DataFrame, tmp_path: Path
) -> None:
    live = synced_current.filter(pl.col("state") == "live")
    formulas = [
        name
        for name in live["company_name"].drop_nulls().unique()
        if name.startswith(FORMULA_STARTS)
    ]
    assert any(name.startswith("-2 Degrees") for name in formulas), "the dataset plants them"
    as_of = live["last_seen_at"].max()
    snapshot = Snapshot(as_of=as_of, run_id="run-1", status="success")
    report = export_report(synced_current, snapshot, Destination(str(tmp_path)), as_of)
    html = Path(report.path).read_bytes().decode("utf-8")  # \r kept as written
    written = export_state(
        synced_current, "live", ExportOptions(), Destination(str(tmp_path)), as_of
    )
    with open(written.path, newline="", encoding="utf-8") as handle:
        csv_names = {row[0] for row in csv.reader(handle)}

    for name in formulas:
        assert f">{escape(name)}</td>" in html
        assert f">{escape(chr(39) + name)}</td>" not in html
        assert "'" + name in csv_names and name not in csv_names


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_warehouse_whose_runs_cannot_be_read_is_a_connection_error_without_the_password(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    password = f"pw-{secrets.token_hex(8)}"
    if kind == "duckdb":
        url, schema = f"duckdb:///{tmp_path / 'warehouse.duckdb'}", "finch"
    else:
        # Trust authentication ignores the password; it is there to be kept out of messages.
        url = sa.make_url(postgres_url).set(password=password).render_as_string(False)
        schema = f"finch_{secrets.token_hex(4)}"
    # Never migrated: finch_sync_runs is missing, which the driver reports as a DBAPI error.
    with (
        Warehouse(url, schema=schema) as warehouse,
        pytest.raises(WarehouseConnectionError, match=URL_SETTING) as caught,
    ):
        warehouse.latest_loaded_run()
    assert password not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    # The `_latest` check, in the Dagster layer, catches only that: the newest snapshot
    # known is this one.
    assert newest_loaded_check(WarehouseResource(url=url, schema_name=schema), "run-1")()
