"""Each Finch answer becomes the typed outcome the pipeline acts on."""

from typing import Any

from client_helpers import client_for, live_tokens, run

from connections_pipeline.finch import CallOutcome, FinchCallResult
from finch_sandbox import FinchSandbox, SandboxConfig


def _sandbox() -> FinchSandbox:
    return FinchSandbox(SandboxConfig(seed=11, connections=120, rate_limits=False))


def _introspect(sandbox: FinchSandbox, token: str) -> FinchCallResult:
    async def scenario() -> FinchCallResult:
        async with client_for(sandbox) as client:
            return await client.introspect(token)

    return run(scenario())


def _company(sandbox: FinchSandbox, token: str) -> FinchCallResult:
    async def scenario() -> FinchCallResult:
        async with client_for(sandbox) as client:
            return await client.company(token)

    return run(scenario())


def _token_where(sandbox: FinchSandbox, predicate: Any) -> str:
    truth = {row["connection_id"]: row for row in sandbox.truth() if row["connection_id"]}
    for token in live_tokens(sandbox):
        if predicate(truth[token["connection_id"]]):
            return token["access_token"]
    raise AssertionError("the seeded dataset lacks the case this test needs")


def test_working_token_introspects_ok_with_its_connection() -> None:
    sandbox = _sandbox()
    token = live_tokens(sandbox)[0]
    result = _introspect(sandbox, token["access_token"])
    assert result.outcome is CallOutcome.OK
    assert result.data["connection_id"] == token["connection_id"]
    assert result.request_id
    assert result.attempts == 1


def test_revoked_and_unknown_tokens_are_invalid_token() -> None:
    sandbox = _sandbox()
    revoked = next(token for token in sandbox.tokens() if token["revoked"])
    for token in (revoked["access_token"], "no-such-token"):
        result = _introspect(sandbox, token)
        assert result.outcome is CallOutcome.INVALID_TOKEN
        assert result.status_code == 401
        assert result.error_name == "invalid_token_error"
        assert result.attempts == 1


def test_reauth_connection_answers_needs_reauth_on_data_endpoints() -> None:
    sandbox = _sandbox()
    token = _token_where(
        sandbox, lambda row: row["connection_status"] == "reauth" and "company" in row["products"]
    )
    result = _company(sandbox, token)
    assert result.outcome is CallOutcome.NEEDS_REAUTH
    assert result.finch_code == "reauthenticate_user"


def test_token_without_company_product_is_permission_missing() -> None:
    sandbox = _sandbox()
    token = _token_where(
        sandbox,
        lambda row: row["connection_status"] == "connected" and "company" not in row["products"],
    )
    result = _company(sandbox, token)
    assert result.outcome is CallOutcome.PERMISSION_MISSING
    assert result.status_code == 403


def test_company_for_connected_token_is_ok() -> None:
    sandbox = _sandbox()
    token = _token_where(
        sandbox,
        lambda row: (
            row["connection_status"] == "connected"
            and "company" in row["products"]
            and row["entity_count"] == 1
        ),
    )
    result = _company(sandbox, token)
    assert result.outcome is CallOutcome.OK
    truth = {row["company_id"]: row["company_name"] for row in sandbox.truth()}
    assert truth[result.data["id"]] == result.data["legal_name"]


def test_wrong_client_secret_fails_without_retrying() -> None:
    sandbox = _sandbox()

    async def scenario() -> FinchCallResult:
        async with client_for(sandbox, client_secret="wrong") as client:
            return await client.create_connect_session(
                {"customer_id": "cust-1", "customer_name": "Acme", "products": ["company"]}
            )

    result = run(scenario())
    assert result.outcome is CallOutcome.FAILED
    assert result.error_name == "invalid_client_error"
    assert result.attempts == 1
    assert "wrong" not in repr(result)


def test_connect_session_with_valid_credentials_returns_url() -> None:
    sandbox = _sandbox()

    async def scenario() -> FinchCallResult:
        async with client_for(sandbox) as client:
            return await client.create_connect_session(
                {"customer_id": "cust-1", "customer_name": "Acme", "products": ["company"]}
            )

    result = run(scenario())
    assert result.outcome is CallOutcome.OK
    assert result.data["connect_url"].startswith("https://")
    sessions = {row["session_id"]: row for row in sandbox.truth() if row["state"] == "staged"}
    assert sessions[result.data["session_id"]]["customer_id"] == "cust-1"


def test_disconnect_makes_every_token_of_the_connection_invalid() -> None:
    sandbox = _sandbox()
    token = live_tokens(sandbox)[0]

    async def scenario() -> tuple[FinchCallResult, FinchCallResult]:
        async with client_for(sandbox) as client:
            disconnected = await client.disconnect(token["access_token"])
            after = await client.introspect(token["access_token"])
            return disconnected, after

    disconnected, after = run(scenario())
    assert disconnected.outcome is CallOutcome.OK
    assert after.outcome is CallOutcome.INVALID_TOKEN
    states = {row["connection_id"]: row["state"] for row in sandbox.truth()}
    assert states[token["connection_id"]] == "disconnected"
