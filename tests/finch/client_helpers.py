"""Building blocks for client tests: a client wired to an in-process emulator."""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from connections_pipeline.finch import FinchClient, FinchClientConfig
from finch_sandbox import FinchSandbox, sandbox_transport

T = TypeVar("T")
IN_PROCESS_BASE_URL = "http://finch.sandbox.local"


def client_for(sandbox: FinchSandbox, **overrides: Any) -> FinchClient:
    """A client paced at the emulator's time scale, talking to it in-process."""
    client_id, client_secret = sandbox.credentials
    settings: dict[str, Any] = {
        "base_url": IN_PROCESS_BASE_URL,
        "client_id": client_id,
        "client_secret": client_secret,
        "time_scale": sandbox.config.time_scale,
        "timeout_seconds": 5.0,
    }
    settings.update(overrides)
    return FinchClient(FinchClientConfig(**settings), transport=sandbox_transport(sandbox))


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def live_tokens(sandbox: FinchSandbox) -> list[dict[str, Any]]:
    return [token for token in sandbox.tokens() if not token["revoked"]]
