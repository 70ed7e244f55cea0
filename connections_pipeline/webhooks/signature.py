"""Finch's webhook signature check, the algorithm of the official SDK's
`client.webhooks.verify_signature` (finch-api), written out so the receiver needs no SDK.

A delivery carries `finch-event-id`, `finch-timestamp` (Unix seconds) and `finch-signature`:
one or more space-separated `v1,<base64 HMAC-SHA256>` of `"<event id>.<timestamp>.<body>"`,
keyed with the base64-decoded webhook secret. A timestamp more than five minutes away from
this machine's clock, either way, is refused: a captured delivery cannot be replayed later.
"""

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SECRET_SETTING = "FINCH_WEBHOOK_SECRET"
TOLERANCE = timedelta(minutes=5)
EVENT_ID_HEADER = "finch-event-id"
TIMESTAMP_HEADER = "finch-timestamp"
SIGNATURE_HEADER = "finch-signature"
# Finch's event IDs are UUIDs; anything much longer is not one of them.
MAX_EVENT_ID_LENGTH = 255


class WebhookSecretError(ValueError):
    """The webhook secret is missing or not base64; the message never holds the value."""


@dataclass(frozen=True)
class DeliveryRejected(Exception):
    """A delivery that must not be stored: the HTTP status to answer and why (no secret)."""

    status: int
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class VerifiedDelivery:
    event_id: str
    timestamp: datetime


def decode_secret(secret: str | None) -> bytes:
    """The HMAC key: the secret Finch shows, base64-decoded as the SDK does.

    Raises:
        WebhookSecretError: no secret, or one that decodes to nothing.
    """
    if not secret or not secret.strip():
        raise WebhookSecretError(f"{SECRET_SETTING} is not set")
    try:
        key = base64.b64decode(secret.strip())
    except (binascii.Error, ValueError):
        raise WebhookSecretError(f"{SECRET_SETTING} is not base64") from None
    if not key:
        raise WebhookSecretError(f"{SECRET_SETTING} decodes to no bytes")
    return key


def sign(key: bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The `finch-signature` value Finch would send for this delivery (`v1,<base64>`)."""
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify_delivery(
    key: bytes, headers: Mapping[str, str], body: bytes, now: datetime | None = None
) -> VerifiedDelivery:
    """Check one delivery's headers and signature.

    Args:
        key: from `decode_secret`.
        headers: the request headers; names compare without case when `headers` does
            (Starlette's and httpx's do), else they must be lowercase.

    Raises:
        DeliveryRejected: 400 for a missing or malformed header, 401 for a timestamp out of
            tolerance or no matching signature.
    """
    event_id = _header(headers, EVENT_ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signatures = _header(headers, SIGNATURE_HEADER)
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise DeliveryRejected(400, f"{EVENT_ID_HEADER} is longer than {MAX_EVENT_ID_LENGTH}")
    try:
        seconds = float(stamp)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or abs(seconds) > 1e11:
        raise DeliveryRejected(400, f"{TIMESTAMP_HEADER} is not a Unix time")
    timestamp = datetime.fromtimestamp(seconds, UTC)
    now = now or datetime.now(UTC)
    if timestamp < now - TOLERANCE:
        raise DeliveryRejected(401, f"{TIMESTAMP_HEADER} is more than 5 minutes old")
    if timestamp > now + TOLERANCE:
        raise DeliveryRejected(401, f"{TIMESTAMP_HEADER} is more than 5 minutes ahead")
    expected = sign(key, event_id, math.floor(seconds), body).encode()
    for candidate in signatures.split(" "):
        # compare_digest on the encoded forms: equal base64 text is an equal digest.
        if _v1(candidate) and hmac.compare_digest(_normalised(candidate), expected):
            return VerifiedDelivery(event_id, timestamp)
    raise DeliveryRejected(401, "no signature matches")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise DeliveryRejected(400, f"missing header {name}")
    return value.strip()


def _v1(candidate: str) -> bool:
    parts = candidate.split(",")
    return len(parts) == 2 and parts[0] == "v1"


def _normalised(candidate: str) -> bytes:
    """`v1,<base64>` re-encoded canonically, so base64 padding or alphabet variants that
    decode to the same digest compare equal (the SDK compares decoded bytes)."""
    try:
        digest = base64.b64decode(candidate.split(",")[1])
    except (binascii.Error, ValueError):
        return b""
    return ("v1," + base64.b64encode(digest).decode()).encode()
