"""The seeded dataset: deterministic, and containing every case the pipeline must handle."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

from sandbox_helpers import START, Api, assert_finch_error, current_tokens, make_sandbox

from finch_sandbox import FinchSandbox
from finch_sandbox.names import HOSTILE_COMPANY_NAMES


def test_same_seed_gives_identical_tokens_truth_sessions_and_credentials() -> None:
    first, second = make_sandbox(), make_sandbox()
    assert first.tokens() == second.tokens()
    assert first.truth() == second.truth()
    assert first.sessions() == second.sessions()
    assert first.credentials == second.credentials


def test_output_does_not_depend_on_the_process_hash_seed() -> None:
    script = (
        "import hashlib, json\n"
        "from sandbox_helpers import make_sandbox\n"
        "s = make_sandbox(connections=60)\n"
        "s.advance(2.5)\n"
        "print(hashlib.sha256(json.dumps([s.truth(), s.tokens(), s.sessions()]).encode())"
        ".hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1 and len(digests.pop().strip()) == 64


def test_different_seed_gives_different_data() -> None:
    first, other = make_sandbox(seed=7), make_sandbox(seed=8)
    assert {t["access_token"] for t in first.tokens()}.isdisjoint(
        t["access_token"] for t in other.tokens()
    )
    assert first.truth() != other.truth()
    assert first.credentials != other.credentials


def test_default_start_is_today_floored_to_midnight_utc() -> None:
    sandbox = FinchSandbox()
    assert (sandbox.now.hour, sandbox.now.minute, sandbox.now.second) == (0, 0, 0)
    assert sandbox.now.utcoffset() == timedelta(0)
    assert make_sandbox().now == START


def test_every_connection_status_and_state_is_present(sandbox: FinchSandbox) -> None:
    rows = [r for r in sandbox.truth() if r["state"] != "staged"]
    assert len(rows) == 200
    statuses = Counter(r["connection_status"] for r in rows)
    for status in (
        "connected",
        "reauth",
        "error_no_account_setup",
        "error_permissions",
        "pending",
        "processing",
        "disconnected",
    ):
        assert statuses[status] > 0, status
    assert statuses["connected"] == 140
    assert statuses["disconnected"] == 10
    needs_action = {r["connection_status"] for r in rows if r["needs_action"]}
    assert needs_action == {"reauth", "error_no_account_setup", "error_permissions"}


def test_every_connection_type_and_its_refresh_interval(sandbox: FinchSandbox) -> None:
    rows = [r for r in sandbox.truth() if r["state"] != "staged"]
    types = Counter(r["connection_type"] for r in rows)
    assert set(types) == {"Automated", "Assisted", "Automated, Assisted"}
    for row in rows:
        expected = 168 if row["connection_type"] == "Assisted" else 24
        assert row["expected_refresh_hours"] == expected


def test_multi_entity_connections_have_2_to_12_entities(sandbox: FinchSandbox) -> None:
    rows = [r for r in sandbox.truth() if r["state"] != "staged"]
    multi = [r for r in rows if r["entity_count"] > 1]
    assert 0 < len(multi) < len(rows) / 5
    assert all(2 <= r["entity_count"] <= 12 for r in multi)
    assert all(r["company_name"] == "Multi-entity connection" for r in multi)
    single = [r for r in rows if r["entity_count"] == 1]
    assert all(r["company_name"] not in (None, "Multi-entity connection") for r in single)


def test_some_connections_have_several_tokens_some_older_still_valid(
    sandbox: FinchSandbox,
) -> None:
    by_connection: dict[str, list[dict]] = {}
    for token in sandbox.tokens():
        by_connection.setdefault(token["connection_id"], []).append(token)
    multi = {c: ts for c, ts in by_connection.items() if len(ts) > 1}
    assert 0.1 * 200 <= len(multi) <= 0.2 * 200
    assert any(
        not ts[-1]["revoked"] and any(t["revoked"] for t in ts[:-1]) for ts in multi.values()
    )
    assert any(sum(not t["revoked"] for t in ts) >= 2 for ts in multi.values()), (
        "some connections keep an older token valid"
    )


def test_older_valid_token_shows_its_own_products_while_truth_uses_newest(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    rows = {r["connection_key"]: r for r in sandbox.truth()}
    by_connection: dict[str, list[str]] = {}
    for token in sandbox.tokens():
        if not token["revoked"]:
            by_connection.setdefault(token["connection_id"], []).append(token["access_token"])
    differing = 0
    for connection_id, tokens in by_connection.items():
        if len(tokens) < 2:
            continue
        newest = api.get("/introspect", token=tokens[-1]).json()
        oldest = api.get("/introspect", token=tokens[0]).json()
        assert sorted(newest["products"]) == rows[connection_id]["products"]
        assert oldest["connection_id"] == newest["connection_id"] == connection_id
        differing += sorted(oldest["products"]) != sorted(newest["products"])
    assert differing > 0


def test_disconnected_connections_tokens_answer_invalid_token(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    disconnected = {r["connection_id"] for r in sandbox.truth() if r["state"] == "disconnected"}
    tokens = [t for t in sandbox.tokens() if t["connection_id"] in disconnected]
    assert len(disconnected) == 10 and tokens
    assert all(t["revoked"] for t in tokens)
    for token in tokens:
        assert_finch_error(
            api.get("/introspect", token=token["access_token"]), 401, "invalid_token_error"
        )


def test_legacy_connections_have_no_customer_fields_nor_session(sandbox: FinchSandbox) -> None:
    rows = [r for r in sandbox.truth() if r["state"] != "staged"]
    legacy = [r for r in rows if r["customer_id"] is None]
    assert len(legacy) == 30
    assert all(r["customer_name"] is None and r["session_id"] is None for r in legacy)
    sessions = {s["session_id"]: s for s in sandbox.sessions()}
    for row in rows:
        if row["customer_id"] is not None:
            session = sessions[row["session_id"]]
            assert session["status"] == "completed"
            assert session["connection_id"] == row["connection_id"]
            customer = (session["customer_id"], session["customer_name"], session["customer_email"])
            assert customer == (row["customer_id"], row["customer_name"], row["customer_email"])


def test_sessions_in_each_status_and_staged_rows(sandbox: FinchSandbox) -> None:
    sessions = sandbox.sessions()
    statuses = Counter((s["kind"], s["status"]) for s in sessions)
    assert statuses[("connect", "pending")] == 12
    assert statuses[("connect", "expired")] == 8
    assert statuses[("connect", "completed")] == 170
    assert statuses[("reauthenticate", "pending")] > 0
    staged = [r for r in sandbox.truth() if r["state"] == "staged"]
    assert len(staged) == 12
    for row in staged:
        assert row["connection_id"] is None and row["company_name"] is None
        assert row["session_id"] == row["connection_key"]
        assert row["session_expires_at"] > sandbox.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    expired = [s for s in sessions if s["status"] == "expired"]
    assert all(s["expires_at"] < "2026-03-02T00:00:00Z" for s in expired)


def test_about_twenty_providers_with_display_names(api: Api) -> None:
    providers = api.get("/providers").json()
    assert 18 <= len(providers) <= 25
    names = {p["id"]: p["display_name"] for p in providers}
    assert names["gusto"] == "Gusto"
    assert names["adp_workforce_now"] == "ADP Workforce Now"
    assert names["paychex_flex"] == "Paychex Flex"
    assert names["bamboo_hr"] == "BambooHR"
    for provider in providers:
        assert provider["authentication_methods"] and provider["products"]


def test_hostile_company_names_are_planted(sandbox: FinchSandbox) -> None:
    names = {r["company_name"] for r in sandbox.truth()}
    planted = {n for n in HOSTILE_COMPANY_NAMES if n in names}
    assert len(planted) >= 10
    starts = {n[0] for n in names if n}
    assert {"=", "+", "-", "@", "\t", "\r"} <= starts
    assert any("\n" in n for n in names if n)
    assert any('"' in n and "," in n for n in names if n)
    assert any(not n.isascii() for n in names if n)


def test_tokens_without_company_product_get_insufficient_scope_but_keep_the_name(
    sandbox: FinchSandbox,
    api: Api,
) -> None:
    rows = {r["connection_key"]: r for r in sandbox.truth()}
    without = [
        (c, t) for c, t in current_tokens(sandbox).items() if "company" not in rows[c]["products"]
    ]
    assert 10 <= len(without) <= 30
    for connection_id, token in without[:8]:
        assert_finch_error(
            api.get("/employer/company", token=token), 403, "insufficient_scope_error"
        )
        entities = api.get("/introspect", token=token).json()["entities"]
        legal = rows[connection_id]["company_name"]
        if rows[connection_id]["entity_count"] == 1:
            assert entities[0]["name"] == legal
        assert len({e["name"] for e in entities}) == 1


def test_last_sync_is_null_only_for_pending_and_recent_for_healthy(sandbox: FinchSandbox) -> None:
    rows = [r for r in sandbox.truth() if r["state"] == "live"]
    for row in rows:
        if row["connection_status"] == "pending":
            assert row["last_synced_at"] is None
        else:
            assert row["last_synced_at"] is not None
    healthy = [r for r in rows if r["connection_status"] == "connected"]
    overdue = [r for r in healthy if r["sync_overdue"]]
    assert 0 < len(overdue) < len(healthy) / 5
    for row in healthy:
        if not row["sync_overdue"]:
            limit = timedelta(hours=row["expected_refresh_hours"])
            synced = row["last_synced_at"]
            assert synced >= (START - limit).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert synced <= "2026-03-02T00:00:00Z"


def test_one_hundred_thousand_connections_build_and_serve() -> None:
    big = make_sandbox(connections=100_000, seed=11)
    tokens = current_tokens(big)
    assert len(big.data.connections) == 100_000
    with_api = Api(big)
    try:
        some = list(tokens.items())[-3:]
        for connection_id, token in some:
            body = with_api.get("/introspect", token=token).json()
            assert body["connection_id"] == connection_id
    finally:
        with_api.close()
