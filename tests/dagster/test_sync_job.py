"""The sync asset through Dagster: metadata, checks, Postgres run storage, bad settings."""

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from connections_pipeline.assets.sync import SYNC_ASSETS, sync_finch_connections
from connections_pipeline.definitions import SYNC_JOB_NAME, defs
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).parents[2] / "examples"
# These runs fail on their settings before any request: no Finch needs to answer.
UNUSED_FINCH = "http://127.0.0.1:9"


def _resources(tmp_path: Path, seed: int = 31) -> dict:
    return {
        "finch": FinchResource(sandbox_seed=seed, sandbox_connections=60),
        "token_source": TokenSourceResource(),
        "warehouse": WarehouseResource(url=f"duckdb:///{tmp_path / 'wh.duckdb'}"),
        # Every company name in the first run, so a second run of the same data changes
        # nothing (tests/scale covers names spread over runs).
        "sync_guard": SyncGuardResource(company_share=0.9),
        "notifier": NotifierResource(),
    }


def test_materialization_reports_counts_breakdown_and_checks(tmp_path: Path) -> None:
    resources = _resources(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([sync_finch_connections], resources=resources, instance=instance)
    assert result.success
    materializations = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization
        for event in result.get_asset_materialization_events()
    }
    connections = materializations["finch_connections"].metadata
    stored = Warehouse(resources["warehouse"].url).read_current()
    assert connections["dagster/row_count"].value == stored.height
    breakdown = {
        row.data["state"]: row.data["rows"] for row in connections["state_breakdown"].records
    }
    assert breakdown == {s: stored.filter(stored["state"] == s).height for s in breakdown}
    history = materializations["finch_connections_history"].metadata
    stored_history = Warehouse(resources["warehouse"].url).read_table("finch_connections_history")
    assert history["versions_opened"].value == stored_history.height == stored.height
    assert history["versions_closed"].value == 0
    raw = materializations["finch_raw_responses"].metadata
    assert raw["requests"].value >= raw["tokens"].value > 0
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["connections_pass_schema"].passed
    logs = [
        record.user_message for record in instance.all_logs(result.run_id) if record.user_message
    ]
    assert any("Finch introspect:" in message for message in logs)

    # Nothing secret anywhere in the run's event log.
    sandbox = resources["finch"].sandbox()
    event_text = "\n".join(repr(record) for record in instance.all_logs(result.run_id))
    tokens = [token["access_token"] for token in sandbox.tokens()]
    assert [token for token in tokens if token in event_text] == []
    assert sandbox.credentials[1] not in event_text


def test_row_count_is_the_tables_rows_and_changes_are_counted_apart(tmp_path: Path) -> None:
    # Regression: `dagster/row_count` meant rows written by the run on some assets (requests
    # on finch_raw_responses) and was missing on others.
    resources = _resources(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    for _ in range(2):
        result = dg.materialize([sync_finch_connections], resources=resources, instance=instance)
        assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    warehouse = Warehouse(resources["warehouse"].url)
    for table in SYNC_ASSETS:
        stored = warehouse.read_table(table).height
        assert metadata[table]["dagster/row_count"].value == stored, table
        assert metadata[table]["dagster/table_name"].value == f"finch.{table}"
        assert "rows_changed_this_run" in metadata[table], table
    # The second run of an unchanged dataset changed no connection, but the table still
    # holds every row; the raw responses of both runs are kept.
    connections = metadata["finch_connections"]
    assert connections["rows_changed_this_run"].value == 0
    assert connections["dagster/row_count"].value > 0
    raw = metadata["finch_raw_responses"]
    this_run = warehouse.read_raw_responses(result.run_id).height
    assert raw["rows_changed_this_run"].value == this_run > 0
    assert raw["dagster/row_count"].value > this_run
    assert metadata["finch_sync_runs"]["dagster/row_count"].value == 2


def test_sync_job_runs_on_the_example_postgres_instance_storage(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONNECTIONS_WAREHOUSE_URL", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    monkeypatch.setenv("CONNECTIONS_SANDBOX_CONNECTIONS", "40")
    # dagster-postgres speaks psycopg2; the shipped example reads its URL from DAGSTER_PG_URL.
    storage_url = sa.make_url(postgres_url).set(drivername="postgresql+psycopg2")
    monkeypatch.setenv("DAGSTER_PG_URL", storage_url.render_as_string(hide_password=False))
    example = yaml.safe_load((EXAMPLES / "dagster.yaml").read_text())
    with dg.instance_for_test(overrides={"storage": example["storage"]}) as instance:
        job = defs().resolve_job_def(SYNC_JOB_NAME)
        result = job.execute_in_process(instance=instance)
        assert result.success
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        stored = connection.execute(
            sa.text("select status from runs where run_id = :run_id"), {"run_id": result.run_id}
        ).scalar_one()
    engine.dispose()
    assert stored == "SUCCESS"


def test_unreachable_warehouse_fails_before_reading_tokens(tmp_path: Path) -> None:
    resources = _resources(tmp_path)
    resources["warehouse"] = WarehouseResource(url="postgresql+psycopg://app:pw123@127.0.0.1:1/db")
    resources["finch"] = FinchResource(base_url=UNUSED_FINCH)
    resources["token_source"] = TokenSourceResource(tokens_file=str(tmp_path / "absent.jsonl"))
    result = dg.materialize([sync_finch_connections], resources=resources, raise_on_error=False)
    assert not result.success
    message = _failure_message(result)
    assert "CONNECTIONS_WAREHOUSE_URL" in message
    assert "pw123" not in message


def test_contradictory_token_settings_fail_naming_both(tmp_path: Path) -> None:
    resources = _resources(tmp_path)
    resources["token_source"] = TokenSourceResource(
        tokens_file="tokens.jsonl", tokens_url="sqlite://", tokens_query="select 1"
    )
    result = dg.materialize([sync_finch_connections], resources=resources, raise_on_error=False)
    message = _failure_message(result)
    assert "CONNECTIONS_TOKENS_FILE" in message and "CONNECTIONS_TOKENS_URL" in message
    assert not (tmp_path / "wh.duckdb").exists()


def test_token_query_without_token_column_fails_before_any_write(tmp_path: Path) -> None:
    database = tmp_path / "app.sqlite"
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(sa.text("create table creds (token text)"))
        connection.execute(sa.text("insert into creds values ('abc')"))
    engine.dispose()
    resources = _resources(tmp_path)
    resources["finch"] = FinchResource(base_url=UNUSED_FINCH)
    resources["token_source"] = TokenSourceResource(
        tokens_url=f"sqlite:///{database}", tokens_query="select token from creds"
    )
    result = dg.materialize([sync_finch_connections], resources=resources, raise_on_error=False)
    assert "CONNECTIONS_TOKENS_QUERY" in _failure_message(result)
    tables = Warehouse(resources["warehouse"].url)
    with sa.create_engine(tables.url).connect() as connection:
        names = connection.execute(
            sa.text("select table_name from information_schema.tables where table_schema='finch'")
        ).all()
    assert names == []


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [event for event in result.all_events if event.is_step_failure]
    assert failures, "the step should have failed"
    error = failures[0].step_failure_data.error
    parts = []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)
