"""The ground truth agrees with what a client can observe through the API.

Each row here is rebuilt the way a pipeline would (token ledger + `/introspect` + `/jobs` +
`/employer/company` + `/providers` + the `Date` header) and compared with `truth()`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from sandbox_helpers import Api, rows_by_key

from finch_sandbox import FinchSandbox
from finch_sandbox.truth import TRUTH_COLUMNS

AUTOMATED = {"credential", "api_token", "api_credential", "oauth"}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _observe(api: Api, connection_id: str) -> dict[str, Any]:
    ledger = [
        t
        for t in api.get("/_sandbox/tokens").json()["tokens"]
        if t["connection_id"] == connection_id
    ]
    token = [t for t in ledger if not t["revoked"]][-1]["access_token"]
    response = api.get("/introspect", token=token)
    now = parsedate_to_datetime(response.headers["date"])
    intro = response.json()
    entities = intro["entities"]
    entity_count = max(1, len(entities))
    if entity_count > 1:
        company_name = "Multi-entity connection"
    else:
        company = api.get("/employer/company", token=token)
        company_name = (
            company.json()["legal_name"] if company.status_code == 200 else (entities[0]["name"])
        )
    types = {m["type"] for m in intro["authentication_methods"]}
    if types & AUTOMATED and "assisted" in types:
        connection_type = "Automated, Assisted"
    elif "assisted" in types:
        connection_type = "Assisted"
    else:
        connection_type = "Automated"
    jobs = api.get("/jobs/automated", token=token, params={"limit": 1}).json()["data"]
    connected_at = jobs[0]["created_at"] if jobs else min(t["issued_at"] for t in ledger)
    last = intro["connection_status"]["last_successful_sync"]
    hours = 168 if connection_type == "Assisted" else 24
    status = intro["connection_status"]["status"]
    providers = {p["id"]: p["display_name"] for p in api.get("/providers").json()}
    return {
        "connection_key": connection_id,
        "state": "live",
        "connection_id": connection_id,
        "company_name": company_name,
        "company_id": intro["company_id"],
        "customer_name": intro["customer_name"],
        "customer_id": intro["customer_id"],
        "customer_email": intro["customer_email"],
        "entity_count": entity_count,
        "connection_status": status,
        "needs_action": status in ("reauth", "error_no_account_setup", "error_permissions"),
        "last_synced_at": last,
        "connection_type": connection_type,
        "expected_refresh_hours": hours,
        "sync_overdue": now - _parse(last or connected_at) > timedelta(hours=hours),
        "connected_at": connected_at,
        "provider_id": intro["provider_id"],
        "provider_name": providers[intro["provider_id"]],
        "products": sorted(intro["products"]),
        "session_expires_at": None,
    }


def _pick(rows: dict[str, dict[str, Any]], **conditions: Any) -> str:
    for key, row in rows.items():
        if row["state"] == "live" and all(row[k] == v for k, v in conditions.items()):
            return key
    raise AssertionError(f"no live row with {conditions}")


def _compare(sandbox: FinchSandbox, api: Api, rows: dict[str, dict[str, Any]]) -> int:
    picks = {
        _pick(rows, connection_type="Automated", entity_count=1, connection_status="connected"),
        _pick(rows, connection_type="Assisted", entity_count=1),
        _pick(rows, connection_type="Automated, Assisted"),
        _pick(rows, connection_status="reauth"),
        _pick(rows, connection_status="pending"),
        _pick(rows, sync_overdue=True, connection_status="connected"),
        next(k for k, r in rows.items() if r["state"] == "live" and r["entity_count"] > 1),
        next(
            k
            for k, r in rows.items()
            if r["state"] == "live" and r["products"] and "company" not in r["products"]
        ),
        next(k for k, r in rows.items() if r["state"] == "live" and r["customer_id"] is None),
    }
    for key in picks:
        expected = {k: v for k, v in rows[key].items() if k != "session_id"}
        observed = _observe(api, key)
        if observed["company_name"] is None:
            expected["company_name"] = None
        assert observed == expected, key
    return len(picks)


def test_truth_rows_match_what_the_api_shows(sandbox: FinchSandbox, api: Api) -> None:
    assert _compare(sandbox, api, rows_by_key(sandbox)) >= 8


def test_truth_rows_still_match_after_advancing(sandbox: FinchSandbox, api: Api) -> None:
    sandbox.advance(1.5)
    assert _compare(sandbox, api, rows_by_key(sandbox)) >= 8


def test_staged_rows_come_from_active_connect_sessions(sandbox: FinchSandbox, api: Api) -> None:
    providers = {p["id"]: p["display_name"] for p in api.get("/providers").json()}
    now = api.get("/_sandbox/truth").json()["now"]
    sessions = api.get("/_sandbox/sessions").json()["sessions"]
    expected = {
        s["session_id"]: {
            "connection_key": s["session_id"],
            "state": "staged",
            "connection_id": None,
            "session_id": s["session_id"],
            "company_name": None,
            "company_id": None,
            "customer_name": s["customer_name"],
            "customer_id": s["customer_id"],
            "customer_email": s["customer_email"],
            "entity_count": None,
            "connection_status": None,
            "needs_action": False,
            "last_synced_at": None,
            "connection_type": None,
            "expected_refresh_hours": None,
            "sync_overdue": False,
            "connected_at": None,
            "provider_id": s["provider_id"],
            "provider_name": providers.get(s["provider_id"]),
            "products": None,
            "session_expires_at": s["expires_at"],
        }
        for s in sessions
        if s["kind"] == "connect" and s["status"] == "pending" and s["expires_at"] > now
    }
    staged = {k: r for k, r in rows_by_key(sandbox).items() if r["state"] == "staged"}
    assert staged == expected
    assert any(r["provider_name"] for r in staged.values())


def test_truth_rows_have_exactly_the_dashboard_columns(sandbox: FinchSandbox) -> None:
    rows = sandbox.truth()
    assert {tuple(row) for row in rows} == {TRUTH_COLUMNS}
    assert TRUTH_COLUMNS == (
        "connection_key",
        "state",
        "connection_id",
        "session_id",
        "company_name",
        "company_id",
        "customer_name",
        "customer_id",
        "customer_email",
        "entity_count",
        "connection_status",
        "needs_action",
        "last_synced_at",
        "connection_type",
        "expected_refresh_hours",
        "sync_overdue",
        "connected_at",
        "provider_id",
        "provider_name",
        "products",
        "session_expires_at",
    )


def test_truth_timestamps_are_utc_seconds_with_z(sandbox: FinchSandbox) -> None:
    for row in sandbox.truth():
        for key in ("last_synced_at", "connected_at", "session_expires_at"):
            value = row[key]
            if value is not None:
                assert len(value) == 20 and value.endswith("Z"), value
                _parse(value)
