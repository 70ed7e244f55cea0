"""Connection Status as the Dashboard labels it, and run counts that say what they count."""

import csv
from pathlib import Path

import polars as pl
import pytest
from export.export_helpers import materialize_states, resources
from sync.sync_helpers import DASHBOARD_LABELS, make_warehouse, served_sandbox

from connections_pipeline import concepts
from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.transform import dashboard_rules as rules


@pytest.mark.parametrize(("code", "label"), sorted(DASHBOARD_LABELS.items()))
def test_every_status_code_has_the_dashboards_label(code: str, label: str) -> None:
    frame = pl.DataFrame({"status": [code]})
    assert frame.select(rules.status_label(pl.col("status")))["status"].to_list() == [label]


def test_every_status_finch_sends_is_labelled_and_an_unknown_one_keeps_its_text() -> None:
    assert set(concepts.CONNECTION_STATUSES) | {concepts.DISCONNECTED_STATUS} == set(
        DASHBOARD_LABELS
    )
    frame = pl.DataFrame({"status": ["suspended", None]}, schema={"status": pl.String})
    labels = frame.select(rules.status_label(pl.col("status")))["status"].to_list()
    assert labels == ["suspended", None]


@pytest.mark.slow
def test_csv_shows_labels_the_raw_code_stays_available_and_counts_say_what_they_count(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=1305, connections=120) as (sandbox, finch, source):
        result = sync_with_resources("run-1", finch, source, warehouse)
        truth = sandbox.truth()
    live = [row for row in truth if row["state"] == "live"]
    assert result.sync_run["needs_reauth"] == sum(r["connection_status"] == "reauth" for r in live)
    assert result.sync_run["needs_action"] == sum(r["needs_action"] for r in live) > 0
    assert result.sync_run["needs_reauth"] > 0

    exports = tmp_path / "exports"
    url = warehouse.url.render_as_string(hide_password=False)
    warehouse.dispose()
    done = materialize_states(
        resources(url, str(exports)),
        config={"extra_columns": ["connection_status"]},
    )
    assert done.success
    by_id = {row["connection_id"]: row for row in truth}
    seen_labels = set()
    for state in ("live", "disconnected"):
        with (exports / f"connections_{state}_latest.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                code = row["connection_status"]
                assert row["Connection Status"] == DASHBOARD_LABELS[code]
                assert code == by_id[row["Connection ID"]]["connection_status"]
                seen_labels.add(row["Connection Status"])
    assert {"Connected", "Re-auth", "Disconnected"} <= seen_labels
