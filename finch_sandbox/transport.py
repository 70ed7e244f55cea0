"""`sandbox_transport`: the emulator in-process, behind an httpx transport.

Lets a client under test talk to the emulator without sockets while still meeting the
failures it would meet over the network: a dropped connection surfaces as
`httpx.RemoteProtocolError` and a hang past the request's read timeout as
`httpx.ReadTimeout`, both real `httpx.TransportError`s, as httpcore would raise them.
"""

from __future__ import annotations

import anyio
import httpx

from .app import create_app
from .emulator import FinchSandbox
from .faults import SimulatedConnectionDrop

LOOPBACK_CLIENT = ("127.0.0.1", 50_000)


class SandboxTransport(httpx.ASGITransport):
    """An `httpx.ASGITransport` that maps simulated network faults to httpx's own errors."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        try:
            if read_timeout is None:
                return await super().handle_async_request(request)
            with anyio.fail_after(read_timeout):
                return await super().handle_async_request(request)
        except SimulatedConnectionDrop as exc:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body", request=request
            ) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out waiting for the sandbox", request=request) from exc


def sandbox_transport(sandbox: FinchSandbox) -> SandboxTransport:
    """An in-process transport to `sandbox`; requests come from client address 127.0.0.1."""
    return SandboxTransport(create_app(sandbox), client=LOOPBACK_CLIENT)
