"""The client stays inside Finch's rolling windows instead of discovering them by 429s."""

import asyncio
import time

from client_helpers import client_for, live_tokens, run

from connections_pipeline.finch import CallOutcome, FinchClientConfig
from connections_pipeline.finch.pacing import Pacer
from finch_sandbox import EndpointFaults, FinchSandbox, SandboxConfig

# 5-minute IP window becomes 3 s, 60-second product window 0.6 s.
TIME_SCALE = 0.01


def _tokens(sandbox: FinchSandbox, count: int) -> list[str]:
    tokens = [token["access_token"] for token in live_tokens(sandbox)]
    return (tokens * (count // len(tokens) + 1))[:count]


def test_paced_client_never_exceeds_the_ip_window() -> None:
    sandbox = FinchSandbox(SandboxConfig(seed=3, connections=200, time_scale=TIME_SCALE))

    async def scenario() -> list:
        async with client_for(sandbox, max_concurrency=32) as client:
            return await client.introspect_many(_tokens(sandbox, 1300))

    results = run(scenario())
    stats = sandbox.stats()
    assert all(result.outcome is CallOutcome.OK for result in results)
    assert stats["by_status"].get("429", 0) == 0
    assert not stats["ip_blocked"]
    # Never past Finch's limit; how close it comes is a figure of benchmarks/finch_client.py.
    assert stats["max_requests_in_ip_window"] <= 1000


def test_unpaced_client_gets_the_ip_blocked() -> None:
    # The same load without pacing trips the emulator's IP block: the pacing is what
    # keeps the paced test above green, not a slow machine. The emulator's clock stands
    # still, so every request falls in one window however slowly this machine sends them.
    sandbox = FinchSandbox(
        SandboxConfig(seed=3, connections=200, time_scale=TIME_SCALE), monotonic=lambda: 0.0
    )

    async def scenario() -> list:
        async with client_for(
            sandbox, max_concurrency=32, pacing=False, max_attempts=1, backoff_initial_seconds=0.001
        ) as c:
            return await c.introspect_many(_tokens(sandbox, 1300))

    results = run(scenario())
    stats = sandbox.stats()
    assert stats["ip_blocks"] >= 1
    assert any(r.finch_code == "finch_api_ip_rl" for r in results)
    # Once blocked, the client stops sending instead of hammering a blocked IP.
    not_sent = [r for r in results if r.reason and r.reason.startswith("not sent")]
    assert not_sent
    assert stats["requests"] == len(results) - len(not_sent)


def test_company_calls_stay_inside_the_product_window() -> None:
    sandbox = FinchSandbox(SandboxConfig(seed=3, connections=200, time_scale=TIME_SCALE))

    async def scenario() -> list:
        async with client_for(sandbox, max_concurrency=16) as client:
            return await asyncio.gather(*(client.company(t) for t in _tokens(sandbox, 70)))

    results = run(scenario())
    stats = sandbox.stats()
    assert stats["by_status"].get("429", 0) == 0
    assert stats["max_requests_in_product_window"]["company"] <= 20
    assert len(results) == 70


def test_forced_429s_slow_the_client_down_and_it_still_finishes_without_a_block() -> None:
    sandbox = FinchSandbox(
        SandboxConfig(
            seed=3,
            connections=100,
            time_scale=TIME_SCALE,
            faults={"*": EndpointFaults(rate_limit_rate=0.2)},
        )
    )

    async def scenario() -> tuple[list, dict]:
        async with client_for(sandbox, max_concurrency=16, max_attempts=10) as client:
            results = await client.introspect_many(_tokens(sandbox, 300))
            return results, client.stats.as_dict()

    results, client_stats = run(scenario())
    stats = sandbox.stats()
    assert all(result.outcome is CallOutcome.OK for result in results)
    assert client_stats["rate_limited"] == stats["by_status"]["429"] > 0
    assert not stats["ip_blocked"]


def test_a_429_closes_the_gate_for_every_caller() -> None:
    config = FinchClientConfig(time_scale=0.01, backoff_initial_seconds=5.0)
    pacer = Pacer(config)

    async def scenario() -> tuple[float, float]:
        recorded_at = time.monotonic()
        cooldown = pacer.record_rate_limited("finch_application_rl")
        gate_opens = recorded_at + cooldown * 0.99
        await pacer.acquire(None)
        return time.monotonic(), gate_opens

    try:
        acquired_at, gate_opens = run(scenario())
    finally:
        pacer.close()
    assert acquired_at >= gate_opens


def test_consecutive_429s_lengthen_the_cooldown_and_a_success_resets_it() -> None:
    config = FinchClientConfig(backoff_initial_seconds=1.0)
    pacer = Pacer(config)
    try:
        first = [pacer.record_rate_limited("finch_application_rl") for _ in range(4)]
        pacer.record_success()
        after_reset = pacer.record_rate_limited("finch_application_rl")
    finally:
        pacer.close()
    # Each cooldown is the doubled backoff with up to 50% jitter taken off.
    assert first[3] > first[0]
    assert 4.0 <= first[3] <= 8.0
    assert 0.5 <= after_reset <= 1.0
