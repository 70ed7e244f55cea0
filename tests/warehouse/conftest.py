"""A `warehouse` fixture that runs every warehouse test on DuckDB and on PostgreSQL, and
those marked `snowflake` on the Snowflake emulator too.

The Snowflake emulator answers each statement through a SQL transpiler, at a few times the
CPU of the other two: it runs the tests whose path differs by dialect (bulk writes, staged
rows, writes by key, reads, DDL and migration, transactions), not every one that merely
shares those paths.
"""

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from frames import Target

from connections_pipeline.warehouse import Warehouse


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "warehouse_target" not in metafunc.fixturenames:
        return
    targets = ["duckdb", "postgres"]
    if metafunc.definition.get_closest_marker("snowflake"):
        targets.append("snowflake")
    metafunc.parametrize("warehouse_target", targets, indirect=True)


@pytest.fixture
def warehouse_target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "duckdb":
        return Target(f"duckdb:///{tmp_path / 'db' / 'warehouse.duckdb'}", "finch")
    if request.param == "snowflake":
        emulator = request.getfixturevalue("snowflake_emulator")
        database = emulator.new_database()
        return Target(emulator.url(database), "finch", emulator.connect_args)
    # One database per test session; a fresh schema per test keeps tests independent.
    postgres_url = request.getfixturevalue("postgres_url")
    return Target(postgres_url, f"t_{secrets.token_hex(6)}")


@pytest.fixture
def warehouse_factory(warehouse_target: Target) -> Iterator[Callable[[], Warehouse]]:
    """Makes further empty warehouses on the same database as `warehouse_target`."""
    made: list[Warehouse] = []

    def make() -> Warehouse:
        suffix = f"w{len(made)}"
        if warehouse_target.url.startswith("duckdb"):
            url, schema = warehouse_target.url.replace(".duckdb", f"_{suffix}.duckdb"), "finch"
        else:
            url, schema = warehouse_target.url, f"{warehouse_target.schema}_{suffix}"
        warehouse = Warehouse(url, schema=schema, connect_args=warehouse_target.connect_args)
        warehouse.ensure_tables()
        made.append(warehouse)
        return warehouse

    yield make
    for warehouse in made:
        warehouse.dispose()


@pytest.fixture
def warehouse(warehouse_target: Target) -> Iterator[Warehouse]:
    """A Warehouse with its tables created, disposed after the test."""
    warehouse = warehouse_target.open()
    warehouse.ensure_tables()
    yield warehouse
    warehouse.dispose()
