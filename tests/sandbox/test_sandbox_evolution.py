"""`advance(days)`: the dataset drifts like a real account, deterministically."""

from __future__ import annotations

from collections import Counter

from sandbox_helpers import Api, assert_finch_error, make_sandbox, rows_by_key

from finch_sandbox import FinchSandbox


def test_advance_moves_statuses_both_ways_and_disconnects(sandbox: FinchSandbox, api: Api) -> None:
    before = rows_by_key(sandbox)
    tokens_before = {t["access_token"]: t for t in sandbox.tokens()}
    summary = sandbox.advance(30)
    changes = summary["changes"]
    after = rows_by_key(sandbox)

    went_reauth = [
        k
        for k, r in after.items()
        if k in before
        and r["state"] == "live"
        and before[k]["connection_status"] == "connected"
        and r["connection_status"] == "reauth"
    ]
    recovered = [
        k
        for k, r in after.items()
        if k in before
        and r["state"] == "live"
        and before[k]["connection_status"]
        in ("reauth", "error_permissions", "error_no_account_setup")
        and r["connection_status"] == "connected"
    ]
    newly_disconnected = [
        k
        for k, r in after.items()
        if k in before and before[k]["state"] == "live" and r["state"] == "disconnected"
    ]
    assert went_reauth and recovered and newly_disconnected
    assert changes["to_reauth"] >= len(went_reauth) > 0
    assert changes["recovered"] > 0 and changes["disconnected"] > 0
    for connection_id in newly_disconnected:
        ids = [t for t, v in tokens_before.items() if v["connection_id"] == connection_id]
        for token in ids:
            assert_finch_error(api.get("/introspect", token=token), 401, "invalid_token_error")
    pending_before = [k for k, r in before.items() if r["connection_status"] == "pending"]
    assert any(
        after[k]["connection_status"] == "connected" and after[k]["last_synced_at"]
        for k in pending_before
    )


def test_recovery_can_issue_a_new_token_carrying_the_current_grant(
    sandbox: FinchSandbox,
) -> None:
    counts_before = Counter(t["connection_id"] for t in sandbox.tokens())
    summary = sandbox.advance(20)
    counts_after = Counter(t["connection_id"] for t in sandbox.tokens())
    reissued = [c for c in counts_before if counts_after[c] > counts_before[c]]
    assert reissued and summary["changes"]["tokens_issued"] > 0
    rows = rows_by_key(sandbox)
    assert any(rows[c]["connection_status"] == "connected" for c in reissued)


def test_sessions_complete_with_their_customer_fields_and_others_expire(
    sandbox: FinchSandbox,
) -> None:
    pending = {
        s["session_id"]: s
        for s in sandbox.sessions()
        if s["status"] == "pending" and s["kind"] == "connect"
    }
    summary = sandbox.advance(120)
    sessions = {s["session_id"]: s for s in sandbox.sessions()}
    rows = rows_by_key(sandbox)
    completed = [sessions[i] for i in pending if sessions[i]["status"] == "completed"]
    expired = [sessions[i] for i in pending if sessions[i]["status"] == "expired"]
    assert completed and expired
    assert not any(sessions[i]["status"] == "pending" for i in pending)
    assert summary["changes"]["sessions_completed"] >= len(completed)
    assert summary["changes"]["sessions_expired"] >= len(expired)
    for session in completed:
        row = rows[session["connection_id"]]
        assert row["session_id"] == session["session_id"]
        assert (row["customer_id"], row["customer_name"], row["customer_email"]) == (
            session["customer_id"],
            session["customer_name"],
            session["customer_email"],
        )
        assert session["session_id"] not in rows
    for session in expired:
        assert session["session_id"] not in rows


def test_a_session_created_through_the_api_completes_after_a_few_days() -> None:
    sandbox = make_sandbox()
    with_api = Api(sandbox)
    try:
        body = {
            "customer_id": "new-customer",
            "customer_name": "Brand New Co",
            "customer_email": "ops@brand-new.example",
            "products": ["company", "directory"],
        }
        session_id = with_api.post("/connect/sessions", basic=True, json=body).json()["session_id"]
        assert rows_by_key(sandbox)[session_id]["state"] == "staged"
        for _ in range(10):
            sandbox.advance(1)
            session = next(s for s in sandbox.sessions() if s["session_id"] == session_id)
            if session["status"] == "completed":
                break
        assert session["status"] == "completed"
        row = rows_by_key(sandbox)[session["connection_id"]]
        assert (row["customer_id"], row["customer_name"], row["customer_email"]) == (
            "new-customer",
            "Brand New Co",
            "ops@brand-new.example",
        )
        token = next(
            t["access_token"]
            for t in sandbox.tokens()
            if t["connection_id"] == session["connection_id"]
        )
        intro = with_api.get("/introspect", token=token).json()
        assert intro["customer_name"] == "Brand New Co"
    finally:
        with_api.close()


def test_a_short_lived_session_expires_and_leaves_the_staged_state() -> None:
    sandbox = make_sandbox()
    with_api = Api(sandbox)
    try:
        body = {
            "customer_id": "c",
            "customer_name": "Short",
            "products": ["directory"],
            "minutes_to_expire": 1,
        }
        session_id = with_api.post("/connect/sessions", basic=True, json=body).json()["session_id"]
    finally:
        with_api.close()
    assert session_id in rows_by_key(sandbox)
    sandbox.advance(1)
    session = next(s for s in sandbox.sessions() if s["session_id"] == session_id)
    assert session["status"] == "expired"
    assert session_id not in rows_by_key(sandbox)


def test_syncs_advance_on_their_cadence(sandbox: FinchSandbox) -> None:
    before = rows_by_key(sandbox)
    sandbox.advance(3)
    after = rows_by_key(sandbox)
    healthy = [
        k
        for k, r in after.items()
        if k in before
        and r["state"] == "live"
        and r["connection_status"] == "connected"
        and before[k]["connection_status"] == "connected"
        and r["connection_type"] != "Assisted"
        and not before[k]["sync_overdue"]
        and not r["sync_overdue"]
    ]
    assert healthy
    assert all(after[k]["last_synced_at"] > before[k]["last_synced_at"] for k in healthy)
    assert all(after[k]["last_synced_at"] <= "2026-03-05T00:00:00Z" for k in healthy)


def test_advance_is_deterministic_for_the_same_sequence() -> None:
    first, second = make_sandbox(), make_sandbox()
    for days in (0.5, 2, 7):
        assert first.advance(days) == second.advance(days)
    assert first.truth() == second.truth()
    assert first.tokens() == second.tokens()
    assert first.sessions() == second.sessions()
    third = make_sandbox()
    third.advance(9.5)
    assert third.now == first.now
    assert third.truth() != make_sandbox().truth()


def test_advance_zero_changes_nothing(sandbox: FinchSandbox) -> None:
    truth = sandbox.truth()
    summary = sandbox.advance(0)
    assert sum(summary["changes"].values()) == 0
    assert sandbox.truth() == truth
