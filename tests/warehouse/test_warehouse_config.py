"""URL and schema settings are validated up front; connection errors never leak a password."""

from pathlib import Path

import pytest

from connections_pipeline.warehouse import (
    Warehouse,
    WarehouseConnectionError,
    build_metadata,
    validate_schema_name,
)


@pytest.mark.parametrize(
    "schema", ["", "1abc", "finch-data", 'x"; drop table y; --', "a b", "é", "a" * 64]
)
def test_schema_that_is_not_a_plain_identifier_is_rejected(schema: str) -> None:
    with pytest.raises(ValueError, match="CONNECTIONS_WAREHOUSE_SCHEMA"):
        validate_schema_name(schema)
    with pytest.raises(ValueError, match="CONNECTIONS_WAREHOUSE_SCHEMA"):
        Warehouse("duckdb:///:memory:", schema=schema)


@pytest.mark.parametrize("schema", ["finch", "_x", "Finch_2", "a" * 63])
def test_plain_identifiers_are_accepted(schema: str) -> None:
    assert validate_schema_name(schema) == schema
    metadata = build_metadata(schema)
    assert {table.schema for table in metadata.tables.values()} == {schema}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a SQLAlchemy URL"),
        ("", "not a SQLAlchemy URL"),
        ("sqlite:///x.db", "'sqlite'"),
        ("mysql+pymysql://u:p@h/db", "'mysql+pymysql'"),
        ("postgresql+psycopg2://u@h/db", "'postgresql+psycopg2'"),
        ("postgresql+psycopg://u@h:5432", "names no database"),
    ],
)
def test_unusable_url_names_the_setting(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="CONNECTIONS_WAREHOUSE_URL") as raised:
        Warehouse(url)
    assert message in str(raised.value)


def test_plain_postgresql_url_is_bound_to_psycopg3() -> None:
    warehouse = Warehouse("postgresql://user:pw@db.example:5432/wh")
    assert warehouse.url.drivername == "postgresql+psycopg"
    assert "pw" not in repr(warehouse)
    warehouse.dispose()


def test_duckdb_file_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "warehouse.duckdb"
    warehouse = Warehouse(f"duckdb:///{path}")
    assert path.parent.is_dir()
    warehouse.check_connection()
    warehouse.ensure_tables()
    warehouse.dispose()
    assert path.is_file()


def test_unreachable_postgres_error_names_setting_without_password() -> None:
    password = "s3cret-Pa55word"
    warehouse = Warehouse(f"postgresql+psycopg://finch:{password}@127.0.0.1:1/warehouse")
    with pytest.raises(WarehouseConnectionError) as raised:
        warehouse.check_connection()
    message = str(raised.value)
    assert "CONNECTIONS_WAREHOUSE_URL" in message
    assert "127.0.0.1" in message
    assert password not in message
    assert password not in repr(raised.value.__cause__) and raised.value.__suppress_context__
    # Every other entry point reports the same way.
    with pytest.raises(WarehouseConnectionError) as raised_again:
        warehouse.ensure_tables()
    assert password not in str(raised_again.value)
    warehouse.dispose()


def test_wrong_credentials_error_is_scrubbed(postgres_url: str) -> None:
    from sqlalchemy import make_url

    password = "an0ther-Secret"
    url = make_url(postgres_url).set(username="no_such_role_x", password=password)
    warehouse = Warehouse(url.render_as_string(hide_password=False))
    with pytest.raises(WarehouseConnectionError) as raised:
        warehouse.check_connection()
    assert "no_such_role_x" in str(raised.value)
    assert password not in str(raised.value)
    warehouse.dispose()


def test_check_connection_succeeds_on_both(warehouse: Warehouse) -> None:
    warehouse.check_connection()


def test_in_memory_duckdb_keeps_its_tables_across_calls() -> None:
    from frames import at, connection_row, run

    warehouse = Warehouse("duckdb:///:memory:")
    warehouse.ensure_tables()
    warehouse.load_run(run("r1", at(0), [connection_row("a")]))
    assert warehouse.read_current()["connection_key"].to_list() == ["a"]
    warehouse.dispose()
