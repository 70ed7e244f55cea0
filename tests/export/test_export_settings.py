"""Unusable export settings fail the run once, before any file is written, naming the setting."""

from pathlib import Path

import dagster as dg
import pytest
from export_helpers import failure_message, materialize_states, resources

from connections_pipeline.assets.exports import finch_connections_csv

OLD = b"Company Name\r\nthe previous export\r\n"


def _retries(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for event in result.all_events if event.event_type_value == "STEP_UP_FOR_RETRY")


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "connections_live_latest.csv").write_bytes(OLD)
    return folder


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        ({"filters": [{"column": "colour", "equals": "red"}]}, "filters[0].column 'colour'"),
        ({"sort_by": "provider_name"}, "sort_by 'provider_name'"),
        ({"extra_columns": ["company_id", "access_token"]}, "extra_columns[1] 'access_token'"),
        ({"timestamp_format": "YYYY-MM-DD"}, "timestamp_format 'YYYY-MM-DD'"),
        ({"filters": [{"column": "entity_count", "equals": "many"}]}, "filters[0].equals"),
        ({"filters": [{"column": "needs_action", "one_of": ["maybe"]}]}, "filters[0].one_of[0]"),
        ({"filters": [{"column": "state"}]}, "filters[0] must set exactly one"),
    ],
)
def test_bad_run_config_fails_before_writing_naming_the_setting(
    tmp_path: Path, exports: Path, config: dict, setting: str
) -> None:
    warehouse_url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    result = materialize_states(resources(warehouse_url, str(exports)), config)
    assert not result.success
    assert setting in failure_message(result)
    assert _retries(result) == 0
    assert _files(exports) == {"connections_live_latest.csv": OLD}
    # Failing before the warehouse is even opened: no database file was created.
    assert not (tmp_path / "wh.duckdb").exists()


def test_unwritable_destination_fails_naming_the_url_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    warehouse_url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    result = materialize_states(resources(warehouse_url, str(blocker / "exports")))
    assert not result.success
    message = failure_message(result)
    assert "CONNECTIONS_EXPORT_URL" in message and "not a writable folder" in message
    assert _retries(result) == 0
    assert blocker.read_text() == "a file where the export folder should be"


@pytest.mark.parametrize(
    ("url", "storage_options", "setting"),
    [
        ("nosuchscheme://bucket/prefix", None, "CONNECTIONS_EXPORT_URL"),
        ("s3://bucket/prefix", "{not json", "CONNECTIONS_EXPORT_STORAGE_OPTIONS"),
        ("s3://bucket/prefix", '["a list"]', "CONNECTIONS_EXPORT_STORAGE_OPTIONS"),
        ("   ", None, "CONNECTIONS_EXPORT_URL"),
    ],
)
def test_unusable_destination_settings_name_the_variable(
    tmp_path: Path, url: str, storage_options: str | None, setting: str
) -> None:
    warehouse_url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    result = materialize_states(
        resources(warehouse_url, url, storage_options=storage_options), partition="live"
    )
    assert not result.success
    assert setting in failure_message(result)
    assert _retries(result) == 0


def test_warehouse_never_synced_fails_saying_so(tmp_path: Path, exports: Path) -> None:
    warehouse_url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    result = materialize_states(resources(warehouse_url, str(exports)))
    assert not result.success
    assert "has sync_connections run?" in failure_message(result)
    assert _files(exports) == {"connections_live_latest.csv": OLD}


def test_partition_outside_the_states_is_dagsters_own_error(tmp_path: Path) -> None:
    with pytest.raises(dg.DagsterUnknownPartitionError, match="archived"):
        dg.materialize(
            [finch_connections_csv],
            resources=resources(f"duckdb:///{tmp_path / 'wh.duckdb'}", str(tmp_path / "out")),
            partition_key="archived",
        )
    assert not (tmp_path / "out").exists()
