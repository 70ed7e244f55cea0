"""Each state's CSV, read back with `csv` and with Polars, equals the warehouse's rows."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from export_helpers import (
    HEADER,
    STATES,
    expected_rows,
    materialize_states,
    partition_metadata,
    read_with_csv,
    read_with_polars,
    resources,
)

from connections_pipeline.warehouse import Warehouse
from finch_sandbox.names import HOSTILE_COMPANY_NAMES, HOSTILE_CUSTOMER_NAMES

pytestmark = pytest.mark.slow


def test_all_three_states_export_in_one_run_as_the_dashboard_shows_them(
    tmp_path: Path, synced_warehouse_url: str, synced_current: pl.DataFrame
) -> None:
    exports = tmp_path / "exports"
    instance = dg.DagsterInstance.ephemeral()
    with Warehouse(synced_warehouse_url) as warehouse:
        snapshot = warehouse.latest_loaded_run()
    result = materialize_states(resources(synced_warehouse_url, str(exports)), instance=instance)
    assert result.success

    # One run materialized every state partition.
    runs = instance.get_runs()
    assert len(runs) == 1
    metadata = partition_metadata(result)
    assert set(metadata) == set(STATES)

    for state in STATES:
        expected = [HEADER, *expected_rows(synced_current, state)]
        assert len(expected) > 1, f"the dataset should have {state} rows"
        # Named by the snapshot's date (Finch's clock at the sync), not the export's.
        dated = exports / f"connections_{state}_{snapshot['as_of'].date().isoformat()}.csv"
        latest = exports / f"connections_{state}_latest.csv"
        assert read_with_csv(dated) == expected
        assert read_with_polars(dated) == expected
        assert latest.read_bytes() == dated.read_bytes()

        data = dated.read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf")
        assert data.startswith(",".join(HEADER).encode() + b"\r\n")
        assert data.endswith(b"\r\n")
        data.decode("utf-8")

        partition = metadata[state]
        assert partition["dagster/row_count"] == len(expected) - 1
        assert partition["path"] == str(dated)
        assert partition["latest_path"] == str(latest)
        assert partition["snapshot_as_of"] == snapshot["as_of"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert (partition["sync_run_id"], partition["sync_status"]) == (
            snapshot["run_id"],
            "success",
        )
        preview = partition["preview"].splitlines()
        assert preview[0].startswith("| Company Name | Company ID | Connection ID |")
        assert len(preview) == 2 + min(5, len(expected) - 1)
    assert sorted(path.name for path in exports.iterdir() if path.name.startswith(".")) == []


def test_filters_sort_extra_columns_and_timestamp_format_are_applied(
    tmp_path: Path, synced_warehouse_url: str, synced_current: pl.DataFrame
) -> None:
    exports = tmp_path / "exports"
    types = ["Automated", "Automated, Assisted"]
    config = {
        "sort_by": "connection_id",
        "descending": True,
        "filters": [{"column": "connection_type", "one_of": types}],
        "extra_columns": ["session_id", "needs_action", "token_count", "first_seen_at"],
        "timestamp_format": "%d/%m/%Y %H:%M",
    }
    result = materialize_states(resources(synced_warehouse_url, str(exports)), config)
    assert result.success

    live = expected_rows(
        synced_current,
        "live",
        keep=lambda row: row["connection_type"] in types,
        sort_by="connection_id",
        descending=True,
        extra_columns=config["extra_columns"],
        timestamp_format=config["timestamp_format"],
    )
    all_live = synced_current.filter(pl.col("state") == "live").height
    assert 0 < len(live) < all_live
    header = [*HEADER, *config["extra_columns"]]
    assert read_with_csv(exports / "connections_live_latest.csv") == [header, *live]
    assert read_with_polars(exports / "connections_live_latest.csv") == [header, *live]
    # Staged sessions have no connection type: the filter leaves a header alone.
    assert read_with_csv(exports / "connections_staged_latest.csv") == [header]
    assert partition_metadata(result)["staged"]["dagster/row_count"] == 0


def test_needs_action_and_equality_filters_with_descending_company_sort(
    tmp_path: Path, synced_warehouse_url: str, synced_current: pl.DataFrame
) -> None:
    exports = tmp_path / "exports"
    config = {
        "needs_action": True,
        "filters": [{"column": "entity_count", "equals": "1"}],
        "descending": True,
    }
    result = materialize_states(resources(synced_warehouse_url, str(exports)), config, "live")
    assert result.success
    assert set(partition_metadata(result)) == {"live"}

    expected = expected_rows(
        synced_current,
        "live",
        keep=lambda row: row["needs_action"] is True and row["entity_count"] == 1,
        descending=True,
    )
    assert len(expected) > 0
    assert read_with_csv(exports / "connections_live_latest.csv") == [HEADER, *expected]
    assert read_with_polars(exports / "connections_live_latest.csv") == [HEADER, *expected]
    assert not (exports / "connections_staged_latest.csv").exists()


def test_hostile_names_come_out_inert_and_otherwise_intact(
    tmp_path: Path, synced_warehouse_url: str, synced_current: pl.DataFrame
) -> None:
    exports = tmp_path / "exports"
    # connection_key as a last column identifies every row, staged sessions included.
    config = {"extra_columns": ["connection_key"]}
    assert materialize_states(resources(synced_warehouse_url, str(exports)), config).success

    exported: dict[str, list[str]] = {}
    for state in STATES:
        csv_rows = read_with_csv(exports / f"connections_{state}_latest.csv")[1:]
        assert read_with_polars(exports / f"connections_{state}_latest.csv")[1:] == csv_rows
        for row in csv_rows:
            # No cell a spreadsheet would evaluate.
            assert [cell for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")] == []
            exported[row[-1]] = row
    assert len(exported) == synced_current.height

    seen = set()
    for row in synced_current.iter_rows(named=True):
        written = exported[row["connection_key"]]
        for column, index, hostile in (
            ("company_name", 0, HOSTILE_COMPANY_NAMES),
            ("customer_name", 3, HOSTILE_CUSTOMER_NAMES),
        ):
            name = row[column]
            if name not in hostile:
                continue
            seen.add(name)
            if name[0] in "=+-@\t\r":
                assert written[index] == "'" + name
            else:
                assert written[index] == name
    # Every planted case reached the file: formulas, quotes, commas, newlines, Unicode.
    assert seen == set(HOSTILE_COMPANY_NAMES) | set(HOSTILE_CUSTOMER_NAMES)

    live = (exports / "connections_live_latest.csv").read_bytes()
    assert b'"\'=HYPERLINK(""http://example.com/x"",""Click me"")"' in live
    assert b'"North Line Holdings\nSecond Line Ltd"' in live
    assert "日本テクノロジー株式会社".encode() in live
