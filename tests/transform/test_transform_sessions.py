"""session_progress and staged_rows: pending → completed | expired, and the Staged rows."""

import datetime as dt

import polars as pl
import pytest
from transform_helpers import T0, at, previous, previous_row, session, sessions

from connections_pipeline.transform.sessions import session_progress, staged_rows

UTC_DATETIME = pl.Datetime("us", "UTC")
TICK = dt.timedelta(microseconds=1)


def _connections(*rows: dict) -> pl.DataFrame:
    """The columns session_progress reads from the run's connections."""
    schema = {
        "connection_id": pl.String,
        "customer_id": pl.String,
        "state": pl.String,
        "connection_status": pl.String,
        "connected_at": UTC_DATETIME,
        "first_seen_at": UTC_DATETIME,
    }
    defaults = {"state": "live", "connection_status": "connected", "first_seen_at": None}
    return pl.DataFrame([{**defaults, **row} for row in rows], schema=schema, orient="row")


def _progress(
    ledger: pl.DataFrame, connections: pl.DataFrame | None = None, as_of: dt.datetime = T0
) -> dict[str, dict]:
    result = session_progress(
        ledger, connections if connections is not None else _connections(), as_of
    )
    assert result.height == ledger.height
    return {row["session_id"]: row for row in result.iter_rows(named=True)}


def test_open_session_without_a_connection_stays_pending() -> None:
    row = _progress(sessions(session("s-1")))["s-1"]
    assert row["status"] == "pending"
    assert row["connection_id"] is None
    assert row["completed_at"] is None
    assert row["time_to_connect_seconds"] is None
    assert row["status_updated_at"] == at(-24)


def test_connection_of_the_customer_after_creation_completes_the_session() -> None:
    ledger = sessions(session("s-1", customer_id="cust-new", created_at=at(-24)))
    connections = _connections(
        {"connection_id": "conn-n", "customer_id": "cust-new", "connected_at": at(-20)}
    )
    row = _progress(ledger, connections)["s-1"]
    assert row["status"] == "completed"
    assert row["connection_id"] == "conn-n"
    assert row["completed_at"] == at(-20)
    assert row["time_to_connect_seconds"] == pytest.approx(4 * 3600)
    assert row["status_updated_at"] == T0


def test_connection_at_exactly_the_creation_time_counts() -> None:
    ledger = sessions(session("s-1", created_at=at(-24)))
    at_creation = _connections(
        {"connection_id": "c", "customer_id": "cust-new", "connected_at": at(-24)}
    )
    before = _connections(
        {"connection_id": "c", "customer_id": "cust-new", "connected_at": at(-24) - TICK}
    )
    assert _progress(ledger, at_creation)["s-1"]["status"] == "completed"
    assert _progress(ledger, before)["s-1"]["status"] == "pending"


def test_other_customers_connections_do_not_complete_a_session() -> None:
    connections = _connections(
        {"connection_id": "c", "customer_id": "someone-else", "connected_at": at(-1)},
        {"connection_id": "legacy", "customer_id": None, "connected_at": at(-1)},
    )
    assert _progress(sessions(session("s-1")), connections)["s-1"]["status"] == "pending"


def test_unknown_connection_time_falls_back_to_first_seen_then_now() -> None:
    ledger = sessions(session("s-1", created_at=at(-24)), session("s-2", customer_id="cust-2"))
    connections = _connections(
        {
            "connection_id": "c1",
            "customer_id": "cust-new",
            "connected_at": None,
            "first_seen_at": at(-3),
        },
        {"connection_id": "c2", "customer_id": "cust-2", "connected_at": None},
    )
    progress = _progress(ledger, connections)
    assert progress["s-1"]["completed_at"] == at(-3)
    assert progress["s-2"]["completed_at"] == T0


def test_ledger_completion_is_kept_without_any_connection() -> None:
    ledger = sessions(
        session(
            "s-1",
            status="completed",
            connection_id="conn-x",
            completed_at=at(-10),
            status_updated_at=at(-9),
            expires_at=at(-1),
        )
    )
    row = _progress(ledger)["s-1"]
    assert row["status"] == "completed"
    assert row["connection_id"] == "conn-x"
    assert row["completed_at"] == at(-10)
    assert row["status_updated_at"] == at(-9)


def test_expiry_boundary() -> None:
    ledger = sessions(
        session("s-at", expires_at=T0),
        session("s-after", expires_at=T0 + TICK),
        session("s-before", expires_at=T0 - TICK),
    )
    progress = _progress(ledger)
    assert progress["s-at"]["status"] == "expired"
    assert progress["s-before"]["status"] == "expired"
    assert progress["s-after"]["status"] == "pending"
    assert progress["s-at"]["status_updated_at"] == T0
    assert progress["s-at"]["completed_at"] is None


def test_connection_made_before_expiry_wins_over_expiry() -> None:
    ledger = sessions(session("s-1", created_at=at(-48), expires_at=at(-1)))
    connections = _connections(
        {"connection_id": "c", "customer_id": "cust-new", "connected_at": at(-30)}
    )
    assert _progress(ledger, connections)["s-1"]["status"] == "completed"


def test_two_sessions_of_one_customer_each_take_their_own_connection() -> None:
    ledger = sessions(
        session("s-first", created_at=at(-48)), session("s-second", created_at=at(-10))
    )
    one = _connections(
        {"connection_id": "conn-early", "customer_id": "cust-new", "connected_at": at(-20)}
    )
    progress = _progress(ledger, one)
    assert progress["s-first"]["status"] == "completed"
    assert progress["s-first"]["connection_id"] == "conn-early"
    assert progress["s-second"]["status"] == "pending"

    two = _connections(
        {"connection_id": "conn-late", "customer_id": "cust-new", "connected_at": at(-5)},
        {"connection_id": "conn-early", "customer_id": "cust-new", "connected_at": at(-20)},
    )
    progress = _progress(ledger, two)
    assert progress["s-first"]["connection_id"] == "conn-early"
    assert progress["s-second"]["connection_id"] == "conn-late"
    assert progress["s-second"]["completed_at"] == at(-5)


def _reauth(session_id: str = "r-1", **overrides: object) -> dict:
    return session(
        session_id,
        kind="reauthenticate",
        reauth_connection_id="conn-a",
        customer_id="cust-a",
        **overrides,
    )


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        ("live", "connected", "completed"),
        ("live", "reauth", "pending"),
        ("live", "error_permissions", "pending"),
        ("disconnected", "connected", "pending"),
    ],
)
def test_reauthenticate_session_completes_when_its_connection_is_healthy(
    state: str, status: str, expected: str
) -> None:
    connections = _connections(
        {
            "connection_id": "conn-a",
            "customer_id": "cust-a",
            "connected_at": at(-5000),
            "state": state,
            "connection_status": status,
        }
    )
    row = _progress(sessions(_reauth()), connections)["r-1"]
    assert row["status"] == expected
    assert row["connection_id"] == ("conn-a" if expected == "completed" else None)
    assert row["completed_at"] == (T0 if expected == "completed" else None)


def test_reauthenticate_session_is_not_completed_by_a_new_connection_of_the_customer() -> None:
    connections = _connections(
        {"connection_id": "conn-other", "customer_id": "cust-a", "connected_at": at(-1)}
    )
    assert _progress(sessions(_reauth()), connections)["r-1"]["status"] == "pending"


def _providers() -> pl.DataFrame:
    return pl.DataFrame({"provider_id": ["gusto"], "provider_name": ["Gusto"]})


def test_staged_rows_are_pending_connect_sessions_only() -> None:
    ledger = sessions(
        session("s-pending"),
        session("s-expired", expires_at=T0 - TICK),
        session("s-done", status="completed", connection_id="c", completed_at=at(-2)),
        _reauth("r-pending"),
    )
    progress = session_progress(ledger, _connections(), T0)
    staged = staged_rows(progress, previous(), _providers())
    assert staged["connection_key"].to_list() == ["s-pending"]
    row = staged.row(0, named=True)
    assert row["state"] == "staged"
    assert row["session_id"] == "s-pending"
    assert row["customer_id"] == "cust-new"
    assert row["customer_name"] == "New Customer"
    assert row["provider_name"] == "Gusto"
    assert row["session_expires_at"] == at(-24) + dt.timedelta(minutes=129_600)
    assert row["first_seen_at"] is None


def test_staged_rows_keep_their_first_seen_time() -> None:
    prior = previous(
        previous_row(
            "s-pending",
            state="staged",
            connection_id=None,
            session_id="s-pending",
            first_seen_at=at(-23),
        )
    )
    progress = session_progress(sessions(session("s-pending")), _connections(), T0)
    staged = staged_rows(progress, prior, _providers())
    assert staged["first_seen_at"].to_list() == [at(-23)]


def _unknown(session_id: str = "unknown-1", **overrides: object) -> dict:
    """An attempt whose outcome is unknown: no link, status `unknown`."""
    return session(session_id, connect_url=None, status="unknown", **overrides)


def test_an_unknown_attempt_is_left_exactly_as_it_is() -> None:
    # A connection of the customer appears, and later the attempt's would-be expiry passes:
    # neither tells whether Finch created that link, so the row never changes.
    connections = _connections(
        {"connection_id": "conn-n", "customer_id": "cust-new", "connected_at": at(-20)}
    )
    ledger = sessions(_unknown())
    for as_of in (T0, T0 + dt.timedelta(days=200)):
        row = _progress(ledger, connections, as_of)["unknown-1"]
        assert row["status"] == "unknown"
        assert row["connection_id"] is None
        assert row["completed_at"] is None
        assert row["time_to_connect_seconds"] is None
        assert row["status_updated_at"] == at(-24)


def test_an_unknown_attempt_does_not_take_a_pending_sessions_connection() -> None:
    ledger = sessions(_unknown(created_at=at(-30)), session("s-forced", created_at=at(-24)))
    connections = _connections(
        {"connection_id": "conn-n", "customer_id": "cust-new", "connected_at": at(-20)}
    )
    progress = _progress(ledger, connections)
    assert progress["s-forced"]["status"] == "completed"
    assert progress["s-forced"]["connection_id"] == "conn-n"
    assert progress["unknown-1"]["status"] == "unknown"


def test_an_unknown_reauthentication_attempt_is_not_healed_by_its_connection() -> None:
    connections = _connections(
        {"connection_id": "conn-a", "customer_id": "cust-a", "connected_at": at(-5000)}
    )
    row = _reauth("unknown-r", connect_url=None, status="unknown")
    assert _progress(sessions(row), connections)["unknown-r"]["status"] == "unknown"


def test_an_unknown_attempt_is_never_a_staged_row() -> None:
    ledger = sessions(_unknown(), session("s-pending"))
    progress = session_progress(ledger, _connections(), T0)
    staged = staged_rows(progress, previous(), _providers())
    assert staged["connection_key"].to_list() == ["s-pending"]
