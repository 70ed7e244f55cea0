"""The emulator over loopback HTTP, with chosen calls of chosen tokens answering a hostile
body instead: the rest of the fleet meets the emulator as usual."""

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import format_datetime

import uvicorn

from finch_sandbox import FinchSandbox, create_app
from finch_sandbox.server import base_url_of, bind_loopback

STARTUP_SECONDS = 15.0


def _bearer(scope: dict) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value.startswith(b"Bearer "):
            return value[len(b"Bearer ") :].decode("latin-1")
    return None


def hostile_app(sandbox: FinchSandbox, answers: Mapping[tuple[str, str], bytes]):
    """The emulator's ASGI app; a request for a (path, access token) of `answers` gets that
    body with status 200 (and the emulator's clock in its `Date` header)."""
    inner = create_app(sandbox)

    async def app(scope: dict, receive, send) -> None:
        token = _bearer(scope) if scope["type"] == "http" else None
        body = answers.get((scope.get("path", ""), token)) if token else None
        if body is None:
            await inner(scope, receive, send)
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"date", format_datetime(sandbox.now, usegmt=True).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def serve_hostile(sandbox: FinchSandbox, answers: Mapping[tuple[str, str], bytes]) -> Iterator[str]:
    """Serve `hostile_app` on a loopback port from a thread; yields the base URL."""
    sock = bind_loopback("127.0.0.1", 0)
    config = uvicorn.Config(
        hostile_app(sandbox, answers),
        log_level="warning",
        access_log=False,
        lifespan="off",
        date_header=False,
        server_header=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the hostile emulator did not start")
            time.sleep(0.01)
        yield base_url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
