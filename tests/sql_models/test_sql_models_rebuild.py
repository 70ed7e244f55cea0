"""Models build on empty tables (no sync data, no session ledger), rebuild in place, and may
switch between view and table, on DuckDB, Postgres and Snowflake (the fakesnow emulator)."""

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from sql_model_helpers import (
    MODEL_NAMES,
    kind_resource,
    materialize_models,
    materialized_keys,
    read_relation,
)

from connections_pipeline.resources import WarehouseResource
from connections_pipeline.sql_models import default_models_dir
from connections_pipeline.sql_models.statements import relation


@pytest.mark.parametrize("kind", ["duckdb", "postgres", "snowflake"])
def test_models_rebuild_and_switch_materialization(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    resource = kind_resource(kind, tmp_path, request)
    with resource.open() as warehouse:
        warehouse.ensure_tables()

    first = materialize_models(resource)
    second = materialize_models(resource)
    assert first.success and second.success
    assert materialized_keys(second) == MODEL_NAMES
    assert all(check.passed for check in second.get_asset_check_evaluations())
    assert read_relation(resource, "connections") == []
    assert read_relation(resource, "connect_session_funnel") == []

    # sync_freshness becomes a table and provider_health a view, in place.
    folder = tmp_path / "models"
    shutil.copytree(default_models_dir(), folder)
    settings = (folder / "models.yml").read_text()
    settings = settings.replace(
        "  sync_freshness:\n    materialized: view", "  sync_freshness:\n    materialized: table"
    ).replace(
        "  provider_health:\n    materialized: table", "  provider_health:\n    materialized: view"
    )
    (folder / "models.yml").write_text(settings)
    # A view whose columns change (PostgreSQL cannot CREATE OR REPLACE that) is recreated.
    sql = (folder / "connections.sql").read_text()
    (folder / "connections.sql").write_text(sql.replace(",\n    c.needs_action\n", "\n"))
    switched = materialize_models(resource, folder)
    assert switched.success
    kinds = {
        event.asset_key.to_user_string(): event.materialization.metadata["materialized"].value
        for event in switched.get_asset_materialization_events()
    }
    assert kinds["sync_freshness"] == "table" and kinds["provider_health"] == "view"
    assert read_relation(resource, "provider_health") == []
    columns = _columns(resource, "connections")
    assert "needs_action" not in columns and "Company Name" in columns


def _columns(resource: WarehouseResource, name: str) -> list[str]:
    with resource.open() as warehouse, warehouse._connect(transaction=False) as connection:
        target = relation(name, resource.schema_name, warehouse.dialect)
        return list(connection.execute(sa.text(f"SELECT * FROM {target} WHERE 1 = 0")).keys())
