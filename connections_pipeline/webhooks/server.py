"""Serving the receiver with uvicorn: in the foreground (the CLI) or from a thread (tests,
the latency benchmark)."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from connections_pipeline.warehouse import Warehouse
from connections_pipeline.webhooks.receiver import create_receiver
from connections_pipeline.webhooks.signature import decode_secret

STARTUP_TIMEOUT_SECONDS = 15.0


def receiver_app(warehouse: Warehouse, secret: str | None) -> Starlette:
    """The receiver storing into `warehouse`'s inbox, with the tables created first.

    Raises:
        WebhookSecretError: the secret is missing or not base64 (checked before anything
            is created).
    """
    key = decode_secret(secret)
    warehouse.ensure_tables()
    return create_receiver(key, warehouse.store_webhook_event)


def _config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    # Our own line per delivery says more than an access log and nothing secret.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        lifespan="off",
        server_header=False,
    )


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve until interrupted (SIGINT/SIGTERM stop it gracefully)."""
    uvicorn.Server(_config(app, host, port)).run()


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a daemon thread; yields its base URL and stops on exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    server = uvicorn.Server(_config(app, host, port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="webhook-receiver", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.01)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        yield f"http://{shown}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
