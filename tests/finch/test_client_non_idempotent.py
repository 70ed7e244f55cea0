"""Creating a Connect session is not idempotent: retried only while it certainly did nothing.

Against the emulator over real loopback HTTP (the production aiohttp transport), in-process,
and a bare TCP server that takes a request and hangs up without answering.
"""

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from client_helpers import client_for, live_tokens, run

from connections_pipeline.finch import (
    CallOutcome,
    FinchCallResult,
    FinchClient,
    FinchClientConfig,
    FinchConfigError,
)
from finch_sandbox import (
    EndpointFaults,
    FinchSandbox,
    SandboxConfig,
    serve_in_thread,
)

FAST = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "time_scale": 0.01}
SESSION_BODY = {"customer_id": "cust-x", "customer_name": "X Co", "products": ["company"]}
MAX_ATTEMPTS = 5


def _sandbox(endpoint: str = "connect_sessions", seed: int = 11, **faults: Any) -> FinchSandbox:
    return FinchSandbox(
        SandboxConfig(
            seed=seed,
            connections=20,
            time_scale=0.01,
            faults={endpoint: EndpointFaults(**faults)} if faults else {},
        )
    )


def _http_client(sandbox: FinchSandbox, base_url: str, **overrides: Any) -> FinchClient:
    """The production client (aiohttp transport) pointed at a served emulator."""
    client_id, client_secret = sandbox.credentials
    settings: dict[str, Any] = {
        "base_url": base_url,
        "client_id": client_id,
        "client_secret": client_secret,
        "timeout_seconds": 5.0,
        "max_attempts": MAX_ATTEMPTS,
        **FAST,
    }
    settings.update(overrides)
    return FinchClient(FinchClientConfig(**settings))


def _sessions_for(sandbox: FinchSandbox, customer_id: str) -> int:
    return sum(s["customer_id"] == customer_id for s in sandbox.sessions())


def _create(client: FinchClient) -> tuple[FinchCallResult, dict]:
    async def scenario() -> tuple[FinchCallResult, dict]:
        async with client:
            return await client.create_connect_session(SESSION_BODY), client.stats.as_dict()

    return run(scenario())


@pytest.mark.parametrize(
    ("faults", "timeout", "created"),
    [
        pytest.param({"drop_rate": 1.0}, 5.0, 1, id="dropped-after-the-session-was-created"),
        pytest.param(
            {"hang_rate": 1.0, "hang_seconds": 2.0, "after_effect": True},
            0.5,
            1,
            id="hang-past-the-timeout-after-the-session-was-created",
        ),
        pytest.param({"error_rate": 1.0, "after_effect": True}, 5.0, 1, id="5xx-after-the-session"),
        pytest.param({"malformed_rate": 1.0}, 5.0, 1, id="200-with-an-unreadable-body"),
        # Finch did nothing here, but the client cannot tell a 5xx before from one after.
        pytest.param({"error_rate": 1.0}, 5.0, 0, id="5xx-before-the-session"),
    ],
)
def test_a_request_that_may_have_reached_finch_is_not_retried(
    faults: dict[str, Any], timeout: float, created: int
) -> None:
    sandbox = _sandbox(**faults)
    with serve_in_thread(sandbox) as base_url:
        result, stats = _create(_http_client(sandbox, base_url, timeout_seconds=timeout))
    assert result.outcome is CallOutcome.UNKNOWN
    assert result.unknown and not result.ok
    assert result.attempts == 1
    assert stats["requests"] == 1 and stats["retries"] == 0
    assert stats["by_outcome"] == {"unknown": 1}
    assert result.reason is not None and result.reason.startswith("may have taken effect: ")
    assert _sessions_for(sandbox, "cust-x") == created


def test_reauthentication_is_not_retried_after_a_dropped_connection() -> None:
    sandbox = _sandbox("reauthenticate", drop_rate=1.0)
    connection_id = live_tokens(sandbox)[0]["connection_id"]
    before = len(sandbox.sessions())

    async def scenario() -> FinchCallResult:
        async with client_for(sandbox, max_attempts=MAX_ATTEMPTS, **FAST) as client:
            return await client.reauthenticate_session({"connection_id": connection_id})

    result = run(scenario())
    assert (result.outcome, result.attempts) == (CallOutcome.UNKNOWN, 1)
    assert len(sandbox.sessions()) == before + 1


def test_in_process_hang_is_unknown_although_finch_did_nothing() -> None:
    sandbox = _sandbox(hang_rate=1.0, hang_seconds=5.0)
    client = client_for(sandbox, timeout_seconds=0.3, max_attempts=MAX_ATTEMPTS, **FAST)
    result, _ = _create(client)
    assert (result.outcome, result.attempts) == (CallOutcome.UNKNOWN, 1)
    assert _sessions_for(sandbox, "cust-x") == 0


def test_a_429_is_retried_because_finch_refused_it_unprocessed() -> None:
    sandbox = _sandbox(rate_limit_rate=1.0)
    with serve_in_thread(sandbox) as base_url:
        result, stats = _create(_http_client(sandbox, base_url))
    assert result.outcome is CallOutcome.FAILED
    assert result.attempts == MAX_ATTEMPTS
    assert result.reason is not None and result.reason.startswith("failed after retries")
    assert stats["rate_limited"] == MAX_ATTEMPTS
    assert sandbox.stats()["by_endpoint"]["connect_sessions"] == {"429": MAX_ATTEMPTS}
    assert _sessions_for(sandbox, "cust-x") == 0


def test_429s_then_an_answer_create_exactly_one_session() -> None:
    sandbox = _sandbox(seed=18, rate_limit_rate=0.6)  # seed 18: three 429s, then an answer
    with serve_in_thread(sandbox) as base_url:
        result, _ = _create(_http_client(sandbox, base_url, max_attempts=20))
    assert result.outcome is CallOutcome.OK
    assert result.attempts == 4
    assert sandbox.stats()["by_endpoint"]["connect_sessions"] == {"429": 3, "200": 1}
    assert _sessions_for(sandbox, "cust-x") == 1


def test_a_refused_connection_sent_nothing_and_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now: every attempt is refused before a byte is sent.
    sandbox = _sandbox()
    result, stats = _create(_http_client(sandbox, f"http://127.0.0.1:{port}"))
    assert result.outcome is CallOutcome.FAILED
    assert result.attempts == MAX_ATTEMPTS
    assert stats["retries"] == MAX_ATTEMPTS - 1


class _HangUpHandler(socketserver.StreamRequestHandler):
    """Reads one HTTP request completely, counts it, and closes without answering."""

    def handle(self) -> None:
        length = 0
        while line := self.rfile.readline():
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        self.rfile.read(length)
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.requests += 1  # type: ignore[attr-defined]


@contextmanager
def _hang_up_server() -> Iterator[tuple[str, socketserver.ThreadingTCPServer]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _HangUpHandler)
    server.daemon_threads = True
    server.requests = 0  # type: ignore[attr-defined]
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}", server
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_hangs_up_after_the_request_is_unknown_not_a_connect_error() -> None:
    # aiohttp reports this disconnect as httpx.ConnectTimeout, the type it also gives a
    # refused connection; only its own exception tells that the request was sent.
    sandbox = _sandbox()
    with _hang_up_server() as (base_url, server):
        result, _ = _create(_http_client(sandbox, base_url))
        assert (result.outcome, result.attempts) == (CallOutcome.UNKNOWN, 1)
        assert server.requests == 1  # type: ignore[attr-defined]

        async def read() -> FinchCallResult:
            async with _http_client(sandbox, base_url) as client:
                return await client.providers()

        providers = run(read())
    assert (providers.outcome, providers.attempts) == (CallOutcome.FAILED, MAX_ATTEMPTS)
    # A read is retried (aiohttp even resends an idempotent request once on its own).
    assert server.requests - 1 >= MAX_ATTEMPTS  # type: ignore[attr-defined]


def test_reads_are_still_retried_after_a_dropped_connection() -> None:
    sandbox = _sandbox("providers", drop_rate=0.5)
    with serve_in_thread(sandbox) as base_url:

        async def read() -> FinchCallResult:
            async with _http_client(sandbox, base_url, max_attempts=20) as client:
                return await client.providers()

        result = run(read())
    assert result.outcome is CallOutcome.OK


def test_basic_credentials_are_checked_before_anything_is_sent() -> None:
    config = FinchClientConfig(base_url="http://127.0.0.1:9", client_id=None)
    with pytest.raises(FinchConfigError, match="FINCH_CLIENT_ID, FINCH_CLIENT_SECRET"):
        config.check_app_credentials()
