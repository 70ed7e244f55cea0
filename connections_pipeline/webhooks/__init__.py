"""Finch webhooks into the warehouse: verify each delivery, store it once in the inbox.

No Dagster here: the receiver is a plain ASGI app with a function that stores an event; the
sensor that acts on the inbox lives in the Dagster layer (`webhook_sensor.py`).
"""

from connections_pipeline.webhooks.events import (
    ACCOUNT_UPDATED,
    actionable,
    inbox_row,
    is_job_completion,
)
from connections_pipeline.webhooks.receiver import MAX_BODY_BYTES, WEBHOOK_PATH, create_receiver
from connections_pipeline.webhooks.signature import (
    SECRET_SETTING,
    TOLERANCE,
    DeliveryRejected,
    WebhookSecretError,
    decode_secret,
    sign,
    verify_delivery,
)

__all__ = [
    "ACCOUNT_UPDATED",
    "MAX_BODY_BYTES",
    "SECRET_SETTING",
    "TOLERANCE",
    "WEBHOOK_PATH",
    "DeliveryRejected",
    "WebhookSecretError",
    "actionable",
    "create_receiver",
    "decode_secret",
    "inbox_row",
    "is_job_completion",
    "sign",
    "verify_delivery",
]
