"""The `/_sandbox/` admin routes mirror the in-process API and stay out of the statistics."""

from __future__ import annotations

from sandbox_helpers import Api

from finch_sandbox import FinchSandbox


def test_admin_reads_match_in_process_methods(sandbox: FinchSandbox, api: Api) -> None:
    assert api.get("/_sandbox/tokens").json() == {"tokens": sandbox.tokens()}
    assert api.get("/_sandbox/sessions").json() == {"sessions": sandbox.sessions()}
    truth = api.get("/_sandbox/truth").json()
    assert truth == {"now": "2026-03-02T00:00:00Z", "rows": sandbox.truth()}
    client_id, client_secret = sandbox.credentials
    assert api.get("/_sandbox/credentials").json() == {
        "client_id": client_id,
        "client_secret": client_secret,
        "webhook_secret": sandbox.webhooks.secret,
    }
    assert api.get("/_sandbox/stats").json() == sandbox.stats()


def test_admin_routes_need_no_version_header_nor_auth_and_are_not_counted(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    api.client.headers.pop("Finch-API-Version")
    for path in (
        "/_sandbox/tokens",
        "/_sandbox/sessions",
        "/_sandbox/truth",
        "/_sandbox/credentials",
        "/_sandbox/stats",
    ):
        assert api.get(path).status_code == 200
    assert sandbox.stats()["requests"] == 0
    assert api.get("/_sandbox/nothing-here").json() == {
        "error": "no admin route GET /_sandbox/nothing-here"
    }
    assert sandbox.stats()["requests"] == 0


def test_token_listing_shape(sandbox: FinchSandbox) -> None:
    tokens = sandbox.tokens()
    assert set(tokens[0]) == {
        "access_token",
        "connection_id",
        "revoked",
        "issued_at",
        # what POST /auth/token answered when the token was issued
        "customer_id",
        "customer_name",
        "provider_id",
        "company_id",
    }
    truth = {r["connection_id"]: r for r in sandbox.truth() if r["connection_id"]}
    for token in tokens:
        row = truth[token["connection_id"]]
        stored = (token["customer_id"], token["provider_id"], token["company_id"])
        assert stored == (row["customer_id"], row["provider_id"], row["company_id"])
    assert all(t["issued_at"].endswith("Z") for t in tokens)
    first_by_connection: dict[str, str] = {}
    for token in tokens:
        first_by_connection.setdefault(token["connection_id"], token["issued_at"])
    connected_at = {
        r["connection_id"]: r["connected_at"] for r in sandbox.truth() if r["connection_id"]
    }
    assert first_by_connection == connected_at


def test_session_listing_shape(sandbox: FinchSandbox) -> None:
    session = sandbox.sessions()[0]
    assert set(session) == {
        "session_id",
        "connect_url",
        "customer_id",
        "customer_name",
        "customer_email",
        "products",
        "redirect_uri",
        "provider_id",
        "created_at",
        "expires_at",
        "status",
        "connection_id",
        "kind",
    }


def test_complete_connect_session_creates_a_live_connection(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    staged = next(
        s for s in sandbox.sessions() if s["status"] == "pending" and s["kind"] == "connect"
    )
    response = api.post(f"/_sandbox/sessions/{staged['session_id']}/complete")
    assert response.status_code == 200
    done = response.json()
    assert set(done) == {"code", "connection_id", "access_token"}
    tokens = {t["access_token"]: t for t in sandbox.tokens()}
    assert tokens[done["access_token"]]["connection_id"] == done["connection_id"]
    rows = {r["connection_key"]: r for r in sandbox.truth()}
    assert staged["session_id"] not in rows
    row = rows[done["connection_id"]]
    assert row["state"] == "live" and row["session_id"] == staged["session_id"]
    assert (row["customer_id"], row["customer_name"], row["customer_email"]) == (
        staged["customer_id"],
        staged["customer_name"],
        staged["customer_email"],
    )
    if staged["provider_id"]:
        assert row["provider_id"] == staged["provider_id"]
    assert row["connected_at"] == "2026-03-02T00:00:00Z"
    intro = api.get("/introspect", token=done["access_token"]).json()
    assert intro["customer_id"] == staged["customer_id"]
    again = api.post(f"/_sandbox/sessions/{staged['session_id']}/complete")
    assert again.status_code == 409
    assert api.post("/_sandbox/sessions/nope/complete").status_code == 404


def test_complete_reauthenticate_session_reconnects_with_a_new_token(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    session = next(
        s for s in sandbox.sessions() if s["status"] == "pending" and s["kind"] == "reauthenticate"
    )
    connection_id = session["connection_id"]
    before = {r["connection_key"]: r for r in sandbox.truth()}[connection_id]
    assert before["connection_status"] == "reauth"
    done = api.post(f"/_sandbox/sessions/{session['session_id']}/complete").json()
    assert done["connection_id"] == connection_id
    after = {r["connection_key"]: r for r in sandbox.truth()}[connection_id]
    assert after["connection_status"] == "connected" and after["needs_action"] is False
    newest = [t for t in sandbox.tokens() if t["connection_id"] == connection_id][-1]
    assert newest["access_token"] == done["access_token"] and not newest["revoked"]
    assert api.get("/introspect", token=done["access_token"]).status_code == 200


def test_expired_session_cannot_be_completed(sandbox: FinchSandbox, api: Api) -> None:
    expired = next(s for s in sandbox.sessions() if s["status"] == "expired")
    assert api.post(f"/_sandbox/sessions/{expired['session_id']}/complete").status_code == 409


def test_advance_route(sandbox: FinchSandbox, api: Api) -> None:
    summary = api.post("/_sandbox/advance", json={"days": 3}).json()
    assert summary["now"] == "2026-03-05T00:00:00Z"
    assert summary["days"] == 3
    assert sum(summary["changes"].values()) > 0
    assert api.get("/_sandbox/truth").json()["now"] == "2026-03-05T00:00:00Z"
    for bad in ({"days": -1}, {"days": "x"}, {}, [1]):
        assert api.post("/_sandbox/advance", json=bad).status_code == 400
    assert sandbox.now.isoformat() == "2026-03-05T00:00:00+00:00"


def test_stats_count_finch_requests_by_status_and_endpoint(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    api.get("/providers")
    api.get("/providers")
    api.get("/introspect", token="bad")
    api.get("/employer/company", token="bad")
    api.get("/nope")
    stats = api.get("/_sandbox/stats").json()
    assert stats["requests"] == 5
    assert stats["by_status"] == {"200": 2, "401": 2, "404": 1}
    assert stats["by_endpoint"] == {
        "providers": {"200": 2},
        "introspect": {"401": 1},
        "company": {"401": 1},
        "unknown": {"404": 1},
    }
    assert stats["max_requests_in_ip_window"] == 5
    assert stats["ip_blocked"] is False and stats["ip_blocks"] == 0
    reset = api.post("/_sandbox/stats/reset").json()
    assert reset["requests"] == 0 and reset["by_status"] == {} and reset["by_endpoint"] == {}
    assert reset["max_requests_in_ip_window"] == 0
    assert reset["max_requests_in_product_window"] == {"company": 0}
