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


@pytest.mark.snowflake
def test_check_connection_succeeds(warehouse: Warehouse) -> None:
    warehouse.check_connection()


def test_in_memory_duckdb_keeps_its_tables_across_calls() -> None:
    from frames import at, connection_row, run

    warehouse = Warehouse("duckdb:///:memory:")
    warehouse.ensure_tables()
    warehouse.load_run(run("r1", at(0), [connection_row("a")]))
    assert warehouse.read_current()["connection_key"].to_list() == ["a"]
    warehouse.dispose()


def _duckdb_database(path: Path) -> Path:
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE kept (x INTEGER)")
    return path


def _sqlite_database(path: Path) -> Path:
    import sqlite3

    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE kept (x INTEGER)")
    return path


NOT_DUCKDB = {
    "tokens csv": lambda path: path.write_text("access_token,customer_id\ntok_1,c1\n"),
    "json": lambda path: path.write_text('{"tokens": []}'),
    "sqlite": _sqlite_database,
    "short binary": lambda path: path.write_bytes(b"\x00DUCK"),
    "empty": lambda path: path.write_bytes(b""),
}


@pytest.mark.parametrize("kind", NOT_DUCKDB)
def test_an_existing_file_that_is_not_a_duckdb_database_is_refused(
    tmp_path: Path, kind: str
) -> None:
    # DuckDB opens a CSV as a view in an in-memory database: every load would vanish.
    path = tmp_path / "tokens.csv"
    NOT_DUCKDB[kind](path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="CONNECTIONS_WAREHOUSE_URL") as raised:
        Warehouse(f"duckdb:///{path}")
    assert str(path) in str(raised.value) and "\n" not in str(raised.value)
    assert path.read_bytes() == before


def test_an_existing_duckdb_file_and_a_new_path_are_accepted(tmp_path: Path) -> None:
    import duckdb

    existing = _duckdb_database(tmp_path / "existing.duckdb")
    with Warehouse(f"duckdb:///{existing}") as warehouse:
        warehouse.ensure_tables()
    with duckdb.connect(str(existing), read_only=True) as connection:
        rows = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    tables = {name for (name,) in rows}
    assert {"kept", "finch_connections"} <= tables
    fresh = tmp_path / "new" / "fresh.duckdb"
    with Warehouse(f"duckdb:///{fresh}") as warehouse:
        warehouse.ensure_tables()
    assert fresh.is_file()


def test_settings_refuse_a_non_database_warehouse_file_before_any_work(tmp_path: Path) -> None:
    from connections_pipeline.settings import SettingError, build_resources

    tokens = tmp_path / "tokens.csv"
    tokens.write_text("access_token\ntok_1\n")
    env = {"CONNECTIONS_WAREHOUSE_URL": f"duckdb:///{tokens}"}
    with pytest.raises(SettingError, match=r"^CONNECTIONS_WAREHOUSE_URL: .* not a valid DuckDB"):
        build_resources(env)
    env = {"CONNECTIONS_WAREHOUSE_URL": f"duckdb:///{_duckdb_database(tmp_path / 'w.duckdb')}"}
    assert set(build_resources(env)) >= {"warehouse"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("100", r"^CONNECTIONS_MEMORY_LIMIT_MB is 100; at least 256"),
        ("two gigabytes", r"^CONNECTIONS_MEMORY_LIMIT_MB must be a whole number"),
        ("-5", r"^CONNECTIONS_MEMORY_LIMIT_MB must be positive"),
    ],
)
def test_settings_refuse_an_unusable_memory_limit(value: str, message: str) -> None:
    from connections_pipeline.settings import SettingError, build_resources

    with pytest.raises(SettingError, match=message):
        build_resources({"CONNECTIONS_MEMORY_LIMIT_MB": value})


def test_the_memory_limit_bounds_an_embedded_duckdb(tmp_path: Path) -> None:
    from connections_pipeline.settings import build_resources

    resource = build_resources({"CONNECTIONS_MEMORY_LIMIT_MB": "1024"})["warehouse"]
    assert resource.memory_limit_mb == 1024
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with Warehouse(url, memory_limit_mb=resource.memory_limit_mb) as warehouse:
        assert warehouse.memory.spool_chunk_bytes == 16 * 2**20
        with warehouse._connect(transaction=False) as connection:
            limit = connection.exec_driver_sql("SELECT current_setting('memory_limit')").scalar()
    # DuckDB shows its limit in MiB of its own rounding: 256 MB is 244.1 MiB.
    assert limit == "244.1 MiB"
