"""Injected faults, in-process: each kind, per-endpoint keys, and seeded determinism."""

from __future__ import annotations

import json

import httpx
import pytest
from sandbox_helpers import api_for, assert_finch_error, current_tokens, make_sandbox

from finch_sandbox import EndpointFaults, FinchSandbox, SandboxConfig
from finch_sandbox.faults import EXTRA_FIELD_KEY

SESSION_BODY = {"customer_id": "c", "customer_name": "n", "products": ["company"]}


def _faulty(faults: dict[str, EndpointFaults]) -> FinchSandbox:
    return make_sandbox(faults=faults)


def _any_token(sandbox: FinchSandbox) -> str:
    return next(iter(current_tokens(sandbox).values()))


def test_error_rate_answers_5xx_with_finch_body_and_no_side_effects() -> None:
    sandbox = _faulty({"connect_sessions": EndpointFaults(error_rate=1.0)})
    sessions_before = len(sandbox.sessions())
    with api_for(sandbox) as api:
        statuses = set()
        for _ in range(30):
            response = api.post("/connect/sessions", basic=True, json=SESSION_BODY)
            assert_finch_error(response, response.status_code, "server_error")
            statuses.add(response.status_code)
            assert response.headers["finch-request-id"]
        assert statuses == {500, 502, 503}
        assert api.get("/providers").status_code == 200
    assert len(sandbox.sessions()) == sessions_before


def test_star_applies_to_endpoints_not_named() -> None:
    sandbox = _faulty({"*": EndpointFaults(error_rate=1.0), "providers": EndpointFaults()})
    with api_for(sandbox) as api:
        assert api.get("/providers").status_code == 200
        assert api.get("/introspect", token=_any_token(sandbox)).status_code >= 500


def test_rate_limit_rate_answers_application_429() -> None:
    sandbox = _faulty({"introspect": EndpointFaults(rate_limit_rate=1.0)})
    with api_for(sandbox) as api:
        response = api.get("/introspect", token=_any_token(sandbox))
        body = assert_finch_error(
            response, 429, "rate_limit_exceeded_error", "finch_application_rl"
        )
        assert body["statusCode"] == 429
    assert sandbox.stats()["by_endpoint"]["introspect"] == {"429": 1}


def test_malformed_rate_answers_200_with_unparseable_json() -> None:
    sandbox = _faulty(
        {
            "providers": EndpointFaults(malformed_rate=1.0),
            "introspect": EndpointFaults(malformed_rate=1.0),
        }
    )
    with api_for(sandbox) as api:
        for response in (api.get("/providers"), api.get("/introspect", token=_any_token(sandbox))):
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/json"
            with pytest.raises(json.JSONDecodeError):
                json.loads(response.content)
        error = api.get("/introspect", token="bad")
        assert_finch_error(error, 401, "invalid_token_error")


def test_extra_fields_adds_unknown_keys_to_every_object() -> None:
    sandbox = _faulty({"*": EndpointFaults(extra_fields=True)})

    def objects(value: object) -> list[dict]:
        if isinstance(value, dict):
            return [value, *(o for v in value.values() for o in objects(v))]
        if isinstance(value, list):
            return [o for v in value for o in objects(v)]
        return []

    with api_for(sandbox) as api:
        token = _any_token(sandbox)
        for body in (
            api.get("/providers").json(),
            api.get("/introspect", token=token).json(),
            api.get("/jobs/automated", token=token).json(),
        ):
            found = objects(body)
            assert found and all(EXTRA_FIELD_KEY in o for o in found)
        error = api.get("/introspect", token="bad").json()
        assert EXTRA_FIELD_KEY not in error


def test_drop_surfaces_as_remote_protocol_error_after_the_side_effect() -> None:
    sandbox = _faulty({"connect_sessions": EndpointFaults(drop_rate=1.0)})
    before = len(sandbox.sessions())
    with api_for(sandbox) as api:
        with pytest.raises(httpx.RemoteProtocolError) as raised:
            api.post("/connect/sessions", basic=True, json=SESSION_BODY)
        assert isinstance(raised.value, httpx.TransportError)
        assert api.get("/providers").status_code == 200
    assert len(sandbox.sessions()) == before + 1


def test_error_after_effect_answers_5xx_once_the_session_exists() -> None:
    sandbox = _faulty({"connect_sessions": EndpointFaults(error_rate=1.0, after_effect=True)})
    before = len(sandbox.sessions())
    with api_for(sandbox) as api:
        for _ in range(3):
            response = api.post("/connect/sessions", basic=True, json=SESSION_BODY)
            assert_finch_error(response, response.status_code, "server_error")
    assert len(sandbox.sessions()) == before + 3
    assert sandbox.stats()["faults"] == {"error": 3}


def test_hang_after_effect_creates_the_session_then_runs_past_the_timeout() -> None:
    faults = EndpointFaults(hang_rate=1.0, hang_seconds=5.0, after_effect=True)
    sandbox = _faulty({"connect_sessions": faults})
    before = len(sandbox.sessions())
    with api_for(sandbox, timeout=0.2) as api, pytest.raises(httpx.ReadTimeout):
        api.post("/connect/sessions", basic=True, json=SESSION_BODY)
    assert len(sandbox.sessions()) == before + 1


def test_hang_before_effect_leaves_no_session_behind() -> None:
    faults = EndpointFaults(hang_rate=1.0, hang_seconds=5.0)
    sandbox = _faulty({"connect_sessions": faults})
    before = len(sandbox.sessions())
    with api_for(sandbox, timeout=0.2) as api, pytest.raises(httpx.ReadTimeout):
        api.post("/connect/sessions", basic=True, json=SESSION_BODY)
    assert len(sandbox.sessions()) == before


def test_a_429_comes_before_the_effect_even_after_effect() -> None:
    faults = EndpointFaults(rate_limit_rate=1.0, error_rate=1.0, after_effect=True)
    sandbox = _faulty({"connect_sessions": faults})
    before = len(sandbox.sessions())
    with api_for(sandbox) as api:
        response = api.post("/connect/sessions", basic=True, json=SESSION_BODY)
        assert_finch_error(response, 429, "rate_limit_exceeded_error", "finch_application_rl")
    assert len(sandbox.sessions()) == before


def test_after_effect_alone_injects_nothing() -> None:
    assert not EndpointFaults(after_effect=True).active
    with pytest.raises(ValueError, match="after_effect must be a bool"):
        EndpointFaults(after_effect=1)  # type: ignore[arg-type]


def test_hang_runs_past_the_client_read_timeout() -> None:
    sandbox = _faulty({"introspect": EndpointFaults(hang_rate=1.0, hang_seconds=5.0)})
    with api_for(sandbox, timeout=0.2) as api:
        with pytest.raises(httpx.ReadTimeout):
            api.get("/introspect", token=_any_token(sandbox))
        assert api.get("/providers").status_code == 200


def test_latency_delays_answers_beyond_a_short_timeout_only() -> None:
    sandbox = _faulty({"providers": EndpointFaults(latency_ms=400, latency_jitter_ms=50)})
    with api_for(sandbox, timeout=0.05) as api, pytest.raises(httpx.ReadTimeout):
        api.get("/providers")
    with api_for(sandbox, timeout=10) as api:
        assert api.get("/providers").status_code == 200


def test_faults_are_deterministic_for_a_request_sequence() -> None:
    def statuses() -> list[int]:
        sandbox = _faulty({"*": EndpointFaults(error_rate=0.3, rate_limit_rate=0.2)})
        with api_for(sandbox) as api:
            return [api.get("/providers").status_code for _ in range(60)]

    first = statuses()
    assert first == statuses()
    assert {200, 429} <= set(first) and set(first) - {200, 429}


@pytest.mark.parametrize(
    "bad",
    [{"error_rate": 1.5}, {"drop_rate": -0.1}, {"latency_ms": -1}, {"hang_seconds": float("nan")}],
)
def test_invalid_fault_settings_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        EndpointFaults(**bad)


def test_unknown_fault_endpoint_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault endpoint"):
        SandboxConfig(faults={"directory": EndpointFaults(error_rate=1.0)})


def test_stats_count_the_faults_each_request_met() -> None:
    sandbox = _faulty(
        {
            "providers": EndpointFaults(error_rate=1.0),
            "introspect": EndpointFaults(malformed_rate=1.0),
        }
    )
    token = _any_token(sandbox)
    with api_for(sandbox) as api:
        for _ in range(3):
            api.get("/providers")
        api.get("/introspect", token=token)
        api.get("/jobs/automated", token=token)
    assert sandbox.stats()["faults"] == {"error": 3, "malformed": 1}
    sandbox.reset_stats()
    assert sandbox.stats()["faults"] == {}
