"""Dashboard ground truth: what Finch's Connections page would show right now.

Derived only from the generator's records (never from API responses), so a pipeline that
rebuilds the page from API calls can be checked against it row by row. The only inputs the
API cannot show directly are covered by invariants of the dataset: a connection's first token
is issued at its connection time, and the `Date` header carries the virtual "now".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .clock import iso_z
from .dataset import Dataset
from .providers import PROVIDERS_BY_ID
from .records import (
    KIND_CONNECT,
    NEEDS_ACTION_STATUSES,
    SESSION_PENDING,
    Connection,
    ConnectSession,
    connection_type_label,
)

MULTI_ENTITY_NAME = "Multi-entity connection"
TRUTH_COLUMNS = (
    "connection_key",
    "state",
    "connection_id",
    "session_id",
    "company_name",
    "company_id",
    "customer_name",
    "customer_id",
    "customer_email",
    "entity_count",
    "connection_status",
    "needs_action",
    "last_synced_at",
    "connection_type",
    "expected_refresh_hours",
    "sync_overdue",
    "connected_at",
    "provider_id",
    "provider_name",
    "products",
    "session_expires_at",
)


def connection_row(connection: Connection, now: datetime) -> dict[str, Any]:
    token = connection.reference_token()
    live = not connection.disconnected
    entity_count = max(1, len(connection.entities))
    connection_type = connection_type_label(token.auth_types)
    refresh_hours = 168 if connection_type == "Assisted" else 24
    since = connection.last_sync or connection.connected_at
    provider = PROVIDERS_BY_ID.get(connection.provider_id)
    return {
        "connection_key": connection.connection_id,
        "state": "live" if live else "disconnected",
        "connection_id": connection.connection_id,
        "session_id": connection.session_id,
        "company_name": (MULTI_ENTITY_NAME if entity_count > 1 else connection.company.legal_name),
        "company_id": connection.company.id,
        "customer_name": connection.customer_name,
        "customer_id": connection.customer_id,
        "customer_email": connection.customer_email,
        "entity_count": entity_count,
        "connection_status": connection.status if live else "disconnected",
        "needs_action": live and connection.status in NEEDS_ACTION_STATUSES,
        "last_synced_at": iso_z(connection.last_sync),
        "connection_type": connection_type,
        "expected_refresh_hours": refresh_hours,
        "sync_overdue": live and (now - since).total_seconds() > refresh_hours * 3600,
        "connected_at": iso_z(connection.connected_at),
        "provider_id": connection.provider_id,
        "provider_name": provider.display_name if provider else None,
        "products": sorted(token.products),
        "session_expires_at": None,
    }


def staged_row(session: ConnectSession) -> dict[str, Any]:
    provider = PROVIDERS_BY_ID.get(session.provider_id) if session.provider_id else None
    return {
        "connection_key": session.session_id,
        "state": "staged",
        "connection_id": None,
        "session_id": session.session_id,
        "company_name": None,
        "company_id": None,
        "customer_name": session.customer_name,
        "customer_id": session.customer_id,
        "customer_email": session.customer_email,
        "entity_count": None,
        "connection_status": None,
        "needs_action": False,
        "last_synced_at": None,
        "connection_type": None,
        "expected_refresh_hours": None,
        "sync_overdue": False,
        "connected_at": None,
        "provider_id": session.provider_id,
        "provider_name": provider.display_name if provider else None,
        "products": None,
        "session_expires_at": iso_z(session.expires_at),
    }


def is_staged(session: ConnectSession, now: datetime) -> bool:
    """An active Connect session that has not produced a connection yet."""
    return (
        session.kind == KIND_CONNECT
        and session.status == SESSION_PENDING
        and session.connection_id is None
        and session.expires_at > now
    )


def truth_rows(data: Dataset, now: datetime) -> list[dict[str, Any]]:
    """One row per connection (creation order), then one per staged session."""
    rows = [connection_row(c, now) for c in data.connections.values()]
    rows.extend(staged_row(s) for s in data.sessions.values() if is_staged(s, now))
    return rows
