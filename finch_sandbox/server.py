"""Serving the emulator over real HTTP with uvicorn: in a background thread or in the foreground.

The emulator holds test credentials and answers without TLS, so it only ever binds to a
loopback address.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from .app import create_app
from .emulator import FinchSandbox
from .faults import SimulatedConnectionDrop

STARTUP_TIMEOUT_SECONDS = 15.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


class NonLoopbackHostError(ValueError):
    """The emulator refuses to listen anywhere but on loopback."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening socket on a loopback `host` (port 0 picks a free port)."""
    if not is_loopback(host):
        raise NonLoopbackHostError(
            f"refusing to bind to {host!r}: the sandbox only listens on loopback "
            "(127.0.0.1, ::1 or localhost)"
        )
    address = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def base_url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _DropFilter(logging.Filter):
    """Hide uvicorn's traceback for a simulated drop: it is the intended behaviour."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedConnectionDrop)


_DROP_FILTER = _DropFilter()


def uvicorn_server(sandbox: FinchSandbox) -> uvicorn.Server:
    """Uvicorn configured for the emulator: quiet, and without its own `Date` header (the
    emulator sends the virtual clock's)."""
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
    config = uvicorn.Config(
        create_app(sandbox),
        log_level="warning",
        access_log=False,
        lifespan="off",
        date_header=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    return uvicorn.Server(config)


@contextmanager
def serve_in_thread(
    sandbox: FinchSandbox,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Serve `sandbox` from a daemon thread; yields the base URL and stops cleanly on exit.

    Raises:
        NonLoopbackHostError: `host` is not a loopback address.
        RuntimeError: The server did not start.
    """
    sock = bind_loopback(host, port)
    server = uvicorn_server(sandbox)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="finch-sandbox", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        yield base_url_of(sock)
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_SECONDS)
        sock.close()
