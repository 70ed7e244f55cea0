"""Transient failures are retried with backoff; permanent ones end as typed failures."""

import time

from client_helpers import client_for, live_tokens, run

from connections_pipeline.finch import CallOutcome, FinchCallResult
from finch_sandbox import EndpointFaults, FinchSandbox, SandboxConfig

FAST_BACKOFF = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


def _introspect_all(
    sandbox: FinchSandbox, tokens: list[str], **overrides: object
) -> tuple[list[FinchCallResult], dict]:
    async def scenario() -> tuple[list[FinchCallResult], dict]:
        async with client_for(sandbox, **FAST_BACKOFF, **overrides) as client:
            results = await client.introspect_many(tokens)
            return results, client.stats.as_dict()

    return run(scenario())


def _faulty(**faults: float) -> FinchSandbox:
    return FinchSandbox(
        SandboxConfig(
            seed=5, connections=60, rate_limits=False, faults={"*": EndpointFaults(**faults)}
        )
    )


def _expected_connections(sandbox: FinchSandbox) -> list[str]:
    return [token["connection_id"] for token in live_tokens(sandbox)]


def test_server_errors_are_retried_until_every_token_succeeds() -> None:
    sandbox = _faulty(error_rate=0.3)
    tokens = [token["access_token"] for token in live_tokens(sandbox)]
    results, stats = _introspect_all(sandbox, tokens, max_attempts=10)
    assert [r.outcome for r in results] == [CallOutcome.OK] * len(tokens)
    assert [r.data["connection_id"] for r in results] == _expected_connections(sandbox)
    assert stats["retries"] > 0
    assert stats["requests"] == len(tokens) + stats["retries"]
    assert (
        sandbox.stats()["by_status"].get("500", 0)
        + sandbox.stats()["by_status"].get("502", 0)
        + sandbox.stats()["by_status"].get("503", 0)
        == stats["retries"]
    )


def test_hangs_past_the_timeout_are_cut_off_and_retried() -> None:
    sandbox = _faulty(hang_rate=0.2, hang_seconds=5.0)
    tokens = [token["access_token"] for token in live_tokens(sandbox)][:25]
    results, stats = _introspect_all(sandbox, tokens, timeout_seconds=0.3, max_attempts=10)
    assert all(r.outcome is CallOutcome.OK for r in results)
    assert stats["timeouts"] > 0


def test_dropped_connections_are_retried() -> None:
    sandbox = _faulty(drop_rate=0.3)
    tokens = [token["access_token"] for token in live_tokens(sandbox)]
    results, stats = _introspect_all(sandbox, tokens, max_attempts=10)
    assert all(r.outcome is CallOutcome.OK for r in results)
    assert stats["transport_errors"] > 0


def test_malformed_bodies_are_retried_and_never_crash_the_batch() -> None:
    sandbox = _faulty(malformed_rate=0.3)
    tokens = [token["access_token"] for token in live_tokens(sandbox)]
    results, stats = _introspect_all(sandbox, tokens, max_attempts=10)
    assert all(r.outcome is CallOutcome.OK for r in results)
    assert stats["malformed_bodies"] > 0


def test_unknown_extra_fields_are_tolerated() -> None:
    sandbox = _faulty(extra_fields=True)
    tokens = [token["access_token"] for token in live_tokens(sandbox)][:10]
    results, _ = _introspect_all(sandbox, tokens)
    assert [r.data["connection_id"] for r in results] == _expected_connections(sandbox)[:10]


def test_persistent_failure_ends_as_failed_after_the_configured_attempts() -> None:
    sandbox = _faulty(error_rate=1.0)
    token = live_tokens(sandbox)[0]["access_token"]
    results, stats = _introspect_all(sandbox, [token], max_attempts=4)
    [result] = results
    assert result.outcome is CallOutcome.FAILED
    assert result.attempts == 4
    assert result.reason is not None and result.reason.startswith("failed after retries")
    assert sandbox.stats()["requests"] == 4
    assert stats["retries"] == 3


def test_one_failing_endpoint_does_not_fail_other_calls() -> None:
    sandbox = FinchSandbox(
        SandboxConfig(
            seed=5,
            connections=30,
            rate_limits=False,
            faults={"introspect": EndpointFaults(malformed_rate=1.0)},
        )
    )
    token = live_tokens(sandbox)[0]["access_token"]

    async def scenario() -> tuple[FinchCallResult, FinchCallResult]:
        async with client_for(sandbox, max_attempts=2, **FAST_BACKOFF) as client:
            return await client.introspect(token), await client.automated_jobs(token)

    introspection, jobs = run(scenario())
    assert introspection.outcome is CallOutcome.FAILED
    assert "malformed" in (introspection.reason or "")
    assert jobs.outcome is CallOutcome.OK


def test_stats_say_how_long_the_calls_spent_with_finch() -> None:
    # Every call hangs 0.3 s before the timeout cuts it off, so the span from the first
    # request to the last attempt covers at least those waits, and no more than the run.
    sandbox = _faulty(hang_rate=1.0, hang_seconds=5.0)
    tokens = [token["access_token"] for token in live_tokens(sandbox)][:3]
    started = time.monotonic()
    results, stats = _introspect_all(sandbox, tokens, timeout_seconds=0.3, max_attempts=2)
    elapsed = time.monotonic() - started
    assert all(r.outcome is CallOutcome.FAILED for r in results)
    assert 0.6 <= stats["finch_seconds"] <= elapsed
