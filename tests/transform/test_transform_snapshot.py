"""build_snapshot: one row per connection, disconnection rules, carried rows, staged rows."""

import datetime as dt

import polars as pl
from transform_helpers import (
    COLUMNS,
    T0,
    at,
    company,
    failed,
    introspection,
    jobs,
    ok,
    previous,
    previous_row,
    previous_token,
    previous_tokens,
    providers,
    raw_row,
    revoked,
    row_of,
    session,
    sessions,
    snapshot,
    token_source,
)

from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA, ENTITIES_SCHEMA
from connections_pipeline.transform.validate import split_valid
from connections_pipeline.warehouse.columns import polars_schema


def _keys(frame: pl.DataFrame) -> list[str]:
    return frame["connection_key"].to_list()


# --- several tokens, one connection -------------------------------------------------------


def test_several_tokens_of_one_connection_make_one_row_with_the_freshest_tokens_view() -> None:
    source = token_source(
        {"token_fingerprint": "fp-old", "issued_at": at(-24 * 30)},
        {"token_fingerprint": "fp-new", "issued_at": at(-2)},
        {"token_fingerprint": "fp-mid", "issued_at": at(-24)},
    )
    result = snapshot(
        ok("fp-new", introspection("conn-a", products=("company", "directory", "payment"))),
        ok("fp-old", introspection("conn-a", products=("directory",), status="reauth")),
        ok("fp-mid", introspection("conn-a", products=("company",))),
        source=source,
    )
    assert _keys(result.connections) == ["conn-a"]
    row = row_of(result.connections, "conn-a")
    assert row["products"] == "company,directory,payment"
    assert row["connection_status"] == "connected"
    assert row["working_token_fingerprint"] == "fp-new"
    assert row["token_count"] == 3
    assert sorted(result.tokens["token_fingerprint"]) == ["fp-mid", "fp-new", "fp-old"]
    assert set(result.tokens["connection_id"]) == {"conn-a"}


def test_a_token_without_issue_time_loses_to_one_with_it() -> None:
    source = token_source(
        {"token_fingerprint": "fp-a-undated"},
        {"token_fingerprint": "fp-z-dated", "issued_at": at(-24 * 365)},
    )
    result = snapshot(
        ok("fp-a-undated", introspection("conn-a", products=("directory",))),
        ok("fp-z-dated", introspection("conn-a", products=("company",))),
        source=source,
    )
    assert row_of(result.connections, "conn-a")["working_token_fingerprint"] == "fp-z-dated"


def test_a_revoked_newer_token_does_not_hide_a_working_older_one() -> None:
    source = token_source(
        {"token_fingerprint": "fp-working", "issued_at": at(-100)},
        {"token_fingerprint": "fp-revoked", "issued_at": at(-1), "source_connection_id": "conn-a"},
    )
    result = snapshot(
        ok("fp-working", introspection("conn-a")), revoked("fp-revoked"), source=source
    )
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "live"
    assert row["working_token_fingerprint"] == "fp-working"
    assert row["token_count"] == 2
    assert row["disconnected_at"] is None


# --- disconnection ------------------------------------------------------------------------


def _known(connection_id: str = "conn-a", *fingerprints: str) -> dict:
    fingerprints = fingerprints or ("fp-a",)
    return {
        "prior": previous(previous_row(connection_id)),
        "prior_tokens": previous_tokens(
            *(previous_token(fp, connection_id) for fp in fingerprints)
        ),
    }


def test_known_connection_whose_tokens_all_answer_invalid_token_is_disconnected() -> None:
    result = snapshot(revoked("fp-a"), revoked("fp-b"), **_known("conn-a", "fp-a", "fp-b"))
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "disconnected"
    assert row["connection_status"] == "disconnected"
    assert row["disconnected_at"] == T0
    assert row["needs_action"] is False
    assert row["sync_overdue"] is False
    assert row["token_count"] == 2
    # What the earlier run knew is kept; "seen" stops at the last time it was seen live.
    assert row["company_name"] == "Legal conn-a"
    assert row["first_seen_at"] == at(-24 * 60)
    assert row["last_seen_at"] == at(-24)
    assert row["last_error"] is None


def test_one_working_token_keeps_a_known_connection_live() -> None:
    result = snapshot(
        revoked("fp-a"), ok("fp-b", introspection("conn-a")), **_known("conn-a", "fp-a")
    )
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "live"
    assert row["working_token_fingerprint"] == "fp-b"


def test_revoked_plus_transient_failure_is_not_a_disconnection() -> None:
    result = snapshot(revoked("fp-a"), failed("fp-b"), **_known("conn-a", "fp-a", "fp-b"))
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "live"
    assert row["disconnected_at"] is None
    assert row["last_error"] == "not refreshed: token answered failed"


def test_source_marked_disconnection_is_recorded_for_a_never_seen_connection() -> None:
    source = token_source(
        {
            "token_fingerprint": "fp-x",
            "source_connection_id": "conn-gone",
            "source_disconnected": True,
        }
    )
    result = snapshot(revoked("fp-x"), source=source)
    row = row_of(result.connections, "conn-gone")
    assert row["state"] == "disconnected"
    assert row["connection_id"] == "conn-gone"
    assert row["disconnected_at"] == T0
    assert row["first_seen_at"] == T0
    assert row["last_seen_at"] == T0
    assert row["token_count"] == 1


def test_a_token_without_connection_id_answering_401_is_not_invented_into_a_connection() -> None:
    source = token_source(
        {"token_fingerprint": "fp-nothing-known"},
        {"token_fingerprint": "fp-id-only", "source_connection_id": "conn-hint"},
        {"token_fingerprint": "fp-flag-only", "source_disconnected": True},
    )
    result = snapshot(
        revoked("fp-nothing-known"), revoked("fp-id-only"), revoked("fp-flag-only"), source=source
    )
    # Only the token whose record names its connection makes one: a disconnected one.
    assert result.connections.select("connection_key", "state").rows() == [
        ("conn-hint", "disconnected")
    ]
    # The tokens are still accounted for, with what is known about them.
    outcomes = dict(result.tokens.select("token_fingerprint", "last_outcome").iter_rows())
    assert outcomes == {
        "fp-nothing-known": "invalid_token",
        "fp-id-only": "invalid_token",
        "fp-flag-only": "invalid_token",
    }


def test_source_disconnected_flag_with_a_transient_failure_does_not_disconnect() -> None:
    source = token_source(
        {"token_fingerprint": "fp-x", "source_connection_id": "conn-x", "source_disconnected": True}
    )
    result = snapshot(failed("fp-x"), source=source)
    assert result.connections.is_empty()


def test_disconnection_time_is_carried_from_the_run_that_saw_it() -> None:
    prior = previous(
        previous_row(
            "conn-a",
            state="disconnected",
            connection_status="disconnected",
            disconnected_at=at(-24 * 3),
            last_seen_at=at(-24 * 4),
        )
    )
    still_revoked = snapshot(
        revoked("fp-a"), prior=prior, prior_tokens=previous_tokens(previous_token("fp-a", "conn-a"))
    )
    tokens_gone = snapshot(prior=prior)
    for result in (still_revoked, tokens_gone):
        row = row_of(result.connections, "conn-a")
        assert row["state"] == "disconnected"
        assert row["disconnected_at"] == at(-24 * 3)
        assert row["last_seen_at"] == at(-24 * 4)
        assert row["first_seen_at"] == at(-24 * 60)


def test_a_disconnected_connection_that_works_again_is_live() -> None:
    prior = previous(
        previous_row(
            "conn-a",
            state="disconnected",
            connection_status="disconnected",
            disconnected_at=at(-48),
        )
    )
    result = snapshot(ok("fp-new", introspection("conn-a")), prior=prior)
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "live"
    assert row["disconnected_at"] is None
    assert row["first_seen_at"] == at(-24 * 60)


# --- transient failures -------------------------------------------------------------------


def test_transient_failure_keeps_the_previous_row_with_last_error() -> None:
    prior_row = previous_row("conn-a", connection_status="reauth", products="company,payment")
    result = snapshot(
        failed("fp-a", outcome="needs_reauth"),
        prior=previous(prior_row),
        prior_tokens=previous_tokens(previous_token("fp-a", "conn-a")),
    )
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "live"
    assert row["last_error"] == "not refreshed: token answered needs_reauth"
    for column in (
        "company_name",
        "customer_id",
        "products",
        "connected_at",
        "last_synced_at",
        "connection_type",
        "entity_count",
        "first_seen_at",
        "company_fetched_at",
    ):
        assert row[column] == prior_row[column], column
    assert row["connection_status"] == "reauth"
    assert row["needs_action"] is True
    assert row["disconnected_at"] is None
    token = result.tokens.row(0, named=True)
    assert token["last_outcome"] == "needs_reauth"
    assert token["last_ok_at"] == at(-24)


def test_an_old_error_is_cleared_when_the_connection_answers_again() -> None:
    prior = previous(previous_row("conn-a", last_error="not refreshed: token answered failed"))
    result = snapshot(ok("fp-a", introspection("conn-a")), prior=prior)
    assert row_of(result.connections, "conn-a")["last_error"] is None


# --- columns of a live row ----------------------------------------------------------------


def test_new_live_connection_gets_every_column_from_this_runs_answers() -> None:
    result = snapshot(
        raw_row("providers", None, providers(("gusto", "Gusto"))),
        ok("fp-a", introspection("conn-a", last_sync=at(-3), auth_types=("credential",))),
        raw_row("jobs", "fp-a", jobs(at(-24 * 10)), connection_id="conn-a"),
        raw_row("company", "fp-a", company("Acme LLC"), connection_id="conn-a"),
    )
    row = row_of(result.connections, "conn-a")
    assert row["state"] == "live"
    assert row["company_name"] == "Acme LLC"
    assert row["company_fetched_at"] == T0
    assert row["provider_name"] == "Gusto"
    assert row["connected_at"] == at(-24 * 10)
    assert row["last_synced_at"] == at(-3)
    assert row["connection_type"] == "Automated"
    assert row["expected_refresh_hours"] == 24
    assert row["sync_overdue"] is False
    assert row["needs_action"] is False
    assert row["entity_count"] == 1
    assert row["first_seen_at"] == T0
    assert row["last_seen_at"] == T0
    assert row["run_id"] == "run-test"
    assert result.connections.columns == COLUMNS


def test_steady_state_reuses_the_previous_company_name_connection_time_and_provider() -> None:
    prior = previous(previous_row("conn-a", first_seen_at=at(-24 * 60)))
    result = snapshot(ok("fp-a", introspection("conn-a")), prior=prior)
    row = row_of(result.connections, "conn-a")
    assert row["company_name"] == "Legal conn-a"
    assert row["company_fetched_at"] == at(-24)
    assert row["connected_at"] == at(-24 * 90)
    assert row["provider_name"] == "Gusto"
    assert row["first_seen_at"] == at(-24 * 60)
    assert row["last_seen_at"] == T0


def test_multi_entity_connection_shows_the_multi_entity_name_and_count() -> None:
    result = snapshot(
        ok("fp-a", introspection("conn-a", entities=3)),
        raw_row("company", "fp-a", company("Parent Co"), connection_id="conn-a"),
    )
    row = row_of(result.connections, "conn-a")
    assert row["company_name"] == "Multi-entity connection"
    assert row["entity_count"] == 3
    assert result.entities.height == 3
    assert set(result.entities["connection_id"]) == {"conn-a"}


def test_a_former_multi_entity_name_is_not_reused_as_a_legal_name() -> None:
    prior = previous(previous_row("conn-a", company_name="Multi-entity connection", entity_count=2))
    result = snapshot(ok("fp-a", introspection("conn-a", entities=1)), prior=prior)
    assert row_of(result.connections, "conn-a")["company_name"] == "Entity 0 of conn-a"


def test_entity_count_is_at_least_one() -> None:
    result = snapshot(ok("fp-a", introspection("conn-a", entities=0)))
    assert row_of(result.connections, "conn-a")["entity_count"] == 1


def test_assisted_connection_time_falls_back_to_its_first_token() -> None:
    source = token_source(
        {"token_fingerprint": "fp-1", "issued_at": at(-24 * 20)},
        {"token_fingerprint": "fp-2", "issued_at": at(-24 * 5)},
    )
    result = snapshot(
        ok("fp-1", introspection("conn-a", auth_types=("assisted",), last_sync=at(-24 * 6))),
        ok("fp-2", introspection("conn-a", auth_types=("assisted",), last_sync=at(-24 * 6))),
        source=source,
    )
    row = row_of(result.connections, "conn-a")
    assert row["connected_at"] == at(-24 * 20)
    assert row["connection_type"] == "Assisted"
    assert row["expected_refresh_hours"] == 168
    assert row["sync_overdue"] is False


def test_needs_action_and_overdue_in_the_snapshot() -> None:
    result = snapshot(
        ok("fp-r", introspection("conn-reauth", status="reauth", last_sync=at(-2))),
        ok("fp-o", introspection("conn-overdue", last_sync=at(-25))),
    )
    reauth = row_of(result.connections, "conn-reauth")
    overdue = row_of(result.connections, "conn-overdue")
    assert (reauth["needs_action"], reauth["sync_overdue"]) == (True, False)
    assert (overdue["needs_action"], overdue["sync_overdue"]) == (False, True)


# --- staged sessions ----------------------------------------------------------------------


def test_pending_session_is_a_staged_row() -> None:
    result = snapshot(
        raw_row("providers", None, providers(("gusto", "Gusto"))),
        ledger=sessions(session("sess-1")),
    )
    row = row_of(result.connections, "sess-1")
    assert row["state"] == "staged"
    assert row["connection_id"] is None
    assert row["session_id"] == "sess-1"
    assert row["customer_name"] == "New Customer"
    assert row["provider_name"] == "Gusto"
    assert row["needs_action"] is False
    assert row["first_seen_at"] == T0
    assert result.session_progress["status"].to_list() == ["pending"]


def test_session_completed_by_a_new_connection_links_it_and_is_no_longer_staged() -> None:
    result = snapshot(
        ok("fp-n", introspection("conn-new", customer_id="cust-new")),
        raw_row("jobs", "fp-n", jobs(at(-2)), connection_id="conn-new"),
        ledger=sessions(session("sess-1", created_at=at(-24))),
    )
    assert _keys(result.connections) == ["conn-new"]
    assert row_of(result.connections, "conn-new")["session_id"] == "sess-1"
    progress = result.session_progress.row(0, named=True)
    assert (progress["status"], progress["connection_id"]) == ("completed", "conn-new")
    assert progress["completed_at"] == at(-2)


def test_staged_row_keeps_first_seen_and_is_not_carried_once_expired() -> None:
    staged_prior = previous_row(
        "sess-1",
        state="staged",
        connection_id=None,
        session_id="sess-1",
        first_seen_at=at(-20),
        session_expires_at=at(1),
    )
    open_result = snapshot(
        prior=previous(staged_prior),
        ledger=sessions(session("sess-1", expires_at=at(1))),
    )
    assert row_of(open_result.connections, "sess-1")["first_seen_at"] == at(-20)
    expired_result = snapshot(
        prior=previous(staged_prior),
        ledger=sessions(session("sess-1", expires_at=at(1))),
        as_of=at(2),
    )
    assert expired_result.connections.is_empty()
    assert expired_result.session_progress["status"].to_list() == ["expired"]


# --- the whole frame ----------------------------------------------------------------------


def test_a_mixed_run_has_the_warehouse_schema_and_validates_cleanly() -> None:
    prior = previous(
        previous_row("conn-live"),
        previous_row("conn-revoked"),
        previous_row("conn-flaky"),
    )
    prior_tokens = previous_tokens(
        previous_token("fp-live", "conn-live"),
        previous_token("fp-revoked", "conn-revoked"),
        previous_token("fp-flaky", "conn-flaky"),
    )
    result = snapshot(
        raw_row("providers", None, providers(("gusto", "Gusto"))),
        ok("fp-live", introspection("conn-live")),
        revoked("fp-revoked"),
        failed("fp-flaky"),
        ok("fp-new", introspection("conn-new", entities=2, customer_id="cust-new")),
        raw_row("introspect", "fp-garbage", encoded="{oops"),
        prior=prior,
        prior_tokens=prior_tokens,
        ledger=sessions(session("sess-open", customer_id="cust-other")),
    )
    assert result.connections.schema == polars_schema("finch_connections")
    assert _keys(result.connections) == sorted(_keys(result.connections))
    states = dict(result.connections.select("connection_key", "state").iter_rows())
    assert states == {
        "conn-flaky": "live",
        "conn-live": "live",
        "conn-new": "live",
        "conn-revoked": "disconnected",
        "sess-open": "staged",
    }
    assert result.rejected["token_fingerprint"].to_list() == ["fp-garbage"]
    assert result.rejected["record_kind"].to_list() == ["introspection"]
    outcome = split_valid(result.connections, CONNECTIONS_SCHEMA, "connection_key")
    assert outcome.passed, outcome.quarantined.to_dicts()
    assert split_valid(result.entities, ENTITIES_SCHEMA, "entity_id").passed
    assert result.tokens.columns == [
        "token_fingerprint",
        "connection_id",
        "first_seen_at",
        "last_seen_at",
        "last_outcome",
        "last_ok_at",
        "last_error",
    ]
    tokens = {row["token_fingerprint"]: row for row in result.tokens.iter_rows(named=True)}
    assert tokens["fp-live"]["first_seen_at"] == at(-24 * 60)
    assert tokens["fp-live"]["last_ok_at"] == T0
    assert tokens["fp-new"]["first_seen_at"] == T0
    assert tokens["fp-revoked"]["last_ok_at"] == at(-24)


def test_rerunning_the_same_inputs_gives_the_same_snapshot() -> None:
    args = (
        ok("fp-a", introspection("conn-a")),
        ok("fp-b", introspection("conn-b", entities=2)),
        revoked("fp-c"),
    )
    kwargs = {"ledger": sessions(session("sess-1")), **_known("conn-c", "fp-c")}
    first, second = snapshot(*args, **kwargs), snapshot(*args, **kwargs)
    assert first.connections.equals(second.connections)
    assert first.tokens.sort("token_fingerprint").equals(second.tokens.sort("token_fingerprint"))


def test_as_of_is_the_snapshot_time_everywhere() -> None:
    later = T0 + dt.timedelta(days=1)
    result = snapshot(ok("fp-a", introspection("conn-a", last_sync=at(-1))), as_of=later)
    row = row_of(result.connections, "conn-a")
    assert row["last_seen_at"] == later
    assert row["sync_overdue"] is True
