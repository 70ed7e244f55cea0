"""Fixtures of the export tests: one synced DuckDB warehouse, shared and only read."""

from collections.abc import Iterator

import pytest
from export_helpers import HOSTILE_CONNECTIONS, HOSTILE_SEED, sync_into

from connections_pipeline.warehouse import Warehouse


@pytest.fixture(scope="session")
def synced_warehouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DuckDB warehouse synced from the emulator's hostile-name dataset.

    Tests read it and never write it, so one sync serves them all.
    """
    url = f"duckdb:///{tmp_path_factory.mktemp('export-warehouse') / 'warehouse.duckdb'}"
    with Warehouse(url) as warehouse:
        sync_into(warehouse, HOSTILE_SEED, HOSTILE_CONNECTIONS)
    yield url


@pytest.fixture(scope="session")
def synced_current(synced_warehouse_url: str):
    with Warehouse(synced_warehouse_url) as warehouse:
        return warehouse.read_current()
