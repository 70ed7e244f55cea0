"""Deliveries signed the way Finch signs them, written out here (not the receiver's code),
and warehouses of the tests' own."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

from connections_pipeline.warehouse import Warehouse

# A webhook secret as Finch shows one: base64 of random bytes.
SECRET = base64.b64encode(b"webhook-secret-for-tests-" + b"\x8f" * 7).decode()
OTHER_SECRET = base64.b64encode(b"another-application-secret-0123").decode()


def make_warehouse(kind: str, tmp_path: Path, postgres_url: str, **options: Any) -> Warehouse:
    if kind == "duckdb":
        return Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}", schema="finch", **options)
    return Warehouse(postgres_url, schema=f"wh_{secrets.token_hex(4)}", **options)


def account_updated(connection_id: str, status: str = "reauth", **extra: Any) -> dict[str, Any]:
    return {
        "account_id": f"acc-{connection_id}",
        "company_id": f"cmp-{connection_id}",
        "connection_id": connection_id,
        "entity_id": f"ent-{connection_id}",
        "event_type": "account.updated",
        "data": {"status": status, "authentication_method": {"type": "credential"}},
        **extra,
    }


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret)
    message = f"{event_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def delivery(
    payload: dict[str, Any] | bytes,
    *,
    secret: str = SECRET,
    event_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one signed delivery."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    event_id = event_id or f"evt_{secrets.token_hex(8)}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/json",
        "finch-event-id": event_id,
        "finch-timestamp": str(timestamp),
        "finch-signature": signature(secret, event_id, timestamp, body),
    }
    return body, headers
