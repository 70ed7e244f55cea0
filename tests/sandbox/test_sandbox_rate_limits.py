"""Finch's published limits: 20/min on `company` per application, 1,000 per 5 min per IP with a
60-minute block, all scaled by `time_scale`. A fake monotonic clock crosses windows exactly."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sandbox_helpers import START, Api, assert_finch_error, current_tokens, rows_by_key

from finch_sandbox import FinchSandbox, SandboxConfig


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


def _limited(clock: FakeMonotonic, **overrides: object) -> FinchSandbox:
    settings: dict = {"seed": 7, "connections": 200, "start_time": START, "time_scale": 0.001}
    settings.update(overrides)
    return FinchSandbox(SandboxConfig(**settings), monotonic=clock)


@pytest.fixture
def limited(clock: FakeMonotonic) -> FinchSandbox:
    return _limited(clock)


@pytest.fixture
def limited_api(limited: FinchSandbox) -> Iterator[Api]:
    api = Api(limited)
    try:
        yield api
    finally:
        api.close()


def _company_tokens(sandbox: FinchSandbox) -> list[str]:
    rows = rows_by_key(sandbox)
    return [
        t
        for c, t in current_tokens(sandbox).items()
        if rows[c]["connection_status"] == "connected"
        and rows[c]["entity_count"] == 1
        and "company" in rows[c]["products"]
    ]


def _burst(api: Api, count: int, path: str = "/providers") -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        return [await api.client.get(path) for _ in range(count)]

    return api.runner.run(go())


def assert_rate_limited(response: httpx.Response, finch_code: str) -> None:
    body = assert_finch_error(response, 429, "rate_limit_exceeded_error", finch_code)
    assert body["statusCode"] == 429 and body["status"] == 429


def test_company_product_allows_20_per_window_across_all_tokens(
    limited: FinchSandbox,
    limited_api: Api,
    clock: FakeMonotonic,
) -> None:
    tokens = _company_tokens(limited)
    for i in range(20):
        assert limited_api.get("/employer/company", token=tokens[i % 5]).status_code == 200
        clock.now += 0.001
    refused = limited_api.get("/employer/company", token=tokens[7])
    assert_rate_limited(refused, "finch_application_rl")
    assert limited_api.get("/introspect", token=tokens[7]).status_code == 200
    clock.now += 0.060 - 0.020
    assert_rate_limited(
        limited_api.get("/employer/company", token=tokens[0]), "finch_application_rl"
    )
    clock.now += 0.0015
    assert limited_api.get("/employer/company", token=tokens[0]).status_code == 200
    stats = limited.stats()
    assert stats["max_requests_in_product_window"] == {"company": 20}
    assert stats["by_endpoint"]["company"] == {"200": 21, "429": 2}


def test_ip_limit_blocks_for_the_scaled_hour_then_lifts(
    limited: FinchSandbox,
    limited_api: Api,
    clock: FakeMonotonic,
) -> None:
    token = _company_tokens(limited)[0]
    answers = _burst(limited_api, 1000)
    assert {r.status_code for r in answers} == {200}
    assert_rate_limited(limited_api.get("/providers"), "finch_api_ip_rl")
    assert_rate_limited(limited_api.get("/introspect", token=token), "finch_api_ip_rl")
    stats = limited.stats()
    assert stats["ip_blocked"] is True and stats["ip_blocks"] == 1
    assert stats["by_status"] == {"200": 1000, "429": 2}
    clock.now += 3.6 - 0.01
    assert_rate_limited(limited_api.get("/providers"), "finch_api_ip_rl")
    clock.now += 0.02
    assert limited_api.get("/providers").status_code == 200
    assert limited_api.get("/introspect", token=token).status_code == 200
    assert limited.stats()["ip_blocked"] is False
    assert limited.stats()["ip_blocks"] == 1


def test_ip_window_slides(limited: FinchSandbox, limited_api: Api, clock: FakeMonotonic) -> None:
    assert {r.status_code for r in _burst(limited_api, 600)} == {200}
    clock.now += 0.2
    assert {r.status_code for r in _burst(limited_api, 400)} == {200}
    clock.now += 0.1001
    assert {r.status_code for r in _burst(limited_api, 600)} == {200}
    assert limited.stats()["ip_blocks"] == 0
    assert limited.stats()["max_requests_in_ip_window"] == 1000


def test_disabled_limits_refuse_nothing_but_still_measure(clock: FakeMonotonic) -> None:
    sandbox = _limited(clock, rate_limits=False)
    api = Api(sandbox)
    try:
        assert {r.status_code for r in _burst(api, 1100)} == {200}
        token = _company_tokens(sandbox)[0]
        for _ in range(25):
            assert api.get("/employer/company", token=token).status_code == 200
    finally:
        api.close()
    stats = sandbox.stats()
    assert stats["ip_blocks"] == 0 and stats["ip_blocked"] is False
    assert stats["max_requests_in_ip_window"] == 1125
    assert stats["max_requests_in_product_window"] == {"company": 25}


def test_time_scale_shrinks_the_product_window_in_real_time() -> None:
    sandbox = FinchSandbox(SandboxConfig(seed=7, start_time=START, time_scale=0.05))
    api = Api(sandbox)
    try:
        token = _company_tokens(sandbox)[0]
        statuses = [api.get("/employer/company", token=token).status_code for _ in range(21)]
        assert statuses == [200] * 20 + [429]
        time.sleep(3.05)
        assert api.get("/employer/company", token=token).status_code == 200
    finally:
        api.close()
