"""The Connections page complete from the first sync, from an application's own records.

Seeds no other test uses. The token file holds what an application stores from
`POST /auth/token` (no revoked flag: finding that out is the pipeline's job); the sessions
file what it sent to `POST /connect/sessions` (no status, no connection). Every cell that
Finch's API or those records can tell must equal the emulator's ground truth, on the first
sync and after the emulator moves on; the cells that cannot be known are named here and in
README, with the reason.
"""

from pathlib import Path

import polars as pl
import pytest
from completeness_helpers import (
    AUTH_TOKEN_DETAILS,
    TOKEN_MINIMUM,
    session_records,
    token_records,
    write_jsonl,
)
from sync.sync_helpers import make_warehouse, served_sandbox, truth_differences

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.resources import TokenSourceResource
from connections_pipeline.sync.run import SyncSettings
from connections_pipeline.transform.finch_clock import ClockRule
from connections_pipeline.transform.guards import HoldThresholds

pytestmark = pytest.mark.slow

# A connection revoked before any sync saw it working: Finch answers nothing for its tokens.
# The records give its id and its first token's issue time (its connection time)...
KNOWN_FROM_RECORDS = {
    "state",
    "connection_id",
    "connection_status",
    "needs_action",
    "sync_overdue",
    "session_expires_at",
    "connected_at",
}
# ...and, when the application kept what POST /auth/token answered, its customer and
# provider, and so the Connect session that created it.
KNOWN_FROM_AUTH_TOKEN = {
    "customer_id",
    "customer_name",
    "provider_id",
    "provider_name",
    "company_id",
    "session_id",
}
# The accepted run of the second sync: a week moves many connections at once.
LENIENT = SyncSettings(
    thresholds=HoldThresholds(max_live_drop_share=1.0, max_token_failure_share=1.0),
    # The emulator advanced days ahead of this machine's clock, and a token file does not
    # say that it is an emulator: its clock is simulated.
    clock=ClockRule(simulated_clock="the served Finch sandbox's simulated clock"),
)


def _sources(tmp_path: Path, sandbox, fields: tuple[str, ...]) -> TokenSourceResource:
    tokens = write_jsonl(tmp_path / "tokens.jsonl", token_records(sandbox.tokens(), fields))
    sessions = write_jsonl(tmp_path / "sessions.jsonl", session_records(sandbox.sessions()))
    return TokenSourceResource(tokens_file=str(tokens), sessions_file=str(sessions))


def _never_seen(sandbox) -> set[str]:
    return {row["connection_key"] for row in sandbox.truth() if row["state"] == "disconnected"}


def _sessions_into(sandbox, connections: set[str]) -> set[str]:
    """Connect sessions the employer completed into one of `connections`."""
    return {
        session["session_id"]
        for session in sandbox.sessions()
        if session["kind"] == "connect" and session["connection_id"] in connections
    }


@pytest.mark.parametrize(
    ("kind", "seed"), [("duckdb", 1301), ("postgres", 1302)], ids=["duckdb", "postgres"]
)
def test_from_tokens_with_their_connection_and_issue_time_only(
    kind: str, seed: int, tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse(kind, tmp_path, postgres_url)
    with served_sandbox(seed=seed, connections=150) as (sandbox, finch, _):
        never_seen = _never_seen(sandbox)
        assert len(never_seen) > 3, "the dataset should have connections revoked before any sync"
        source = _sources(tmp_path, sandbox, TOKEN_MINIMUM)
        sync_with_resources("run-1", finch, source, warehouse)
        first = truth_differences(
            sandbox.truth(), warehouse.read_current(), never_seen, KNOWN_FROM_RECORDS
        )

        sandbox.advance(7)
        source = _sources(tmp_path, sandbox, TOKEN_MINIMUM)
        sync_with_resources("run-2", finch, source, warehouse, LENIENT)
        later_never_seen = _never_seen(sandbox) - {
            row["connection_key"]
            for row in warehouse.read_table("finch_connections_history").iter_rows(named=True)
            if row["state"] == "live"
        }
        second = truth_differences(
            sandbox.truth(), warehouse.read_current(), later_never_seen, KNOWN_FROM_RECORDS
        )
        unlinkable_then = _sessions_into(sandbox, never_seen)
        unlinkable_later = _sessions_into(sandbox, later_never_seen)
    warehouse.dispose()

    # Every disconnected connection is listed from the first sync; what remains different is
    # one kind of row only: a Connect session completed into a connection revoked before any
    # sync. Without the customer on the token's record nothing links the two, so the
    # session still looks pending (Staged) while it is not.
    for differences, unlinkable in ((first, unlinkable_then), (second, unlinkable_later)):
        extra_staged = {key for key, column, was, _ in differences if was == "absent"}
        assert extra_staged <= unlinkable, differences
        assert [d for d in differences if d[2] != "absent"] == []


def test_with_what_auth_token_answered_every_knowable_cell_matches(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    with served_sandbox(seed=1303, connections=150) as (sandbox, finch, _):
        never_seen = _never_seen(sandbox)
        source = _sources(tmp_path, sandbox, (*TOKEN_MINIMUM, *AUTH_TOKEN_DETAILS))
        sync_with_resources("run-1", finch, source, warehouse)
        differences = truth_differences(
            sandbox.truth(),
            warehouse.read_current(),
            never_seen,
            KNOWN_FROM_RECORDS | KNOWN_FROM_AUTH_TOKEN,
        )
    warehouse.dispose()
    assert differences == []


def test_a_session_completed_into_a_connection_revoked_before_the_first_sync(
    tmp_path: Path, postgres_url: str
) -> None:
    warehouse = make_warehouse("postgres", tmp_path, postgres_url)
    with served_sandbox(seed=1304, connections=60) as (sandbox, finch, _):
        staged = [row for row in sandbox.truth() if row["state"] == "staged"]
        session_id = staged[0]["connection_key"]
        completed = sandbox.complete_session(session_id)
        sandbox.disconnect(f"Bearer {completed['access_token']}")
        truth = {row["connection_key"]: row for row in sandbox.truth()}
        assert session_id not in truth
        expected = truth[completed["connection_id"]]

        source = _sources(tmp_path, sandbox, (*TOKEN_MINIMUM, *AUTH_TOKEN_DETAILS))
        sync_with_resources("run-1", finch, source, warehouse)
    current = warehouse.read_current()
    ledger = warehouse.read_sessions().filter(pl.col("session_id") == session_id)
    warehouse.dispose()

    assert session_id not in set(current["connection_key"]), "no Staged row for it"
    [row] = current.filter(pl.col("connection_key") == completed["connection_id"]).to_dicts()
    assert row["state"] == "disconnected"
    assert row["connection_status_label"] == "Disconnected"
    for column in ("customer_id", "customer_name", "provider_id", "provider_name", "company_id"):
        assert row[column] == expected[column], column
    assert row["session_id"] == session_id
    assert ledger["status"].to_list() == ["completed"]
    assert ledger["connection_id"].to_list() == [completed["connection_id"]]
