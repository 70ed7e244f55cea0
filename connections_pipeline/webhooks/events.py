"""A verified delivery's body as an inbox row: event type and connection ID, little else.

The body is trusted only for what the sensor acts on — which connection, and whether it is
an `account.updated` or a job completion. The status an event claims is kept for diagnosis;
the targeted sync asks Finch what the connection's status is.
"""

import json
from datetime import datetime
from typing import Any

from connections_pipeline.decoding_limits import MAX_ID_CHARS
from connections_pipeline.webhooks.signature import DeliveryRejected

ACCOUNT_UPDATED = "account.updated"
# Finch names job events `job.<job type>.completed` (and `.succeeded` for initial syncs); the
# SDK models them together as a job completion.
JOB_PREFIX = "job."
_MAX_TYPE_LENGTH = 100
_MAX_STATUS_LENGTH = 64


def is_job_completion(event_type: str) -> bool:
    return event_type.startswith(JOB_PREFIX)


def actionable(event_type: str, connection_id: str | None) -> bool:
    """Whether an event can change the Connections page: a status change or a finished job,
    of a named connection."""
    return bool(connection_id) and (event_type == ACCOUNT_UPDATED or is_job_completion(event_type))


def inbox_row(
    event_id: str, finch_timestamp: datetime, body: bytes, received_at: datetime
) -> dict[str, Any]:
    """The `finch_webhook_events` row of one verified delivery.

    Raises:
        DeliveryRejected: 400 when the body is not a JSON object with an `event_type`.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise DeliveryRejected(400, "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise DeliveryRejected(400, "the body is not a JSON object")
    event_type = _text(payload.get("event_type"), _MAX_TYPE_LENGTH)
    if event_type is None:
        raise DeliveryRejected(400, "the body has no event_type")
    data = payload.get("data")
    status = data.get("status") if isinstance(data, dict) else None
    return {
        "event_id": event_id,
        "event_type": event_type,
        "connection_id": _text(payload.get("connection_id"), MAX_ID_CHARS),
        "entity_id": _text(payload.get("entity_id"), MAX_ID_CHARS),
        "status": _text(status, _MAX_STATUS_LENGTH) if event_type == ACCOUNT_UPDATED else None,
        "finch_timestamp": finch_timestamp,
        "received_at": received_at,
    }


def _text(value: object, limit: int) -> str | None:
    """A short, printable string, or None: nothing else from the body reaches a column."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isprintable():
        return None
    return value
