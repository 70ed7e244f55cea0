"""No access token or client secret reaches logs, results or stats, even in a faulty run."""

import logging

import pytest
from client_helpers import client_for, run

from connections_pipeline.finch import token_fingerprint
from finch_sandbox import EndpointFaults, FinchSandbox, SandboxConfig


def test_faulty_run_logs_no_token_or_secret(caplog: pytest.LogCaptureFixture) -> None:
    sandbox = FinchSandbox(
        SandboxConfig(
            seed=9,
            connections=80,
            time_scale=0.01,
            faults={
                "*": EndpointFaults(
                    error_rate=0.2,
                    drop_rate=0.1,
                    malformed_rate=0.1,
                    hang_rate=0.05,
                    hang_seconds=2.0,
                    rate_limit_rate=0.1,
                )
            },
        )
    )
    all_tokens = [token["access_token"] for token in sandbox.tokens()]
    _, client_secret = sandbox.credentials

    async def scenario() -> list:
        async with client_for(
            sandbox, timeout_seconds=0.3, max_attempts=3, backoff_initial_seconds=0.01
        ) as client:
            results = await client.introspect_many(all_tokens)
            results += [await client.company(token) for token in all_tokens[:20]]
            results.append(
                await client.create_connect_session(
                    {"customer_id": "c-1", "customer_name": "Acme", "products": ["company"]}
                )
            )
            return [*results, client.stats.as_dict(), repr(client)]

    with caplog.at_level(logging.DEBUG):
        outputs = run(scenario())

    log_text = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records
    )
    everything = log_text + "\n".join(repr(output) for output in outputs)
    assert "failed" in log_text or "invalid_token" in log_text  # the run did log failures
    leaked = [token for token in all_tokens if token in everything]
    assert leaked == []
    assert client_secret not in everything
    revoked = next(t["access_token"] for t in sandbox.tokens() if t["revoked"])
    assert token_fingerprint(revoked) in log_text
