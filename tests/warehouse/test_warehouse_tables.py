"""Tables are created and migrated idempotently, and values round-trip exactly."""

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import sqlalchemy as sa
from frames import Target, at, connection_row, connections, run
from polars.testing import assert_frame_equal

from connections_pipeline.warehouse import (
    CONNECTIONS,
    CONNECTIONS_COLUMNS,
    TABLE_COLUMNS,
    TOKENS,
    Warehouse,
    empty_frame,
)

EXPECTED_CONNECTION_COLUMNS = [
    "connection_key", "state", "connection_id", "session_id", "company_name", "company_id",
    "customer_name", "customer_id", "customer_email", "entity_count", "connection_status",
    "connection_status_label", "needs_action", "last_synced_at", "connection_type",
    "expected_refresh_hours", "sync_overdue", "connected_at", "provider_id", "provider_name",
    "products", "session_expires_at", "token_count", "working_token_fingerprint", "first_seen_at",
    "last_seen_at", "disconnected_at", "left_source_at", "company_fetched_at",
    "company_name_pending", "last_error",
    "stale", "run_id",
]  # fmt: skip


def test_connection_columns_are_the_documented_ones() -> None:
    assert [column.name for column in CONNECTIONS_COLUMNS] == EXPECTED_CONNECTION_COLUMNS
    schema = empty_frame(CONNECTIONS).schema
    assert schema["entity_count"] == pl.Int32
    assert schema["needs_action"] == pl.Boolean
    assert schema["last_synced_at"] == pl.Datetime("us", "UTC")
    not_null = {column.name for column in CONNECTIONS_COLUMNS if not column.nullable}
    assert not_null == {
        "connection_key", "state", "needs_action", "sync_overdue", "first_seen_at",
        "last_seen_at", "stale", "company_name_pending", "run_id",
    }  # fmt: skip


@pytest.mark.snowflake
@pytest.mark.parametrize("table", sorted(TABLE_COLUMNS))
def test_every_table_reads_back_empty_with_its_schema(warehouse: Warehouse, table: str) -> None:
    stored = warehouse.read_table(table)
    assert stored.height == 0
    assert stored.schema == empty_frame(table).schema


@pytest.mark.snowflake
def test_ensure_tables_is_idempotent(warehouse: Warehouse) -> None:
    warehouse.load_run(run("r1", at(0), [connection_row("a")]))
    before = warehouse.read_current()
    assert warehouse.ensure_tables() == []
    assert warehouse.ensure_tables() == []
    assert_frame_equal(warehouse.read_current(), before)


@pytest.mark.snowflake
def test_missing_columns_are_added_to_existing_tables(warehouse_target: Target) -> None:
    warehouse = warehouse_target.open()
    schema = warehouse_target.schema
    engine = warehouse_target.engine()
    # An older release's finch_tokens: no last_outcome/last_ok_at/last_error, one row in it.
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        connection.execute(
            sa.text(
                f"CREATE TABLE {schema}.finch_tokens (token_fingerprint TEXT PRIMARY KEY, "
                "connection_id TEXT, first_seen_at TIMESTAMP WITH TIME ZONE NOT NULL, "
                "last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL)"
            )
        )
        connection.execute(
            sa.text(
                f"INSERT INTO {schema}.finch_tokens VALUES "
                "('fp1', 'c1', '2026-01-01 00:00:00+00', '2026-01-02 00:00:00+00')"
            )
        )
    engine.dispose()
    added = warehouse.ensure_tables()
    assert sorted(added) == [
        "finch_tokens.last_error",
        "finch_tokens.last_ok_at",
        "finch_tokens.last_outcome",
    ]
    tokens = warehouse.read_tokens()
    assert tokens.schema == empty_frame(TOKENS).schema
    assert tokens.row(0, named=True) == {
        "token_fingerprint": "fp1",
        "connection_id": "c1",
        "first_seen_at": dt.datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
        "last_seen_at": dt.datetime(2026, 1, 2, tzinfo=ZoneInfo("UTC")),
        "last_outcome": None,
        "last_ok_at": None,
        "last_error": None,
    }
    assert warehouse.ensure_tables() == []
    # Other tables were created in the same step.
    assert warehouse.read_current().height == 0
    warehouse.dispose()


@pytest.mark.snowflake
def test_values_round_trip_exactly(warehouse: Warehouse) -> None:
    tricky = connection_row(
        'k,1"',
        company_name='Acme, "Inc."\nsecond line',
        customer_name="",
        customer_email=None,
        session_id="\\N",
        last_error="tab\there; NULL",
        entity_count=2_000_000_000,
        needs_action=True,
        # A non-UTC zone in, the same instant in UTC out; microseconds survive.
        last_synced_at=dt.datetime(2026, 7, 1, 1, 30, 0, 123456, tzinfo=ZoneInfo("Europe/Paris")),
        connected_at=dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    )
    warehouse.load_run(run("r1", at(0), [tricky, connection_row("plain")]))
    stored = warehouse.read_current()
    sent = connections(tricky, connection_row("plain")).with_columns(pl.lit("r1").alias("run_id"))
    assert stored.schema == empty_frame(CONNECTIONS).schema
    assert_frame_equal(stored.sort("connection_key"), sent.sort("connection_key"))
    row = stored.filter(pl.col("connection_key") == 'k,1"').row(0, named=True)
    assert row["customer_name"] == ""
    assert row["customer_email"] is None
    assert row["session_id"] == "\\N"
    assert row["last_synced_at"] == dt.datetime(2026, 6, 30, 23, 30, 0, 123456, tzinfo=dt.UTC)
    assert row["last_synced_at"].utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused(warehouse: Warehouse) -> None:
    frame = connections(connection_row("a")).with_columns(
        pl.col("last_seen_at").dt.replace_time_zone(None)
    )
    load = run("r1", at(0), [connection_row("a")])
    with pytest.raises(ValueError, match="naive"):
        warehouse.load_run(type(load)(**{**load.__dict__, "connections": frame}))
    with pytest.raises(ValueError, match="timezone-aware"):
        warehouse.load_run(type(load)(**{**load.__dict__, "as_of": dt.datetime(2026, 1, 1)}))
    assert warehouse.read_current().height == 0
