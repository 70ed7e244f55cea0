"""A quarantined row's payload keeps each text value only up to a bounded excerpt: a value
refused for passing a decoding limit is not stored in full after all."""

import json

import polars as pl
from documentation import doc_section
from transform_helpers import previous, previous_row

from connections_pipeline.decoding_limits import MAX_QUARANTINED_VALUE_CHARS, MAX_TEXT_CHARS
from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA, ENTITIES_SCHEMA
from connections_pipeline.transform.validate import split_valid
from connections_pipeline.warehouse.columns import (
    CONNECTION_ENTITIES,
    CONNECTION_ENTITIES_COLUMNS,
    conform,
)

TWO_MB = 2 * 1024 * 1024


def test_a_2_mb_company_name_is_quarantined_with_a_bounded_excerpt_and_its_length() -> None:
    name = "A" * TWO_MB
    frame = previous(previous_row("conn-a"), previous_row("conn-huge", company_name=name))
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")

    assert outcome.valid["connection_key"].to_list() == ["conn-a"]
    [row] = outcome.quarantined.iter_rows(named=True)
    assert row["record_key"] == "conn-huge"
    assert f"company_name failed str_length(None, {MAX_TEXT_CHARS})" in row["reason"]
    assert len(row["payload"]) < 2 * MAX_QUARANTINED_VALUE_CHARS + 4_000
    stored = json.loads(row["payload"])["company_name"]
    assert stored == "A" * MAX_QUARANTINED_VALUE_CHARS + "… [truncated, 2,097,152 characters]"
    # The other values of the row are kept as they were.
    assert json.loads(row["payload"])["connection_key"] == "conn-huge"


def test_a_long_entity_name_is_cut_in_the_entity_quarantine_too() -> None:
    rows = [
        {"connection_id": "conn-a", "entity_id": "ent-1", "entity_name": "Good", "run_id": "r"},
        {
            "connection_id": "conn-a",
            "entity_id": "ent-2",
            "entity_name": "é" * TWO_MB,
            "run_id": "r",
        },
    ]
    frame = conform(pl.DataFrame(rows), CONNECTION_ENTITIES, missing_as_null=True)
    outcome = split_valid(frame, ENTITIES_SCHEMA, "entity_id")

    assert outcome.valid["entity_id"].to_list() == ["ent-1"]
    payload = json.loads(outcome.quarantined["payload"].item())
    assert payload["entity_name"].endswith("… [truncated, 2,097,152 characters]")
    assert len(payload["entity_name"]) < MAX_QUARANTINED_VALUE_CHARS + 50
    assert set(payload) == {column.name for column in CONNECTION_ENTITIES_COLUMNS}


def test_values_within_every_limit_are_kept_whole_in_the_payload() -> None:
    at_limit = "N" * MAX_TEXT_CHARS
    bad = previous_row(
        "conn-bad", company_name=at_limit, customer_name=at_limit, connection_status="sleeping"
    )
    frame = previous(previous_row("conn-a"), bad)
    outcome = split_valid(frame, CONNECTIONS_SCHEMA, "connection_key")

    payload = json.loads(outcome.quarantined["payload"].item())
    assert "connection_status failed" in outcome.quarantined["reason"].item()
    assert payload["company_name"] == at_limit
    assert payload["customer_name"] == at_limit
    expected = frame.filter(frame["connection_key"] == "conn-bad").to_dicts()[0]
    for name in ("connection_key", "connection_status", "customer_id", "provider_id"):
        assert payload[name] == expected[name], name
    assert "truncated" not in outcome.quarantined["payload"].item()


def test_the_readme_states_the_payload_cap_as_declared() -> None:
    section = doc_section("Decoding limits")
    assert f"up to {MAX_QUARANTINED_VALUE_CHARS:,} characters" in section
    assert "`MAX_QUARANTINED_VALUE_CHARS`" in section
    assert "… [truncated, N characters]" in section
