"""The webhook receiver: an ASGI app that answers 2xx only once an event is stored.

`POST /webhooks/finch` reads at most `MAX_BODY_BYTES`, verifies the delivery (see
`signature`), turns it into an inbox row and stores it through `store`, which returns
whether the event ID was new. Every refusal is a 4xx with nothing stored and one log line
(the reason and the event ID, never the secret or a signature); a store that fails is a 503,
which Finch retries later. A replayed event ID is acknowledged (200) and stored once.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from connections_pipeline.warehouse import WarehouseConnectionError
from connections_pipeline.webhooks.events import inbox_row
from connections_pipeline.webhooks.signature import DeliveryRejected, verify_delivery

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/finch"
HEALTH_PATH = "/healthz"
# Finch's events are a few hundred bytes; this leaves room for large authentication-method
# listings and refuses anything built to exhaust memory.
MAX_BODY_BYTES = 256 * 1024

Store = Callable[[Mapping[str, Any]], bool]
Clock = Callable[[], datetime]


def create_receiver(
    key: bytes,
    store: Store,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    clock: Clock = lambda: datetime.now(UTC),
) -> Starlette:
    """The receiver app.

    Args:
        key: the decoded webhook secret (`signature.decode_secret`).
        store: stores one inbox row durably (its own committed transaction); returns False
            when the event ID was stored already. Called in a worker thread.
        max_body_bytes: larger bodies are refused with 413 before they are read whole.
        clock: this machine's time, for the timestamp tolerance and `received_at`.
    """

    async def receive(request: Request) -> JSONResponse:
        event_id = request.headers.get("finch-event-id")
        try:
            body = await _read_limited(request, max_body_bytes)
            now = clock()
            delivery = verify_delivery(key, request.headers, body, now)
            row = inbox_row(delivery.event_id, delivery.timestamp, body, now)
        except DeliveryRejected as refusal:
            logger.warning(
                "Webhook delivery refused (%d): %s; event %s",
                refusal.status,
                refusal.reason,
                _shown(event_id),
            )
            return JSONResponse({"error": refusal.reason}, refusal.status)
        try:
            stored = await run_in_threadpool(store, row)
        except Exception as exc:
            # Finch retries a delivery that did not get a 2xx; nothing was acknowledged.
            logger.error(
                "Webhook event %s not stored, answered 503 for Finch to retry: %s",
                _shown(row["event_id"]),
                _error_text(exc),
            )
            return JSONResponse({"error": "not stored, retry later"}, 503)
        logger.info(
            "Webhook event %s (%s, connection %s) %s",
            _shown(row["event_id"]),
            row["event_type"],
            _shown(row["connection_id"]),
            "stored" if stored else "already stored",
        )
        return JSONResponse({"status": "stored" if stored else "duplicate"}, 200)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
        ]
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    too_large = DeliveryRejected(413, f"the body is larger than {limit} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _shown(value: str | None) -> str:
    """An ID as a log can show it: quoted, one line, bounded."""
    return "-" if value is None else repr(value[:80])


def _error_text(exc: Exception) -> str:
    """The store's error for the log. The warehouse's connection error names the setting
    and leaves the password out; of anything else only the class is shown, since a driver's
    message may quote what it was given."""
    if isinstance(exc, WarehouseConnectionError):
        return str(exc)
    return type(exc).__name__
