"""Contract: the official Finch SDK, with strict response validation, accepts every answer of
the emulator, and maps its errors to the SDK's exception classes with Finch's error body."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import finch
import pytest
from finch import Finch
from finch.types import (
    CreateAccessTokenResponse,
    DisconnectResponse,
    Introspection,
    ProviderListResponse,
)
from finch.types.connect import SessionNewResponse, SessionReauthenticateResponse
from finch.types.hris import Company
from finch.types.jobs import AutomatedListResponse
from finch.types.sandbox import ConnectionCreateResponse
from finch.types.sandbox.connections import AccountUpdateResponse

from finch_sandbox import (
    EndpointFaults,
    FinchSandbox,
    SandboxConfig,
    serve_in_thread,
)

START = datetime(2026, 3, 2, tzinfo=UTC)


def _sandbox(**overrides: Any) -> FinchSandbox:
    settings: dict[str, Any] = {"seed": 21, "connections": 200, "start_time": START}
    settings.update(overrides)
    return FinchSandbox(SandboxConfig(**settings))


@pytest.fixture(scope="module", params=["plain", "extra_fields"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[FinchSandbox, str]]:
    faults = {"*": EndpointFaults(extra_fields=True)} if request.param == "extra_fields" else {}
    sandbox = _sandbox(faults=faults)
    with serve_in_thread(sandbox) as base_url:
        yield sandbox, base_url


def _client(sandbox: FinchSandbox, base_url: str, token: str | None = None) -> Finch:
    client_id, client_secret = sandbox.credentials
    return Finch(
        base_url=base_url,
        access_token=token,
        client_id=client_id,
        client_secret=client_secret,
        max_retries=0,
        _strict_response_validation=True,
    )


def _row_token(sandbox: FinchSandbox, **conditions: Any) -> tuple[dict[str, Any], str]:
    rows = {r["connection_key"]: r for r in sandbox.truth()}
    tokens: dict[str, str] = {}
    for token in sandbox.tokens():
        if not token["revoked"]:
            tokens[token["connection_id"]] = token["access_token"]
    for connection_id, token in tokens.items():
        row = rows[connection_id]
        if all(row[k] == v if not callable(v) else v(row[k]) for k, v in conditions.items()):
            return row, token
    raise AssertionError(f"no connection with {conditions}")


def test_read_endpoints_parse_into_sdk_models(served: tuple[FinchSandbox, str]) -> None:
    sandbox, base_url = served
    row, token = _row_token(
        sandbox,
        connection_status="connected",
        entity_count=1,
        connection_type="Automated",
        products=lambda p: "company" in p,
    )
    client = _client(sandbox, base_url, token)
    introspection = client.account.introspect()
    assert isinstance(introspection, Introspection)
    assert introspection.connection_id == row["connection_id"]
    assert introspection.connection_status.status == "connected"
    assert introspection.authentication_methods and introspection.entities
    jobs = client.jobs.automated.list(limit=5, offset=0)
    assert isinstance(jobs, AutomatedListResponse)
    assert len(jobs.data) == 5
    assert jobs.data[0].created_at.isoformat() == row["connected_at"].replace("Z", "+00:00")
    company = client.hris.company.retrieve()
    assert isinstance(company, Company)
    assert company.id == row["company_id"] and company.legal_name == row["company_name"]
    providers = client.providers.list()
    items = [ProviderListResponse.model_validate(p.model_dump()) for p in providers.items]
    assert len(items) >= 18 and {p.id for p in items} >= {"gusto", "paychex_flex"}


def test_multi_entity_company_with_entity_id(served: tuple[FinchSandbox, str]) -> None:
    sandbox, base_url = served
    row, token = _row_token(
        sandbox,
        connection_status="connected",
        entity_count=lambda n: n is not None and n > 1,
        products=lambda p: "company" in p,
    )
    client = _client(sandbox, base_url, token)
    entity = client.account.introspect().entities[0]
    company = client.hris.company.retrieve(entity_ids=[entity.id])
    assert company.id == row["company_id"]
    with pytest.raises(finch.BadRequestError) as raised:
        client.hris.company.retrieve()
    assert raised.value.body["name"] == "invalid_request_error"


def test_write_endpoints_parse_into_sdk_models(served: tuple[FinchSandbox, str]) -> None:
    sandbox, base_url = served
    client = _client(sandbox, base_url)
    session = client.connect.sessions.new(
        customer_id="contract-customer",
        customer_name="Contract Co",
        products=["company", "directory"],
        customer_email="ops@contract.example",
        integration={"provider": "gusto", "auth_method": "oauth"},
        minutes_to_expire=600,
        redirect_uri="https://app.example/callback",
        sandbox="finch",
    )
    assert isinstance(session, SessionNewResponse)
    reauth_row, _ = _row_token(sandbox, connection_status="reauth")
    reauth = client.connect.sessions.reauthenticate(
        connection_id=reauth_row["connection_id"],
        products=["company"],
        minutes_to_expire=60,
    )
    assert isinstance(reauth, SessionReauthenticateResponse)
    assert reauth.session_id != session.session_id

    completed = sandbox.complete_session(session.session_id)
    exchanged = client.access_tokens.create(
        code=completed["code"], redirect_uri="https://app.example/callback"
    )
    assert isinstance(exchanged, CreateAccessTokenResponse)
    assert exchanged.access_token == completed["access_token"]
    assert exchanged.customer_id == "contract-customer"

    created = client.sandbox.connections.create(
        provider_id="bamboo_hr",
        authentication_type="api_token",
        employee_size=12,
        products=["company", "directory"],
    )
    assert isinstance(created, ConnectionCreateResponse)
    as_new = client.with_options(access_token=created.access_token)
    updated = as_new.sandbox.connections.accounts.update(connection_status="error_permissions")
    assert isinstance(updated, AccountUpdateResponse)
    assert updated.connection_id == created.connection_id
    assert as_new.account.introspect().connection_status.status == "error_permissions"
    disconnected = as_new.account.disconnect()
    assert isinstance(disconnected, DisconnectResponse) and disconnected.status == "success"
    with pytest.raises(finch.AuthenticationError):
        as_new.account.introspect()


@pytest.fixture(scope="module")
def errors_served() -> Iterator[tuple[FinchSandbox, str]]:
    sandbox = _sandbox(
        faults={
            "jobs": EndpointFaults(error_rate=1.0),
            "disconnect": EndpointFaults(rate_limit_rate=1.0),
        }
    )
    with serve_in_thread(sandbox) as base_url:
        yield sandbox, base_url


def _assert_body(error: finch.APIStatusError, status: int, name: str) -> None:
    assert error.status_code == status
    assert isinstance(error.body, dict)
    assert error.body["code"] == status and error.body["name"] == name
    assert error.response.headers["finch-request-id"]


def test_errors_map_to_sdk_exceptions(errors_served: tuple[FinchSandbox, str]) -> None:
    sandbox, base_url = errors_served
    healthy_row, healthy = _row_token(sandbox, connection_status="connected")
    _, no_company = _row_token(
        sandbox, connection_status="connected", products=lambda p: "company" not in p
    )

    with pytest.raises(finch.AuthenticationError) as unauthorized:
        _client(sandbox, base_url, "not-a-token").account.introspect()
    _assert_body(unauthorized.value, 401, "invalid_token_error")

    with pytest.raises(finch.PermissionDeniedError) as forbidden:
        _client(sandbox, base_url, no_company).hris.company.retrieve()
    _assert_body(forbidden.value, 403, "insufficient_scope_error")

    with pytest.raises(finch.BadRequestError) as bad:
        _client(sandbox, base_url).connect.sessions.new(
            customer_id="",
            customer_name="x",
            products=["company"],
        )
    _assert_body(bad.value, 400, "bad_request")
    assert bad.value.body["finch_code"] == "invalid_request"

    with pytest.raises(finch.NotFoundError) as missing:
        _client(sandbox, base_url).connect.sessions.reauthenticate(
            connection_id="00000000-0000-4000-8000-000000000000",
        )
    _assert_body(missing.value, 404, "not_found_error")

    with pytest.raises(finch.InternalServerError) as server:
        _client(sandbox, base_url, healthy).jobs.automated.list()
    assert server.value.status_code in (500, 502, 503)
    _assert_body(server.value, server.value.status_code, "server_error")

    with pytest.raises(finch.RateLimitError) as limited:
        _client(sandbox, base_url, healthy).account.disconnect()
    _assert_body(limited.value, 429, "rate_limit_exceeded_error")
    assert limited.value.body["finch_code"] == "finch_application_rl"
    assert (
        _client(sandbox, base_url, healthy).account.introspect().connection_id
        == (healthy_row["connection_id"])
    )
