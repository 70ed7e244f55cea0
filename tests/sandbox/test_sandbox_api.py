"""The Finch surface: paths, auth schemes, headers, bodies and error answers."""

from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime

import pytest
from sandbox_helpers import (
    START,
    Api,
    assert_finch_error,
    basic_auth,
    current_tokens,
    rows_by_key,
)

from finch_sandbox import FinchSandbox


def _token_where(sandbox: FinchSandbox, **conditions: object) -> tuple[str, str]:
    rows = rows_by_key(sandbox)
    for connection_id, token in current_tokens(sandbox).items():
        row = rows[connection_id]
        if all(row[k] == v for k, v in conditions.items()):
            return connection_id, token
    raise AssertionError(f"no connection with {conditions}")


def _healthy_company_token(sandbox: FinchSandbox) -> tuple[str, str]:
    rows = rows_by_key(sandbox)
    for connection_id, token in current_tokens(sandbox).items():
        row = rows[connection_id]
        if (
            row["connection_status"] == "connected"
            and row["entity_count"] == 1
            and "company" in row["products"]
        ):
            return connection_id, token
    raise AssertionError("no healthy company token")


SESSION_BODY = {
    "customer_id": "cus-1",
    "customer_name": 'Acme, "Inc"',
    "products": ["company", "directory"],
}


def test_every_answer_has_request_id_and_virtual_date(sandbox: FinchSandbox, api: Api) -> None:
    _, token = _healthy_company_token(sandbox)
    answers = [
        api.get("/providers"),
        api.get("/introspect", token=token),
        api.get("/introspect", token="nope"),
        api.get("/providers", headers={"Finch-API-Version": "2021-01-01"}),
    ]
    ids = set()
    for response in answers:
        ids.add(uuid.UUID(response.headers["finch-request-id"]))
        assert parsedate_to_datetime(response.headers["date"]) == START
    assert len(ids) == len(answers)
    sandbox.advance(2.5)
    later = parsedate_to_datetime(api.get("/providers").headers["date"])
    assert later == sandbox.now and (later - START).total_seconds() == 2.5 * 86400


@pytest.mark.parametrize("version", [None, "2023-01-01", ""])
def test_version_header_is_required(sandbox: FinchSandbox, api: Api, version: str | None) -> None:
    _, token = _healthy_company_token(sandbox)
    headers = {"Finch-API-Version": version} if version is not None else {}
    api.client.headers.pop("Finch-API-Version")
    for path in ("/providers", "/introspect"):
        response = api.get(path, token=token, headers=headers)
        assert_finch_error(response, 400, "bad_request", "invalid_request")


def test_bearer_endpoints_distinguish_missing_unknown_and_revoked(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    revoked = next(t["access_token"] for t in sandbox.tokens() if t["revoked"])
    for path in ("/introspect", "/jobs/automated", "/employer/company"):
        assert_finch_error(api.get(path), 401, "unauthorized_request_error")
        assert_finch_error(api.get(path, token="not-a-token"), 401, "invalid_token_error")
        assert_finch_error(api.get(path, token=revoked), 401, "invalid_token_error")
        response = api.get(path, headers={"Authorization": basic_auth(*sandbox.credentials)})
        assert_finch_error(response, 401, "unauthorized_request_error")


def test_basic_endpoints_require_client_credentials(sandbox: FinchSandbox, api: Api) -> None:
    _, token = _healthy_company_token(sandbox)
    client_id, _ = sandbox.credentials
    for path in ("/connect/sessions", "/sandbox/connections"):
        assert_finch_error(api.post(path, json=SESSION_BODY), 401, "unauthorized_request_error")
        wrong = {"Authorization": basic_auth(client_id, "wrong-secret")}
        assert_finch_error(
            api.post(path, json=SESSION_BODY, headers=wrong), 401, "invalid_client_error"
        )
        assert_finch_error(
            api.post(path, json=SESSION_BODY, token=token), 401, "invalid_client_error"
        )
        garbage = {"Authorization": "Basic %%%"}
        assert_finch_error(
            api.post(path, json=SESSION_BODY, headers=garbage), 401, "invalid_client_error"
        )


def test_providers_need_no_auth(api: Api) -> None:
    response = api.get("/providers")
    assert response.status_code == 200
    assert isinstance(response.json(), list)


def test_introspect_reports_broken_statuses_instead_of_refusing(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    for status in ("reauth", "error_permissions", "error_no_account_setup", "pending"):
        connection_id, token = _token_where(sandbox, connection_status=status)
        body = api.get("/introspect", token=token).json()
        assert body["connection_id"] == connection_id
        assert body["connection_status"]["status"] == status
        assert body["client_type"] == "sandbox"
        assert body["client_id"] == sandbox.credentials[0]
        for method in body["authentication_methods"]:
            assert method["connection_status"]["status"] == status


def test_company_for_a_healthy_single_entity_connection(sandbox: FinchSandbox, api: Api) -> None:
    connection_id, token = _healthy_company_token(sandbox)
    row = rows_by_key(sandbox)[connection_id]
    body = api.get("/employer/company", token=token).json()
    assert body["id"] == row["company_id"]
    assert body["legal_name"] == row["company_name"]
    assert body == api.get("/employer/company", token=token).json()


@pytest.mark.parametrize(
    ("status", "code", "name", "finch_code"),
    [
        ("reauth", 401, "authentication_error", "reauthenticate_user"),
        ("error_no_account_setup", 401, "authentication_error", "account_setup_required"),
        ("error_permissions", 403, "error_permissions", "insufficient_account_permissions"),
    ],
)
def test_company_refuses_connections_that_need_action(
    sandbox: FinchSandbox,
    api: Api,
    status: str,
    code: int,
    name: str,
    finch_code: str,
) -> None:
    rows = rows_by_key(sandbox)
    matching = [
        token
        for c, token in current_tokens(sandbox).items()
        if rows[c]["connection_status"] == status and "company" in rows[c]["products"]
    ]
    assert matching
    assert_finch_error(api.get("/employer/company", token=matching[0]), code, name, finch_code)


def test_company_of_a_multi_entity_connection_needs_one_entity_id(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    rows = rows_by_key(sandbox)
    connection_id, token = next(
        (c, t)
        for c, t in current_tokens(sandbox).items()
        if rows[c]["entity_count"] > 1
        and rows[c]["connection_status"] == "connected"
        and "company" in rows[c]["products"]
    )
    entities = api.get("/introspect", token=token).json()["entities"]
    assert_finch_error(api.get("/employer/company", token=token), 400, "invalid_request_error")
    both = {"entity_ids[]": [entities[0]["id"], entities[1]["id"]]}
    assert_finch_error(
        api.get("/employer/company", token=token, params=both), 400, "invalid_request_error"
    )
    one = api.get("/employer/company", token=token, params={"entity_ids[]": entities[1]["id"]})
    assert one.status_code == 200
    assert one.json()["id"] == rows[connection_id]["company_id"]


def test_jobs_list_next_scheduled_job_first_and_pages(sandbox: FinchSandbox, api: Api) -> None:
    rows = rows_by_key(sandbox)
    connection_id, token = next(
        (c, t)
        for c, t in current_tokens(sandbox).items()
        if rows[c]["connection_type"] == "Automated"
        and rows[c]["connection_status"] == "connected"
        and rows[c]["connected_at"] < "2025-06-01"
    )
    first = api.get("/jobs/automated", token=token).json()
    assert len(first["data"]) == 100
    assert first["meta"]["quotas"]["data_sync_all"] is not None
    jobs = first["data"]
    assert jobs[0]["status"] in ("pending", "in_progress") and jobs[0]["completed_at"] is None
    assert all(j["created_at"] == rows[connection_id]["connected_at"] for j in jobs)
    assert all(j["type"] == "data_sync_all" for j in jobs)
    completed = jobs[1:]
    assert all(j["status"] == "complete" for j in completed)
    assert completed[0]["completed_at"] == rows[connection_id]["last_synced_at"]
    finished = [j["completed_at"] for j in completed]
    assert finished == sorted(finished, reverse=True)
    second = api.get("/jobs/automated", token=token, params={"limit": 40, "offset": 60}).json()
    assert [j["job_id"] for j in second["data"]] == [j["job_id"] for j in jobs[60:100]]
    beyond = api.get("/jobs/automated", token=token, params={"offset": 100_000}).json()
    assert beyond["data"] == []
    for bad in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}):
        assert_finch_error(
            api.get("/jobs/automated", token=token, params=bad),
            400,
            "bad_request",
            "invalid_request",
        )


def test_assisted_only_connections_have_no_automated_jobs(sandbox: FinchSandbox, api: Api) -> None:
    _, token = _token_where(sandbox, connection_type="Assisted", connection_status="connected")
    assert api.get("/jobs/automated", token=token).json()["data"] == []


def test_connect_session_is_created_and_validated(sandbox: FinchSandbox, api: Api) -> None:
    body = {
        **SESSION_BODY,
        "customer_email": "hr@acme.example",
        "minutes_to_expire": 60,
        "redirect_uri": "https://app.example/cb",
        "integration": {"provider": "gusto", "auth_method": "oauth"},
        "sandbox": "finch",
    }
    response = api.post("/connect/sessions", basic=True, json=body)
    assert response.status_code == 200
    created = response.json()
    assert created["connect_url"] == (
        f"https://connect.tryfinch.com/authorize?session={created['session_id']}"
    )
    session = next(s for s in sandbox.sessions() if s["session_id"] == created["session_id"])
    assert session["status"] == "pending" and session["kind"] == "connect"
    assert session["provider_id"] == "gusto"
    assert session["expires_at"] == "2026-03-02T01:00:00Z"
    staged = rows_by_key(sandbox)[created["session_id"]]
    assert staged["state"] == "staged" and staged["provider_name"] == "Gusto"
    default = api.post("/connect/sessions", basic=True, json=SESSION_BODY).json()
    session = next(s for s in sandbox.sessions() if s["session_id"] == default["session_id"])
    assert session["expires_at"] == "2026-05-31T00:00:00Z"

    invalid = [
        {k: v for k, v in SESSION_BODY.items() if k != "customer_id"},
        {**SESSION_BODY, "customer_id": ""},
        {**SESSION_BODY, "customer_name": "x" * 256},
        {**SESSION_BODY, "products": []},
        {**SESSION_BODY, "products": ["company", "payroll_magic"]},
        {**SESSION_BODY, "minutes_to_expire": 0},
        {**SESSION_BODY, "minutes_to_expire": 129_601},
        {**SESSION_BODY, "customer_email": "not-an-email"},
        {**SESSION_BODY, "integration": {"provider": "nope"}},
        {**SESSION_BODY, "integration": {"provider": "insperity", "auth_method": "oauth"}},
        {**SESSION_BODY, "sandbox": "prod"},
        {**SESSION_BODY, "manual": "yes"},
    ]
    before = len(sandbox.sessions())
    for bad in invalid:
        assert_finch_error(
            api.post("/connect/sessions", basic=True, json=bad),
            400,
            "bad_request",
            "invalid_request",
        )
    response = api.post("/connect/sessions", basic=True, content=b"{not json")
    assert_finch_error(response, 400, "bad_request", "invalid_request")
    assert len(sandbox.sessions()) == before


def test_reauthenticate_session(sandbox: FinchSandbox, api: Api) -> None:
    connection_id, _ = _token_where(sandbox, connection_status="reauth")
    response = api.post(
        "/connect/sessions/reauthenticate", basic=True, json={"connection_id": connection_id}
    )
    assert response.status_code == 200
    session_id = response.json()["session_id"]
    session = next(s for s in sandbox.sessions() if s["session_id"] == session_id)
    assert session["kind"] == "reauthenticate" and session["connection_id"] == connection_id
    assert session["expires_at"] == "2026-04-01T00:00:00Z"
    unknown = api.post(
        "/connect/sessions/reauthenticate", basic=True, json={"connection_id": str(uuid.uuid4())}
    )
    assert_finch_error(unknown, 404, "not_found_error", "item_not_found")
    gone = next(r["connection_id"] for r in sandbox.truth() if r["state"] == "disconnected")
    response = api.post(
        "/connect/sessions/reauthenticate", basic=True, json={"connection_id": gone}
    )
    assert_finch_error(response, 400, "bad_request", "invalid_request")
    assert_finch_error(
        api.post("/connect/sessions/reauthenticate", basic=True, json={}),
        400,
        "bad_request",
        "invalid_request",
    )


def test_auth_token_code_is_single_use_and_checks_credentials(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    created = api.post("/connect/sessions", basic=True, json=SESSION_BODY).json()
    completed = api.post(f"/_sandbox/sessions/{created['session_id']}/complete").json()
    client_id, client_secret = sandbox.credentials
    body = {"client_id": client_id, "client_secret": client_secret, "code": completed["code"]}
    wrong = api.post("/auth/token", json={**body, "client_secret": "nope"})
    assert_finch_error(wrong, 401, "invalid_client_error")
    response = api.post("/auth/token", json=body)
    assert response.status_code == 200
    token = response.json()
    assert token["access_token"] == completed["access_token"]
    assert token["connection_id"] == completed["connection_id"]
    assert (token["customer_id"], token["customer_name"]) == ("cus-1", 'Acme, "Inc"')
    assert token["token_type"] == "bearer" and token["client_type"] == "sandbox"
    assert_finch_error(api.post("/auth/token", json=body), 400, "invalid_grant_error")
    assert_finch_error(
        api.post("/auth/token", json={**body, "code": "unknown"}), 400, "invalid_grant_error"
    )
    no_code = {k: v for k, v in body.items() if k != "code"}
    assert_finch_error(api.post("/auth/token", json=no_code), 400, "bad_request", "invalid_request")
    assert_finch_error(api.post("/auth/token", json={"code": "x"}), 401, "invalid_client_error")


def test_auth_token_accepts_form_posts(sandbox: FinchSandbox, api: Api) -> None:
    created = api.post("/connect/sessions", basic=True, json=SESSION_BODY).json()
    code = sandbox.complete_session(created["session_id"])["code"]
    client_id, client_secret = sandbox.credentials
    response = api.post(
        "/auth/token", data={"client_id": client_id, "client_secret": client_secret, "code": code}
    )
    assert response.status_code == 200


def test_disconnect_revokes_every_token_of_the_connection(sandbox: FinchSandbox, api: Api) -> None:
    by_connection: dict[str, list[str]] = {}
    for token in sandbox.tokens():
        if not token["revoked"]:
            by_connection.setdefault(token["connection_id"], []).append(token["access_token"])
    connection_id, tokens = next((c, ts) for c, ts in by_connection.items() if len(ts) >= 2)
    assert api.post("/disconnect", token=tokens[0]).json() == {"status": "success"}
    for token in tokens:
        for path in ("/introspect", "/jobs/automated", "/employer/company"):
            assert_finch_error(api.get(path, token=token), 401, "invalid_token_error")
        assert_finch_error(api.post("/disconnect", token=token), 401, "invalid_token_error")
    row = rows_by_key(sandbox)[connection_id]
    assert row["state"] == "disconnected" and row["connection_status"] == "disconnected"
    assert all(t["revoked"] for t in sandbox.tokens() if t["connection_id"] == connection_id)


def test_sandbox_connection_create_and_status_update(sandbox: FinchSandbox, api: Api) -> None:
    body = {
        "provider_id": "gusto",
        "authentication_type": "oauth",
        "employee_size": 30,
        "products": ["company", "directory"],
    }
    created = api.post("/sandbox/connections", basic=True, json=body).json()
    assert created["provider_id"] == "gusto" and created["authentication_type"] == "oauth"
    assert created["products"] == ["company", "directory"]
    token = created["access_token"]
    intro = api.get("/introspect", token=token).json()
    assert intro["connection_id"] == created["connection_id"]
    assert intro["connection_status"]["status"] == "connected"
    assert intro["customer_id"] is None and intro["connection_type"] == "finch"
    assert api.get("/employer/company", token=token).status_code == 200
    row = rows_by_key(sandbox)[created["connection_id"]]
    assert row["state"] == "live" and row["session_id"] is None

    updated = api.put(
        "/sandbox/connections/accounts", token=token, json={"connection_status": "reauth"}
    )
    assert updated.status_code == 200
    assert updated.json()["connection_id"] == created["connection_id"]
    assert_finch_error(
        api.get("/employer/company", token=token),
        401,
        "authentication_error",
        "reauthenticate_user",
    )
    assert rows_by_key(sandbox)[created["connection_id"]]["needs_action"] is True
    assert_finch_error(
        api.put("/sandbox/connections/accounts", token=token, json={"connection_status": "broken"}),
        400,
        "bad_request",
        "invalid_request",
    )
    assert_finch_error(
        api.post("/sandbox/connections", basic=True, json={"provider_id": "no_such"}),
        404,
        "not_found_error",
        "item_not_found",
    )
    assert_finch_error(
        api.post("/sandbox/connections", basic=True, json={}), 400, "bad_request", "invalid_request"
    )


def test_unknown_path_and_wrong_method_answer_finch_404(api: Api) -> None:
    assert_finch_error(
        api.get("/employer/directory-nope"), 404, "not_found_error", "item_not_found"
    )
    assert_finch_error(api.get("/disconnect"), 404, "not_found_error", "item_not_found")
