"""A broken model fails naming its file with the database's message; the models that do not
depend on it still build, and a model whose declared test fails stops its dependents."""

import shutil
from pathlib import Path

import pytest
from sql_model_helpers import (
    failure_messages,
    materialize_models,
    materialized_keys,
    two_syncs,
    warehouse_resource,
)

from connections_pipeline.sql_models import default_models_dir

pytestmark = pytest.mark.slow

KEPT = ("connections", "sync_freshness", "provider_health")


def _models_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in KEPT:
        shutil.copy(default_models_dir() / f"{name}.sql", folder)
    # A new model is one .sql file; its settings and tests are optional YAML.
    (folder / "broken.sql").write_text("select no_such_column from finch_connections\n")
    (folder / "after_broken.sql").write_text("select * from broken\n")
    (folder / "failing_test.sql").write_text("select connection_key from finch_connections\n")
    (folder / "after_failing_test.sql").write_text("select * from failing_test\n")
    (folder / "models.yml").write_text(
        "models:\n"
        "  failing_test:\n"
        "    materialized: table\n"
        "    tests:\n"
        "      - name: never_any_rows\n"
        "        sql: select * from failing_test\n"
    )
    return folder


def test_broken_model_fails_alone_with_file_and_database_message(tmp_path: Path) -> None:
    resource = warehouse_resource("duckdb", tmp_path, "")
    with two_syncs(resource, connections=20, days_between=1):
        result = materialize_models(resource, _models_dir(tmp_path))

    assert not result.success
    messages = failure_messages(result)
    assert "broken.sql" in messages["broken"]
    # DuckDB's own words about the missing column.
    assert "Binder Error" in messages["broken"] and "no_such_column" in messages["broken"]

    built = materialized_keys(result)
    assert set(KEPT) | {"failing_test"} <= built
    assert {"broken", "after_broken", "after_failing_test"}.isdisjoint(built)
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "never_any_rows"]
    assert not check.passed
    assert check.metadata["failing_rows"].value > 0
    assert check.metadata["file"].value == "failing_test.sql"
