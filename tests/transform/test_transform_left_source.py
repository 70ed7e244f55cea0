"""A known connection whose tokens have all left the token source: kept, marked no longer
tracked (stale, `left_source_at`, the reason in `last_error`), never confused with a
connection whose tokens are listed but not polled this run."""

from typing import Any

import polars as pl
from transform.transform_helpers import (
    COLUMNS,
    RUN_ID,
    T0,
    at,
    failed,
    introspection,
    ok,
    previous,
    previous_row,
    previous_token,
    previous_tokens,
    raw_frame,
    row_of,
    sessions,
    token_source,
)

from connections_pipeline.concepts import NO_SOURCE_TOKEN
from connections_pipeline.transform.guards import Application
from connections_pipeline.transform.snapshot import Snapshot, SnapshotInputs, build_snapshot


def _sync(
    *raw_rows: dict[str, Any],
    listed: list[dict[str, Any]],
    prior: pl.DataFrame,
    prior_tokens: pl.DataFrame,
    complete: bool = True,
    unreadable: frozenset[str] = frozenset(),
    application: Application | None = None,
) -> Snapshot:
    """build_snapshot as a sync calls it: `listed` is the whole token source."""
    return build_snapshot(
        SnapshotInputs(
            run_id=RUN_ID,
            as_of=T0,
            raw=raw_frame(*raw_rows),
            token_source=token_source(*listed),
            previous=prior,
            previous_tokens=prior_tokens,
            sessions=sessions(),
            token_source_complete=complete,
            unreadable_tokens=unreadable,
            application=application or Application(),
        ),
        COLUMNS,
    )


# conn-a answers every run; conn-b's only token fp-b was known from an earlier run.
PRIOR = previous(
    previous_row("conn-a"),
    previous_row("conn-b", connection_status="reauth", needs_action=True),
)
PRIOR_TOKENS = previous_tokens(previous_token("fp-a", "conn-a"), previous_token("fp-b", "conn-b"))
A_ANSWERS = ok("fp-a", introspection("conn-a"))


def test_a_connection_with_no_token_in_the_source_is_kept_stale_with_the_reason() -> None:
    result = _sync(
        A_ANSWERS, listed=[{"token_fingerprint": "fp-a"}], prior=PRIOR, prior_tokens=PRIOR_TOKENS
    )
    gone = row_of(result.connections, "conn-b")
    before = row_of(PRIOR, "conn-b")
    # Not proven disconnected: it keeps its state and what Finch last said of it.
    assert gone["state"] == "live"
    for column in ("connection_status", "needs_action", "company_name", "last_seen_at"):
        assert gone[column] == before[column], column
    assert gone["stale"] is True
    assert gone["last_error"] == NO_SOURCE_TOKEN
    assert gone["left_source_at"] == T0
    assert row_of(result.connections, "conn-a")["left_source_at"] is None
    assert row_of(result.connections, "conn-a")["stale"] is False


def test_a_later_run_keeps_the_time_it_first_left() -> None:
    prior = previous(
        previous_row("conn-a"),
        previous_row("conn-b", stale=True, last_error=NO_SOURCE_TOKEN, left_source_at=at(-48)),
    )
    result = _sync(
        A_ANSWERS, listed=[{"token_fingerprint": "fp-a"}], prior=prior, prior_tokens=PRIOR_TOKENS
    )
    gone = row_of(result.connections, "conn-b")
    assert gone["left_source_at"] == at(-48)
    assert gone["stale"] is True and gone["last_error"] == NO_SOURCE_TOKEN


def test_a_listed_token_not_polled_this_run_is_not_a_departure() -> None:
    # fp-b is in the source but this run did not ask about it (a budget or a targeted run).
    result = _sync(
        A_ANSWERS,
        listed=[{"token_fingerprint": "fp-a"}, {"token_fingerprint": "fp-b"}],
        prior=PRIOR,
        prior_tokens=PRIOR_TOKENS,
    )
    deferred = row_of(result.connections, "conn-b")
    assert deferred["stale"] is False
    assert deferred["left_source_at"] is None
    assert deferred["last_error"] is None


def test_a_new_token_naming_the_connection_keeps_it_listed() -> None:
    # Re-authentication: the old token left, a new one the source ties to conn-b came in.
    result = _sync(
        A_ANSWERS,
        listed=[
            {"token_fingerprint": "fp-a"},
            {"token_fingerprint": "fp-b2", "source_connection_id": "conn-b"},
        ],
        prior=PRIOR,
        prior_tokens=PRIOR_TOKENS,
    )
    assert row_of(result.connections, "conn-b")["left_source_at"] is None


def test_an_unreadable_source_row_of_its_token_keeps_it_listed() -> None:
    result = _sync(
        A_ANSWERS,
        listed=[{"token_fingerprint": "fp-a"}],
        prior=PRIOR,
        prior_tokens=PRIOR_TOKENS,
        unreadable=frozenset({"fp-b"}),
    )
    row = row_of(result.connections, "conn-b")
    assert row["left_source_at"] is None and row["stale"] is False


def test_a_connection_whose_token_comes_back_is_tracked_again() -> None:
    prior = previous(
        previous_row("conn-a"),
        previous_row("conn-b", stale=True, last_error=NO_SOURCE_TOKEN, left_source_at=at(-48)),
    )
    result = _sync(
        A_ANSWERS,
        ok("fp-b", introspection("conn-b")),
        listed=[{"token_fingerprint": "fp-a"}, {"token_fingerprint": "fp-b"}],
        prior=prior,
        prior_tokens=PRIOR_TOKENS,
    )
    back = row_of(result.connections, "conn-b")
    assert back["left_source_at"] is None
    assert back["stale"] is False and back["last_error"] is None


def test_a_disconnected_connection_leaving_the_source_stays_as_it_was() -> None:
    # Applications drop revoked tokens: nothing more to say about a disconnected row.
    prior = previous(
        previous_row("conn-a"),
        previous_row(
            "conn-b",
            state="disconnected",
            connection_status="disconnected",
            disconnected_at=at(-72),
        ),
    )
    result = _sync(
        A_ANSWERS, listed=[{"token_fingerprint": "fp-a"}], prior=prior, prior_tokens=PRIOR_TOKENS
    )
    row = row_of(result.connections, "conn-b")
    assert row["state"] == "disconnected"
    assert row["left_source_at"] is None and row["stale"] is False


def test_a_partial_view_of_the_source_marks_nothing() -> None:
    # A replay or a test handing over some tokens only: absence proves nothing there.
    result = _sync(
        A_ANSWERS,
        listed=[{"token_fingerprint": "fp-a"}],
        prior=PRIOR,
        prior_tokens=PRIOR_TOKENS,
        complete=False,
    )
    row = row_of(result.connections, "conn-b")
    assert row["left_source_at"] is None and row["stale"] is False


# Re-authentication in a source that does not name connections: conn-b's old token fp-b
# was replaced by fp-b2, which no run has polled yet, so nothing says whose it is.
REAUTHENTICATED = [{"token_fingerprint": "fp-a"}, {"token_fingerprint": "fp-b2"}]


def _still_tracked(row: dict[str, Any]) -> None:
    assert row["state"] == "live"
    assert row["left_source_at"] is None
    assert row["stale"] is False
    assert row["last_error"] is None


def test_a_new_token_of_unknown_owner_not_polled_this_run_is_not_a_departure() -> None:
    # A targeted or budgeted run polled fp-a only.
    result = _sync(A_ANSWERS, listed=REAUTHENTICATED, prior=PRIOR, prior_tokens=PRIOR_TOKENS)
    _still_tracked(row_of(result.connections, "conn-b"))


def test_a_new_token_of_unknown_owner_that_failed_is_not_a_departure() -> None:
    # A full run: the new token's introspection failed transiently.
    result = _sync(
        A_ANSWERS, failed("fp-b2"), listed=REAUTHENTICATED, prior=PRIOR, prior_tokens=PRIOR_TOKENS
    )
    _still_tracked(row_of(result.connections, "conn-b"))


def test_an_earlier_departure_stays_while_a_token_owner_is_unknown() -> None:
    prior = previous(
        previous_row("conn-a"),
        previous_row("conn-b", stale=True, last_error=NO_SOURCE_TOKEN, left_source_at=at(-48)),
    )
    result = _sync(A_ANSWERS, listed=REAUTHENTICATED, prior=prior, prior_tokens=PRIOR_TOKENS)
    gone = row_of(result.connections, "conn-b")
    assert gone["left_source_at"] == at(-48)
    assert gone["stale"] is True and gone["last_error"] == NO_SOURCE_TOKEN


def test_once_the_new_token_answers_for_another_connection_the_old_one_has_left() -> None:
    result = _sync(
        A_ANSWERS,
        ok("fp-b2", introspection("conn-c")),
        listed=REAUTHENTICATED,
        prior=PRIOR,
        prior_tokens=PRIOR_TOKENS,
    )
    gone = row_of(result.connections, "conn-b")
    assert gone["left_source_at"] == T0
    assert gone["stale"] is True and gone["last_error"] == NO_SOURCE_TOKEN
    assert row_of(result.connections, "conn-c")["left_source_at"] is None


def test_a_token_answering_for_another_application_owns_none_of_ours() -> None:
    mine = Application(client_id="client-mine")
    result = _sync(
        ok("fp-a", introspection("conn-a", client_id="client-mine")),
        ok("fp-x", introspection("conn-x", client_id="client-other")),
        listed=[{"token_fingerprint": "fp-a"}, {"token_fingerprint": "fp-x"}],
        prior=PRIOR,
        prior_tokens=PRIOR_TOKENS,
        application=mine,
    )
    assert row_of(result.connections, "conn-b")["left_source_at"] == T0
