"""split_valid with the Pandera models: bad rows quarantined with reasons, the rest kept."""

import json

import polars as pl
import pytest
from transform_helpers import T0, at, previous, previous_row

from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA, ENTITIES_SCHEMA
from connections_pipeline.transform.validate import SchemaMismatchError, split_valid
from connections_pipeline.warehouse.columns import (
    CONNECTION_ENTITIES,
    CONNECTION_ENTITIES_COLUMNS,
    CONNECTIONS_COLUMNS,
    conform,
)


def _staged(key: str, **overrides: object) -> dict:
    row = previous_row(
        key,
        state="staged",
        connection_id=None,
        session_id=key,
        session_expires_at=at(24),
        last_seen_at=T0,
        entity_count=None,
        connection_status=None,
        connection_type=None,
        expected_refresh_hours=None,
    )
    row.update(overrides)
    return row


def _disconnected(key: str, **overrides: object) -> dict:
    row = previous_row(
        key, state="disconnected", connection_status="disconnected", disconnected_at=at(-1)
    )
    row.update(overrides)
    return row


def test_every_kind_of_good_row_passes() -> None:
    frame = previous(previous_row("conn-a"), _staged("sess-1"), _disconnected("conn-d"))
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")
    assert outcome.passed
    assert outcome.valid.equals(frame)
    assert outcome.quarantined.schema == pl.Schema(
        {"record_key": pl.String, "reason": pl.String, "payload": pl.String}
    )
    assert outcome.failed_checks == {}


BAD_ROWS = {
    "live-no-id": (
        previous_row("live-no-id", connection_id=None),
        "a live row needs a connection_id",
    ),
    "live-no-count": (
        previous_row("live-no-count", entity_count=None),
        "a live row needs a connection_id, an entity count and a status",
    ),
    "live-disconnected-status": (
        previous_row("live-disconnected-status", connection_status="disconnected"),
        "a live row needs a connection_id, an entity count and a status",
    ),
    "staged-expired": (
        _staged("staged-expired", session_expires_at=T0),
        "a staged row has no connection_id and an unexpired session",
    ),
    "staged-with-id": (
        _staged("staged-with-id", connection_id="conn-x"),
        "a staged row has no connection_id and an unexpired session",
    ),
    "staged-no-session": (
        _staged("staged-no-session", session_id=None),
        "a staged row has no connection_id and an unexpired session",
    ),
    "zero-entities": (
        previous_row("zero-entities", entity_count=0),
        "entity_count failed greater_than_or_equal_to(1)",
    ),
    "bad-status": (previous_row("bad-status", connection_status="sleeping"), "connection_status"),
    "bad-state": (previous_row("bad-state", state="archived"), "state failed isin"),
    "bad-type": (previous_row("bad-type", connection_type="Manual"), "connection_type failed"),
    "bad-hours": (previous_row("bad-hours", expected_refresh_hours=12), "expected_refresh_hours"),
    "undated-disconnect": (
        _disconnected("undated-disconnect", disconnected_at=None),
        "a disconnected row needs a connection_id and disconnected_at",
    ),
    "never-seen": (previous_row("never-seen", first_seen_at=None), "first_seen_at"),
}


@pytest.mark.parametrize("key", sorted(BAD_ROWS))
def test_a_bad_row_is_quarantined_with_its_reason_and_the_others_kept(key: str) -> None:
    bad, reason = BAD_ROWS[key]
    frame = previous(previous_row("conn-a"), bad, _staged("sess-ok"), previous_row("conn-z"))
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")

    assert outcome.valid["connection_key"].to_list() == ["conn-a", "sess-ok", "conn-z"]
    assert outcome.valid.schema == frame.schema
    assert outcome.quarantined["record_key"].to_list() == [key]
    assert reason in outcome.quarantined["reason"].item()
    payload = json.loads(outcome.quarantined["payload"].item())
    assert payload["connection_key"] == key
    assert set(payload) == set(frame.columns)
    assert sum(outcome.failed_checks.values()) >= 1
    assert not outcome.passed


def test_all_bad_rows_at_once_keep_order_and_reasons_per_row() -> None:
    bad = [row for row, _ in BAD_ROWS.values()]
    frame = previous(previous_row("conn-a"), *bad, previous_row("conn-z"))
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")
    assert outcome.valid["connection_key"].to_list() == ["conn-a", "conn-z"]
    assert outcome.quarantined["record_key"].to_list() == list(BAD_ROWS)
    for key, row_reason in outcome.quarantined.select("record_key", "reason").iter_rows():
        assert BAD_ROWS[key][1] in row_reason, key


def test_a_row_failing_several_checks_is_quarantined_once_with_every_reason() -> None:
    frame = previous(previous_row("conn-a", connection_status="sleeping", entity_count=0))
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")
    assert outcome.quarantined.height == 1
    reason = outcome.quarantined["reason"].item()
    assert "entity_count failed" in reason
    assert "connection_status failed" in reason
    assert "a live row needs" in reason


def test_duplicate_connection_keys_are_quarantined() -> None:
    frame = previous(previous_row("conn-a"), previous_row("conn-a"), previous_row("conn-b"))
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")
    assert outcome.valid["connection_key"].to_list() == ["conn-b"]
    assert outcome.quarantined["record_key"].to_list() == ["conn-a", "conn-a"]
    assert all("connection_key failed" in r for r in outcome.quarantined["reason"].to_list())


@pytest.mark.parametrize(
    ("column", "dtype"),
    [("entity_count", pl.Int64), ("needs_action", pl.String), ("last_seen_at", pl.String)],
)
def test_a_wrong_column_type_is_a_schema_mismatch_not_a_quarantine(
    column: str, dtype: pl.DataType
) -> None:
    frame = previous(previous_row("conn-a")).with_columns(pl.col(column).cast(dtype))
    with pytest.raises(SchemaMismatchError, match=column):
        split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")


def test_a_missing_column_is_a_schema_mismatch() -> None:
    frame = previous(previous_row("conn-a")).drop("needs_action")
    with pytest.raises(SchemaMismatchError, match="finch_connections"):
        split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")


def test_an_extra_column_is_a_schema_mismatch() -> None:
    # Strict: a column the registry does not have would otherwise pass unnoticed.
    frame = previous(previous_row("conn-a")).with_columns(pl.lit(1).alias("surprise"))
    with pytest.raises(SchemaMismatchError, match="surprise"):
        split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")


def test_the_schemas_have_exactly_the_registrys_columns() -> None:
    for schema, columns in (
        (CONNECTIONS_SCHEMA, CONNECTIONS_COLUMNS),
        (ENTITIES_SCHEMA, CONNECTION_ENTITIES_COLUMNS),
    ):
        assert list(schema.columns) == [column.name for column in columns]
        assert {name: c.nullable for name, c in schema.columns.items()} == {
            column.name: column.nullable for column in columns
        }


def test_naive_timestamps_are_a_schema_mismatch() -> None:
    frame = previous(previous_row("conn-a")).with_columns(
        pl.col("first_seen_at").dt.replace_time_zone(None)
    )
    with pytest.raises(SchemaMismatchError, match="first_seen_at"):
        split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")


def test_entities_with_unknown_status_or_duplicates_are_quarantined() -> None:
    rows = [
        ("conn-a", "ent-1", "One", "s1", "connected", "r"),
        ("conn-a", "ent-2", "Two", "s2", "sleeping", "r"),
        ("conn-a", "ent-3", "Three", "s3", "disconnected", "r"),
        ("conn-a", "ent-3", "Three again", "s3", "connected", "r"),
        ("conn-b", "ent-1", None, None, None, "r"),
    ]
    columns = ["connection_id", "entity_id", "entity_name", "source_id", "entity_status", "run_id"]
    frame = conform(pl.DataFrame(rows, schema=columns, orient="row"), CONNECTION_ENTITIES)
    outcome = split_valid(frame, ENTITIES_SCHEMA, "entity_id")
    assert outcome.valid.select("connection_id", "entity_id").rows() == [
        ("conn-a", "ent-1"),
        ("conn-b", "ent-1"),
    ]
    assert outcome.quarantined["record_key"].to_list() == ["ent-2", "ent-3", "ent-3"]
