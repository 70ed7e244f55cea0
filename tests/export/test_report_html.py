"""The HTML report's file: escaping, its own script only, names and the `_latest` rule."""

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from connections_pipeline.export import Destination
from connections_pipeline.export.report import Snapshot, export_report, relative_time

AS_OF = datetime(2026, 11, 30, tzinfo=UTC)


def _snapshot(as_of: datetime = AS_OF) -> Snapshot:
    return Snapshot(as_of=as_of, run_id="run-1", status="partial", status_reason="2 stale rows")


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=20), "just now"),
        (timedelta(minutes=1), "1 minute ago"),
        (timedelta(hours=2, minutes=59), "2 hours ago"),
        (timedelta(days=3), "3 days ago"),
        (timedelta(days=95), "3 months ago"),
        (timedelta(days=800), "2 years ago"),
        (-timedelta(hours=5), "in 5 hours"),
    ],
)
def test_relative_time_counts_back_from_the_snapshot(delta: timedelta, text: str) -> None:
    assert relative_time(AS_OF - delta, AS_OF) == text


def test_the_file_escapes_the_data_and_lets_only_its_own_script_run(
    synced_current: pl.DataFrame, tmp_path: Path
) -> None:
    written = export_report(synced_current, _snapshot(), Destination(str(tmp_path)), AS_OF)
    html = Path(written.path).read_text(encoding="utf-8")
    planted = [name for name in synced_current["company_name"].drop_nulls() if "<" in name]
    assert planted, "the emulator plants markup in company names"
    for name in planted:
        assert name not in html
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    assert len(scripts) == 1 and "<script" not in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html
    assert "default-src 'none'" in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "nothing is fetched"
    assert "2 stale rows" in html and "run-1" in html
    assert written.rows["live"] == synced_current.filter(pl.col("state") == "live").height


def test_latest_follows_the_exports_order_not_the_snapshots_dates(
    synced_current, tmp_path: Path
) -> None:
    # A snapshot once dated in the future (a wrong clock) must not freeze `_latest`: the
    # next loaded snapshot's report replaces it, though its date is earlier.
    destination = Destination(str(tmp_path))
    future = export_report(
        synced_current, _snapshot(datetime(2999, 12, 31, tzinfo=UTC)), destination, AS_OF
    )
    loaded_next = export_report(synced_current, _snapshot(), destination, AS_OF)
    assert Path(future.path).name == "connections_report_2999-12-31.html"
    assert Path(loaded_next.path).name == "connections_report_2026-11-30.html"
    latest = tmp_path / "connections_report_latest.html"
    assert loaded_next.latest_path == str(latest)
    assert latest.read_bytes() == Path(loaded_next.path).read_bytes()


def test_latest_is_left_to_a_later_loaded_snapshot(synced_current, tmp_path: Path) -> None:
    destination = Destination(str(tmp_path))
    newest = export_report(synced_current, _snapshot(), destination, AS_OF)
    overtaken = export_report(
        synced_current, _snapshot(AS_OF + timedelta(days=1)), destination, AS_OF, lambda: False
    )
    assert overtaken.latest_path is None
    latest = tmp_path / "connections_report_latest.html"
    assert latest.read_bytes() == Path(newest.path).read_bytes()


def test_a_later_sync_that_loaded_nothing_is_named_at_the_top(tmp_path: Path) -> None:
    import dagster as dg
    from export_helpers import resources, sync_into

    from connections_pipeline.assets.report import finch_connections_report
    from connections_pipeline.warehouse import Warehouse

    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with Warehouse(url) as warehouse:
        sync_into(warehouse, seed=5, connections=20)
        loaded = warehouse.latest_loaded_run()
        later = loaded["finished_at"] + timedelta(days=1)
        warehouse.record_unloaded_run(
            "held-run",
            loaded["as_of"] + timedelta(days=1),
            {"status": "held", "status_reason": "9 of 10 live would leave", "finished_at": later},
        )
    result = dg.materialize(
        [finch_connections_report], resources=resources(url, str(tmp_path / "out"))
    )
    assert result.success
    html = (tmp_path / "out" / "connections_report_latest.html").read_text(encoding="utf-8")
    [notice] = re.findall(r'<p class="reason" id="not-loaded">(.*?)</p>', html)
    assert "held-run" in notice and "held" in notice and "9 of 10 live would leave" in notice
    assert loaded["run_id"] in html  # the page still shows the loaded snapshot
