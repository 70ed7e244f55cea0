"""Finch's webhooks, sent by the emulator: signed `account.updated` and job-completion events.

When a connection's status changes (virtual time moves, a status is set through the admin
routes or the sandbox API, a connection is disconnected) or one of its syncs completes, the
emulator posts an event to the configured URL the way Finch does: headers `finch-event-id`,
`finch-timestamp` (Unix seconds, this machine's clock) and `finch-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the base64-decoded secret).
A delivery that does not get a 2xx is retried, like Finch does (here within seconds).

Faults, drawn from a seeded stream: a delivery sent twice (the same event ID), a first
attempt with a wrong signature, and a delay before each delivery.

Deliveries go out from one background thread, in order, so the API answers without waiting
for the receiver; `wait_until_delivered` lets a test or benchmark wait for the queue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from random import Random
from typing import Any
from urllib.parse import urlsplit

import httpx

ACCOUNT_UPDATED = "account.updated"
JOB_COMPLETED = "job.data_sync_all.completed"
EVENT_TYPES = (ACCOUNT_UPDATED, JOB_COMPLETED)
MAX_ATTEMPTS = 4
RETRY_SECONDS = 0.2


def webhook_secret(seed: int) -> str:
    """The sandbox application's webhook secret: base64 of 32 bytes, fixed per seed."""
    return base64.b64encode(Random(f"{seed}:webhook-secret").randbytes(32)).decode()


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret)
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True)
class WebhookFaults:
    """Attributes:
    duplicate_rate: share of events delivered twice, with the same event ID.
    bad_signature_rate: share of events whose first attempt carries a wrong signature
        (the receiver refuses it; the retry is signed right).
    delay_seconds: wait before each delivery.
    """

    duplicate_rate: float = 0.0
    bad_signature_rate: float = 0.0
    delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "bad_signature_rate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        delay = self.delay_seconds
        if not (isinstance(delay, int | float) and math.isfinite(delay) and 0 <= delay <= 60):
            raise ValueError(f"delay_seconds must be from 0 to 60, got {delay!r}")


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    event_type: str
    connection_id: str
    body: bytes


@dataclass
class Delivery:
    """One attempt to deliver an event, as the statistics report it."""

    event_id: str
    event_type: str
    connection_id: str
    attempt: int
    status_code: int | None
    faults: list[str] = field(default_factory=list)
    error: str | None = None


def _check_url(url: str) -> str:
    from .server import is_loopback  # the server module imports the emulator, which uses this

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"webhook url must be an http(s) URL, got {url!r}")
    if not is_loopback(parts.hostname):
        raise ValueError("the sandbox only sends webhooks to loopback addresses")
    return url


class WebhookSender:
    """Signs and posts events to one URL from a background thread.

    Args:
        secret: the base64 webhook secret (`webhook_secret(seed)`).
        seed: seeds event IDs and fault draws.
    """

    def __init__(self, secret: str, seed: int) -> None:
        self.secret = secret
        self._rng = Random(f"{seed}:webhooks")
        self._lock = threading.Lock()
        self._url: str | None = None
        self._events: frozenset[str] = frozenset(EVENT_TYPES)
        self._faults = WebhookFaults()
        self._queue: queue.Queue[tuple[WebhookEvent, bool, bool]] = queue.Queue()
        self._deliveries: list[Delivery] = []
        self._thread: threading.Thread | None = None

    def configure(
        self,
        url: str | None,
        events: tuple[str, ...] = EVENT_TYPES,
        faults: WebhookFaults | None = None,
    ) -> None:
        """Send the `events` types to `url` from now on (None: send nothing)."""
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        with self._lock:
            self._url = _check_url(url) if url is not None else None
            self._events = frozenset(events)
            self._faults = faults or WebhookFaults()

    @property
    def active(self) -> bool:
        """Whether events are sent anywhere (when not, nobody needs to look for changes)."""
        with self._lock:
            return self._url is not None

    def settings(self) -> dict[str, Any]:
        """The configuration, without the secret."""
        with self._lock:
            return {
                "url": self._url,
                "events": sorted(self._events),
                "faults": asdict(self._faults),
            }

    def deliveries(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(delivery) for delivery in self._deliveries]

    def emit(self, event_type: str, payload: dict[str, Any]) -> WebhookEvent | None:
        """Queue one event (if that type is subscribed); returns it, or None."""
        with self._lock:
            if self._url is None or event_type not in self._events:
                return None
            event_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            duplicate = self._rng.random() < self._faults.duplicate_rate
            bad_signature = self._rng.random() < self._faults.bad_signature_rate
            body = json.dumps({**payload, "event_type": event_type}).encode()
            event = WebhookEvent(event_id, event_type, payload["connection_id"], body)
            self._queue.put((event, duplicate, bad_signature))
            self._start()
            return event

    def wait_until_delivered(self, timeout: float = 30.0) -> bool:
        """Block until every queued event was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._work, name="finch-sandbox-webhooks", daemon=True
            )
            self._thread.start()

    def _work(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while True:
                event, duplicate, bad_signature = self._queue.get()
                try:
                    self._deliver(client, event, bad_signature)
                    if duplicate:
                        self._deliver(client, event, False, ["duplicate"])
                finally:
                    self._queue.task_done()

    def _deliver(
        self,
        client: httpx.Client,
        event: WebhookEvent,
        bad_signature: bool,
        faults: list[str] | None = None,
    ) -> None:
        with self._lock:
            url, delay = self._url, self._faults.delay_seconds
        if url is None:
            return
        if delay:
            time.sleep(delay)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            wrong = bad_signature and attempt == 1
            noted = [*(faults or []), *(["bad_signature"] if wrong else [])]
            record = Delivery(event.event_id, event.event_type, event.connection_id, attempt, None)
            record.faults = noted
            try:
                answer = client.post(url, content=event.body, headers=self._headers(event, wrong))
                record.status_code = answer.status_code
            except httpx.HTTPError as exc:
                record.error = type(exc).__name__
            with self._lock:
                self._deliveries.append(record)
            if record.status_code is not None and 200 <= record.status_code < 300:
                return
            time.sleep(RETRY_SECONDS * attempt)

    def _headers(self, event: WebhookEvent, wrong_signature: bool) -> dict[str, str]:
        timestamp = int(time.time())
        secret = self.secret
        if wrong_signature:
            secret = base64.b64encode(b"not-the-application-secret").decode()
        return {
            "content-type": "application/json",
            "finch-event-id": event.event_id,
            "finch-timestamp": str(timestamp),
            "finch-signature": signature(secret, event.event_id, timestamp, event.body),
        }
