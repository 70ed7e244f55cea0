"""sessions_from_source: session records from the application, shaped as ledger rows."""

import datetime as dt

from connections_pipeline.transform.ledger import sessions_from_source

UTC = dt.UTC


def _record(session_id: str | None, **overrides: object) -> dict:
    record = {
        "session_id": session_id,
        "connect_url": "https://connect.tryfinch.com/authorize?session=x",
        "customer_id": "cust-1",
        "customer_name": "Customer One",
        "products": ["directory", "company"],
        "created_at": "2026-03-01T10:00:00Z",
        "expires_at": "2026-05-30T10:00:00Z",
    }
    record.update(overrides)
    return record


def test_defaults_and_normalisation() -> None:
    frame = sessions_from_source([_record("s-1")], created_by="token_source").sessions
    row = frame.row(0, named=True)
    assert row["kind"] == "connect"
    assert row["status"] == "pending"
    assert row["products"] == "company,directory"
    assert row["created_by"] == "token_source"
    assert row["created_at"] == dt.datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert row["expires_at"] == dt.datetime(2026, 5, 30, 10, tzinfo=UTC)
    assert row["completed_at"] is None
    assert row["reauth_connection_id"] is None


def test_reauthenticate_sessions_point_at_their_connection() -> None:
    frame = sessions_from_source(
        [_record("s-r", kind="reauthenticate", connection_id="conn-7", status=None)], "app"
    ).sessions
    row = frame.row(0, named=True)
    assert row["kind"] == "reauthenticate"
    assert row["reauth_connection_id"] == "conn-7"


def test_untrackable_rows_are_rejected_with_their_place_and_duplicates_keep_the_last() -> None:
    records = [
        _record(None),
        _record("s-no-created", created_at=None),
        _record("s-bad-expiry", expires_at="soon"),
        _record("s-1", customer_name="First"),
        _record("s-1", customer_name="Second"),
        _record("  ", created_at="2026-13-45T99:00:00Z"),
    ]
    places = [f"sessions.jsonl line {n}" for n in range(1, len(records) + 1)]
    result = sessions_from_source(records, "app", places)
    frame = result.sessions
    assert frame["session_id"].to_list() == ["s-1"]
    assert frame["customer_name"].to_list() == ["Second"]
    rejected = [(place, reason) for place, _, reason in result.rejected]
    assert rejected == [
        ("sessions.jsonl line 1", "no session_id"),
        ("sessions.jsonl line 2", "no created_at"),
        ("sessions.jsonl line 3", "expires_at is not an ISO 8601 time"),
        ("sessions.jsonl line 6", "no session_id; created_at is not an ISO 8601 time"),
    ]
    assert [record for _, record, _ in result.rejected][2] is records[2]


def test_rows_are_named_by_number_without_locations() -> None:
    result = sessions_from_source([_record("s-1"), _record("s-2", created_at="yesterday")], "a")
    assert [(place, reason) for place, _, reason in result.rejected] == [
        ("row 2", "created_at is not an ISO 8601 time")
    ]


def test_mixed_timestamp_shapes_in_one_batch_are_all_kept() -> None:
    """A SQL source hands over datetimes, a file hands over text; neither may drop the other."""
    frame = sessions_from_source(
        [
            _record("s-naive", created_at="2026-03-01T09:00:00"),
            _record("s-zulu", created_at="2026-03-01T10:00:00Z"),
            _record("s-datetime", created_at=dt.datetime(2026, 3, 1, 11, tzinfo=UTC)),
            _record("s-offset", created_at="2026-03-01T14:00:00+02:00"),
        ],
        "app",
    ).sessions
    created = dict(frame.select("session_id", "created_at").iter_rows())
    assert created == {
        "s-naive": dt.datetime(2026, 3, 1, 9, tzinfo=UTC),
        "s-zulu": dt.datetime(2026, 3, 1, 10, tzinfo=UTC),
        "s-datetime": dt.datetime(2026, 3, 1, 11, tzinfo=UTC),
        "s-offset": dt.datetime(2026, 3, 1, 12, tzinfo=UTC),
    }
