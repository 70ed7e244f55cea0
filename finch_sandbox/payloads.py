"""Records rendered as Finch JSON, shape for shape with the official SDK's models.

Each function names the `finch.types` model it must satisfy; the contract tests parse every
one of them with the SDK's strict validation.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from random import Random
from typing import Any

from .clock import iso_z
from .dataset import Dataset
from .records import (
    CONNECTED,
    ERROR_NO_ACCOUNT_SETUP,
    ERROR_PERMISSIONS,
    PENDING,
    PROCESSING,
    REAUTH,
    Connection,
    ConnectSession,
    Entity,
    Token,
)

SANDBOX_AUTH_TYPES = ("api_token", "assisted", "credential", "oauth")
_JOB_STATUS_BY_CONNECTION = {
    REAUTH: "reauth_error",
    ERROR_PERMISSIONS: "permissions_error",
    ERROR_NO_ACCOUNT_SETUP: "error",
}
_CITIES = (
    ("San Francisco", "CA", "94105"),
    ("Austin", "TX", "73301"),
    ("New York", "NY", "10001"),
    ("Chicago", "IL", "60601"),
    ("Denver", "CO", "80202"),
    ("Seattle", "WA", "98101"),
)
_DEPARTMENTS = ("Engineering", "Sales", "Operations", "Finance", "People", "Support")
_ENTITY_TYPES = ("llc", "corporation", "partnership", "sole_proprietor", "non_profit")


def introspection(token: Token, connection: Connection, client_id: str) -> dict[str, Any]:
    """SDK `Introspection` for one token (its own products and methods, the live status)."""
    last_sync = iso_z(connection.last_sync)
    status = {
        "status": connection.status,
        "last_successful_sync": last_sync,
        "message": connection.status_message,
    }
    methods = [
        {"type": m.type, "connection_status": status, "products": list(m.products)}
        for m in token.auth_methods
    ]
    return {
        "id": token.token_id,
        "client_id": client_id,
        "client_type": "sandbox",
        "connection_id": connection.connection_id,
        "connection_status": status,
        "connection_type": connection.connection_type,
        "products": list(token.products),
        "provider_id": connection.provider_id,
        "payroll_provider_id": connection.provider_id,
        "account_id": connection.account_id,
        "authentication_methods": methods,
        "company_id": connection.company.id,
        "customer_id": connection.customer_id,
        "customer_name": connection.customer_name,
        "customer_email": connection.customer_email,
        "entities": [entity_json(e) for e in connection.entities],
        "manual": not token.is_automated,
        "username": token.username,
    }


def entity_json(entity: Entity) -> dict[str, Any]:
    return {
        "id": entity.id,
        "name": entity.name,
        "source_id": entity.source_id,
        "status": entity.status,
    }


def access_token_response(token: Token, connection: Connection) -> dict[str, Any]:
    """SDK `CreateAccessTokenResponse`."""
    return {
        "access_token": token.access_token,
        "token_type": "bearer",
        "connection_id": connection.connection_id,
        "customer_id": connection.customer_id,
        "customer_name": connection.customer_name,
        "entity_ids": [e.id for e in connection.entities],
        "products": list(token.products),
        "provider_id": connection.provider_id,
        "client_type": "sandbox",
        "connection_type": connection.connection_type,
        "company_id": connection.company.id,
        "account_id": connection.account_id,
    }


def company(connection: Connection, entity: Entity) -> dict[str, Any]:
    """SDK `Company`: details are rebuilt from the company's seed, identical on every call."""
    rng = Random(connection.company.detail_seed)
    city, state, postal = rng.choice(_CITIES)
    departments = rng.sample(_DEPARTMENTS, rng.randint(1, 4))
    legal_name = connection.company.legal_name
    if len(connection.entities) > 1 and entity.name:
        legal_name = entity.name
    return {
        "id": connection.company.id,
        "legal_name": legal_name,
        "ein": f"{rng.randrange(10, 99)}-{rng.randrange(1_000_000, 9_999_999)}",
        "entity": {"type": rng.choice(_ENTITY_TYPES), "subtype": None},
        "primary_email": connection.customer_email,
        "primary_phone_number": f"+1555{rng.randrange(1_000_000, 9_999_999)}",
        "departments": [{"name": d, "parent": None} for d in departments],
        "locations": [
            {
                "line1": f"{rng.randrange(1, 9999)} Market St",
                "line2": None,
                "city": city,
                "state": state,
                "postal_code": postal,
                "country": "US",
            }
        ],
        "accounts": [
            {
                "account_name": "Payroll",
                "account_number": str(rng.randrange(10**9, 10**11)),
                "account_type": "checking",
                "institution_name": "First Sandbox Bank",
                "routing_number": f"{rng.randrange(10**8, 10**9)}",
            }
        ],
    }


def jobs_page(
    connection: Connection,
    token: Token,
    now: datetime,
    limit: int,
    offset: int,
    base_url: str,
) -> dict[str, Any]:
    """SDK `AutomatedListResponse`, newest first.

    The next scheduled `data_sync_all` job comes first; its `created_at` is the connection's
    initial connection time (Finch's rule for scheduled jobs). Past completed syncs follow, one
    per refresh interval back from the last successful sync. Assisted-only tokens have none.
    """
    jobs: list[dict[str, Any]] = []
    if token.is_automated:
        total = _job_count(connection)
        stop = min(total, offset + limit)
        jobs = [_job(connection, index, now, base_url) for index in range(offset, stop)]
    return {
        "data": jobs,
        "meta": {"quotas": {"data_sync_all": {"allowed_refreshes": 1, "remaining_refreshes": 1}}},
    }


def _completed_job_count(connection: Connection) -> int:
    if connection.last_sync is None:
        return 0
    first_start = connection.last_sync - connection.sync_duration
    span = first_start - connection.connected_at
    if span < timedelta(0):
        return 1
    return int(span / connection.refresh_interval) + 1


def _job_count(connection: Connection) -> int:
    return 1 + _completed_job_count(connection)


def _job_id(connection: Connection, index_from_oldest: int) -> str:
    """Stable per (connection, sync number), so paging never reshuffles ids."""
    digest = hashlib.blake2b(
        f"{connection.connection_id}:{index_from_oldest}".encode(), digest_size=16
    ).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def _job(connection: Connection, index: int, now: datetime, base_url: str) -> dict[str, Any]:
    interval = connection.refresh_interval
    completed = _completed_job_count(connection)
    created = iso_z(connection.connected_at)
    if index == 0:
        if connection.last_sync is None:
            scheduled = connection.connected_at
        else:
            scheduled = connection.last_sync - connection.sync_duration + interval
        if connection.status in _JOB_STATUS_BY_CONNECTION:
            status, started = _JOB_STATUS_BY_CONNECTION[connection.status], scheduled
        elif scheduled <= now and connection.status in (CONNECTED, PENDING, PROCESSING):
            status, started = "in_progress", scheduled
        else:
            status, started = "pending", None
        job_id = _job_id(connection, completed)
        return {
            "job_id": job_id,
            "job_url": f"{base_url}jobs/automated/{job_id}",
            "type": "data_sync_all",
            "status": status,
            "created_at": created,
            "scheduled_at": iso_z(scheduled),
            "started_at": iso_z(started),
            "completed_at": None,
            "params": None,
        }
    assert connection.last_sync is not None
    back = index - 1
    started = connection.last_sync - connection.sync_duration - back * interval
    job_id = _job_id(connection, completed - 1 - back)
    return {
        "job_id": job_id,
        "job_url": f"{base_url}jobs/automated/{job_id}",
        "type": "data_sync_all",
        "status": "complete",
        "created_at": created,
        "scheduled_at": iso_z(started),
        "started_at": iso_z(started),
        "completed_at": iso_z(started + connection.sync_duration),
        "params": None,
    }


def session_json(session: ConnectSession) -> dict[str, Any]:
    """The emulator-only view of a Connect session (`GET /_sandbox/sessions`)."""
    return {
        "session_id": session.session_id,
        "connect_url": session.connect_url,
        "kind": session.kind,
        "status": session.status,
        "customer_id": session.customer_id,
        "customer_name": session.customer_name,
        "customer_email": session.customer_email,
        "products": list(session.products),
        "redirect_uri": session.redirect_uri,
        "provider_id": session.provider_id,
        "created_at": iso_z(session.created_at),
        "expires_at": iso_z(session.expires_at),
        "connection_id": session.connection_id,
    }


def token_json(token: Token, connection: Connection) -> dict[str, Any]:
    """A token as an application's token store holds it: what `POST /auth/token` answered
    when it was issued, and its issue time; `revoked` is the emulator's own knowledge."""
    return {
        "access_token": token.access_token,
        "connection_id": token.connection_id,
        "revoked": token.revoked,
        "issued_at": iso_z(token.issued_at),
        "customer_id": connection.customer_id,
        "customer_name": connection.customer_name,
        "provider_id": connection.provider_id,
        "company_id": connection.company.id,
    }


def sandbox_auth_type(token: Token) -> str:
    """The sandbox endpoints' narrower method enum (no `api_credential`)."""
    for method in token.auth_methods:
        if method.type in SANDBOX_AUTH_TYPES:
            return method.type
    return "api_token"


def sandbox_connection_response(connection: Connection, token: Token) -> dict[str, Any]:
    """SDK `ConnectionCreateResponse`."""
    return {
        "access_token": token.access_token,
        "account_id": connection.account_id,
        "authentication_type": sandbox_auth_type(token),
        "company_id": connection.company.id,
        "connection_id": connection.connection_id,
        "entity_id": connection.entities[0].id,
        "products": list(token.products),
        "provider_id": connection.provider_id,
        "token_type": "bearer",
    }


def account_update_response(connection: Connection, token: Token) -> dict[str, Any]:
    """SDK `AccountUpdateResponse`."""
    return {
        "account_id": connection.account_id,
        "authentication_type": sandbox_auth_type(token),
        "company_id": connection.company.id,
        "connection_id": connection.connection_id,
        "entity_id": connection.entities[0].id,
        "products": list(token.products),
        "provider_id": connection.provider_id,
    }


def tokens_listing(data: Dataset) -> list[dict[str, Any]]:
    return [token_json(t, data.connections[t.connection_id]) for t in data.tokens.values()]


FINCH_JOBS_URL = "https://api.tryfinch.com/jobs/automated/"


def _webhook_base(connection: Connection) -> dict[str, Any]:
    entity = connection.entities[0] if connection.entities else None
    return {
        "account_id": connection.account_id,
        "company_id": connection.company.id,
        "connection_id": connection.connection_id,
        "entity_id": entity.id if entity else None,
    }


def webhook_account_updated(connection: Connection) -> dict[str, Any]:
    """The body of an `account.updated` event (SDK `AccountUpdateEvent`) for the connection's
    status now; `disconnected` once it is disconnected."""
    token = connection.reference_token()
    return {
        **_webhook_base(connection),
        "data": {
            "status": "disconnected" if connection.disconnected else connection.status,
            "authentication_method": {"type": token.auth_types[0]},
        },
    }


def webhook_job_completed(connection: Connection) -> dict[str, Any]:
    """The body of a `job.data_sync_all.completed` event (SDK `JobCompletionEvent`) for the
    connection's latest completed sync."""
    job_id = _job_id(connection, _completed_job_count(connection) - 1)
    return {
        **_webhook_base(connection),
        "data": {"job_id": job_id, "job_url": f"{FINCH_JOBS_URL}{job_id}"},
    }
