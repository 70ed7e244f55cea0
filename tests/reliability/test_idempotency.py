"""The same sync twice yields the same tables; the same export twice, the same bytes."""

from pathlib import Path

import pytest
from export.export_helpers import materialize_states, resources
from sync.sync_helpers import NAMES_AT_ONCE, make_warehouse, served_sandbox
from table_checksums import file_checksums, table_checksums

from connections_pipeline.assets.sync import sync_with_resources

pytestmark = pytest.mark.slow

RUN_LOG_TABLES = {"finch_sync_runs", "finch_raw_responses"}
HAS_ROWS = (
    "finch_connections",
    "finch_connections_history",
    "finch_connection_entities",
    "finch_tokens",
    "finch_connect_sessions",
)


def _export(warehouse_url: str, schema: str, folder: Path) -> dict[str, str]:
    result = materialize_states(resources(warehouse_url, str(folder), schema=schema))
    assert result.success
    return file_checksums(folder)


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_same_sync_and_export_twice_change_nothing(
    kind: str, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    url = warehouse.url.render_as_string(hide_password=False)
    with served_sandbox(seed=81, connections=150) as (_, finch, source):
        sync_with_resources("run-1", finch, source, warehouse, NAMES_AT_ONCE)
        first = table_checksums(warehouse)
        first_files = _export(url, warehouse.schema, tmp_path / "exports-1")

        # The next scheduled sync, Finch unchanged.
        sync_with_resources("run-2", finch, source, warehouse, NAMES_AT_ONCE)
        second = table_checksums(warehouse)
        run_1_log_after_run_2 = table_checksums(warehouse, only_run="run-1")
        second_files = _export(url, warehouse.schema, tmp_path / "exports-2")

        # run-2 executed once more under the same run id, as a manual re-run would.
        sync_with_resources("run-2", finch, source, warehouse, NAMES_AT_ONCE)
        third = table_checksums(warehouse)
        third_files = _export(url, warehouse.schema, tmp_path / "exports-3")
        sync_runs = warehouse.read_table("finch_sync_runs")["run_id"].to_list()
        heights = {name: warehouse.read_table(name).height for name in HAS_ROWS}

    assert min(heights.values()) > 0, heights  # the compared tables hold data
    data_tables = sorted(set(first) - RUN_LOG_TABLES)
    assert [name for name in data_tables if second[name] != first[name]] == []
    assert [name for name in data_tables if third[name] != first[name]] == []
    # The run log gains the new run's rows and keeps the old run's as they were.
    assert {name: run_1_log_after_run_2[name] for name in RUN_LOG_TABLES} == {
        name: first[name] for name in RUN_LOG_TABLES
    }
    assert third == second
    assert sorted(sync_runs) == ["run-1", "run-2"]

    assert len(first_files) == 6  # a dated and a _latest file per state
    assert second_files == first_files
    assert third_files == first_files
    warehouse.dispose()
