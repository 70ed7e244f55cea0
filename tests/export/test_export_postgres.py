"""The export reads a Postgres warehouse as it reads DuckDB."""

import secrets
from pathlib import Path

import pytest
from export_helpers import (
    HEADER,
    STATES,
    expected_rows,
    materialize_states,
    read_with_csv,
    read_with_polars,
    resources,
    sync_into,
)

from connections_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow


def test_postgres_warehouse_exports_every_state(tmp_path: Path, postgres_url: str) -> None:
    schema = f"finch_{secrets.token_hex(4)}"
    with Warehouse(postgres_url, schema=schema) as warehouse:
        sync_into(warehouse, seed=5, connections=60)
        current = warehouse.read_current()
    exports = tmp_path / "exports"
    config = {"extra_columns": ["customer_email", "sync_overdue", "disconnected_at"]}

    result = materialize_states(resources(postgres_url, str(exports), schema=schema), config)

    assert result.success
    header = [*HEADER, *config["extra_columns"]]
    for state in STATES:
        expected = [header, *expected_rows(current, state, extra_columns=config["extra_columns"])]
        latest = exports / f"connections_{state}_latest.csv"
        assert read_with_csv(latest) == expected
        assert read_with_polars(latest) == expected
