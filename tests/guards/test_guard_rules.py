"""The rules that tell a plausible run from a wrong setting, an outage or a mass change."""

import datetime as dt

import polars as pl
import pytest
from transform.transform_helpers import (
    at,
    failed,
    introspection,
    ok,
    previous,
    previous_row,
    previous_token,
    previous_tokens,
    providers,
    raw_frame,
    raw_row,
    revoked,
    row_of,
    session,
    sessions,
    snapshot,
    token_source,
)

from connections_pipeline.transform.guards import (
    Application,
    HoldThresholds,
    TrustFigures,
    judge,
    split_by_application,
    trust_figures,
)
from connections_pipeline.transform.parse import parse_introspections

THRESHOLDS = HoldThresholds(max_live_drop_share=0.2, min_count=3, max_token_failure_share=0.2)


def _figures(**counts: int) -> TrustFigures:
    return TrustFigures(**counts)


def test_a_quiet_run_is_not_held() -> None:
    verdict = judge(_figures(previous_live=100, leaving_live=2, tokens=120), THRESHOLDS)
    assert not verdict.held and verdict.summary == ""


@pytest.mark.parametrize(
    ("leaving", "previous_live", "held"),
    [
        (21, 100, True),  # 21% > 20%
        (20, 100, False),  # exactly the limit is allowed
        (2, 4, False),  # 50%, but fewer than the minimum count
        (3, 4, True),  # 75% and at the minimum count
    ],
)
def test_live_connections_leaving_live_hold_past_share_and_count(
    leaving: int, previous_live: int, held: bool
) -> None:
    verdict = judge(
        _figures(previous_live=previous_live, leaving_live=leaving, tokens=200), THRESHOLDS
    )
    assert verdict.held is held
    if held:
        assert f"{leaving} of {previous_live} live connections" in verdict.summary
        assert "CONNECTIONS_HOLD_LIVE_DROP_SHARE" in verdict.summary


def test_tokens_without_answer_hold_and_the_reason_counts_each_kind() -> None:
    figures = _figures(tokens=100, failed_tokens=10, newly_invalid_tokens=8, rejected_source_rows=5)
    verdict = judge(figures, THRESHOLDS)
    assert verdict.held
    # 23 of 105 rows (the rejected ones were never tokens) = 22% > 20%.
    assert "23 of 105 tokens (22%)" in verdict.summary
    assert "10 failed after retries, 8 newly answered 401" in verdict.summary
    assert "5 unreadable in the token source" in verdict.summary
    assert not judge(_figures(tokens=100, failed_tokens=20), THRESHOLDS).held


def test_any_token_of_another_application_holds_and_names_fingerprints() -> None:
    figures = _figures(
        tokens=50, other_application_tokens=12, other_application_fingerprints=("aa", "bb")
    )
    verdict = judge(figures, THRESHOLDS)
    assert verdict.held
    assert "12 of 50 tokens belong to another Finch application" in verdict.summary
    assert "aa, bb and 10 more" in verdict.summary


def test_a_401_counts_only_when_it_is_news() -> None:
    prior = previous(previous_row("conn-live"), previous_row("conn-gone"))
    connections = previous(
        previous_row("conn-live"), previous_row("conn-gone", state="disconnected")
    )
    tokens = pl.DataFrame(
        {
            "token_fingerprint": ["fp-live", "fp-live-old", "fp-known-dead", "fp-gone", "fp-x"],
            "connection_id": ["conn-live", "conn-live", "conn-dead", "conn-gone", None],
            "last_outcome": ["ok", "invalid_token", "invalid_token", "invalid_token", "failed"],
        }
    )
    known = previous_tokens(
        previous_token("fp-known-dead", "conn-dead", last_outcome="invalid_token")
    )
    figures = trust_figures(prior, connections, tokens, known, rejected_source_rows=2)
    # The old token of a live connection (re-authenticated) and a token already known revoked
    # are not news; the last token of conn-gone is.
    assert figures.newly_invalid_tokens == 1
    assert figures.failed_tokens == 1
    assert (figures.previous_live, figures.leaving_live) == (2, 1)
    assert figures.tokens == 5 and figures.rejected_source_rows == 2


def test_introspections_of_another_application_are_split_off() -> None:
    raw = raw_frame(
        ok("fp-ours", introspection("conn-a", client_id="app-1", client_type="production")),
        ok("fp-other", introspection("conn-b", client_id="app-2", client_type="production")),
        ok("fp-sandbox", introspection("conn-c", client_id="app-1", client_type="sandbox")),
    )
    parsed, _ = parse_introspections(raw)

    ours, others = split_by_application(parsed, Application("app-1", "production"))
    assert ours["token_fingerprint"].to_list() == ["fp-ours"]
    reasons = dict(others.select("token_fingerprint", "reason").iter_rows())
    assert reasons["fp-other"] == "client_id is not FINCH_CLIENT_ID"
    assert "client_type sandbox" in reasons["fp-sandbox"]

    everything, nothing = split_by_application(parsed, Application())
    assert everything.height == 3 and nothing.is_empty()


def test_another_applications_token_is_no_connection_of_ours() -> None:
    built = snapshot(
        ok("fp-ours", introspection("conn-a", client_id="app-1")),
        ok("fp-other", introspection("conn-b", client_id="app-2")),
        application=Application(client_id="app-1"),
    )
    assert built.connections["connection_key"].to_list() == ["conn-a"]
    tokens = {row["token_fingerprint"]: row for row in built.tokens.iter_rows(named=True)}
    assert tokens["fp-other"]["last_outcome"] == "other_application"
    assert tokens["fp-other"]["connection_id"] is None  # nothing of ours names it
    assert tokens["fp-other"]["last_error"] == "client_id is not FINCH_CLIENT_ID"


def test_a_failed_freshest_token_keeps_the_previous_row_instead_of_an_older_answer() -> None:
    # Regression: the older token answered with fewer products, and the connection got a
    # history version for a change that did not happen.
    prior = previous(
        previous_row("conn-a", products="company,directory", working_token_fingerprint="fp-new")
    )
    source = token_source(
        {"token_fingerprint": "fp-new", "issued_at": at(-24)},
        {"token_fingerprint": "fp-old", "issued_at": at(-24 * 300)},
    )
    built = snapshot(
        failed("fp-new"),
        ok("fp-old", introspection("conn-a", products=("directory",))),
        source=source,
        prior=prior,
        prior_tokens=previous_tokens(previous_token("fp-new", "conn-a")),
    )
    row = row_of(built.connections, "conn-a")
    assert row["products"] == "company,directory"
    assert row["stale"] is True
    assert row["last_error"].startswith("not refreshed: token answered failed")


def test_without_issue_times_the_last_working_token_is_the_freshest() -> None:
    prior = previous(previous_row("conn-a", working_token_fingerprint="fp-2"))
    built = snapshot(
        failed("fp-2"),
        ok("fp-1", introspection("conn-a", status="reauth")),
        prior=prior,
        prior_tokens=previous_tokens(previous_token("fp-2", "conn-a")),
    )
    row = row_of(built.connections, "conn-a")
    assert (row["connection_status"], row["stale"]) == ("connected", True)


def test_a_fresher_token_that_answers_wins_over_a_failed_older_one() -> None:
    # Re-authentication: the new token is the truth even if the old one failed this time.
    prior = previous(previous_row("conn-a", working_token_fingerprint="fp-old"))
    source = token_source(
        {"token_fingerprint": "fp-old", "issued_at": at(-24 * 300)},
        {"token_fingerprint": "fp-new", "issued_at": at(-1)},
    )
    built = snapshot(
        failed("fp-old"),
        ok("fp-new", introspection("conn-a", status="reauth")),
        source=source,
        prior=prior,
    )
    row = row_of(built.connections, "conn-a")
    assert (row["connection_status"], row["stale"]) == ("reauth", False)


def test_a_first_sync_takes_whichever_token_answered() -> None:
    source = token_source(
        {"token_fingerprint": "fp-new", "issued_at": at(-1)},
        {"token_fingerprint": "fp-old", "issued_at": at(-300)},
    )
    built = snapshot(failed("fp-new"), ok("fp-old", introspection("conn-a")), source=source)
    assert row_of(built.connections, "conn-a")["state"] == "live"


def test_staged_rows_keep_their_provider_name_when_providers_did_not_answer() -> None:
    ledger = sessions(session("sess-1", provider_id="gusto"))
    first = snapshot(
        raw_row("providers", None, providers(("gusto", "Gusto"))), ledger=ledger
    ).connections
    assert row_of(first, "sess-1")["provider_name"] == "Gusto"
    later = snapshot(
        raw_row("providers", None, outcome="failed", status_code=503),
        ledger=ledger,
        prior=first,
        as_of=at(1),
    )
    assert row_of(later.connections, "sess-1")["provider_name"] == "Gusto"


def test_revoked_connections_are_not_stale() -> None:
    prior = previous(previous_row("conn-a"))
    built = snapshot(
        revoked("fp-conn-a", "conn-a"),
        prior=prior,
        prior_tokens=previous_tokens(previous_token("fp-conn-a", "conn-a")),
        as_of=at(1) + dt.timedelta(hours=1),
    )
    row = row_of(built.connections, "conn-a")
    assert (row["state"], row["stale"]) == ("disconnected", False)
