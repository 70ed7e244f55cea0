"""Unusable settings fail before any request, naming the setting, and never echo secrets."""

import pytest
from client_helpers import client_for, run

from connections_pipeline.finch import FinchClient, FinchClientConfig, FinchConfigError
from finch_sandbox import FinchSandbox, SandboxConfig


@pytest.mark.parametrize(
    "base_url", ["", "api.tryfinch.com", "ftp://api.tryfinch.com", "https://", "https://x/?a=1"]
)
def test_malformed_base_url_is_refused_naming_the_setting(base_url: str) -> None:
    with pytest.raises(FinchConfigError, match="FINCH_BASE_URL"):
        FinchClientConfig(base_url=base_url)


@pytest.mark.parametrize(
    ("setting", "value"),
    [("timeout_seconds", 0), ("max_concurrency", -1), ("max_attempts", 0), ("time_scale", 0)],
)
def test_non_positive_numbers_are_refused_naming_the_setting(setting: str, value: int) -> None:
    with pytest.raises(FinchConfigError, match=setting):
        FinchClientConfig(**{setting: value})


@pytest.mark.parametrize("token", ["", "   ", "tok\nen", "tokén"])
def test_unusable_token_is_refused_before_any_request(token: str) -> None:
    sandbox = FinchSandbox(SandboxConfig(seed=1, connections=5))

    async def scenario() -> None:
        async with client_for(sandbox) as client:
            with pytest.raises(FinchConfigError, match="access_token"):
                await client.introspect(token)
            assert client.stats.requests == 0

    run(scenario())
    assert sandbox.stats()["requests"] == 0


def test_connect_session_without_credentials_is_refused_before_any_request() -> None:
    sandbox = FinchSandbox(SandboxConfig(seed=1, connections=5))

    async def scenario() -> None:
        async with client_for(sandbox, client_id=None, client_secret=None) as client:
            with pytest.raises(FinchConfigError, match="FINCH_CLIENT_SECRET"):
                await client.create_connect_session({"customer_id": "c", "customer_name": "C"})

    run(scenario())
    assert sandbox.stats()["requests"] == 0


def test_client_secret_never_appears_in_reprs() -> None:
    secret = "super-secret-value-123"
    config = FinchClientConfig(client_id="app", client_secret=secret)
    client = FinchClient(config)
    try:
        assert secret not in repr(config)
        assert secret not in str(config)
        assert secret not in repr(client)
    finally:
        run(client.aclose())
