"""Builders of Finch-shaped response bodies and of the frames the transform functions take.

Bodies follow the official SDK's models (`finch.types`); `sdk_checked` parses them with the
SDK so a test cannot drift into shapes Finch never sends.
"""

import datetime as dt
import json
from typing import Any

import polars as pl
from finch.types import Introspection, ProviderListResponse
from finch.types.hris import Company
from finch.types.jobs import AutomatedListResponse

from connections_pipeline.sync.raw_rows import RAW_SCHEMA
from connections_pipeline.transform.guards import Application
from connections_pipeline.transform.snapshot import Snapshot, SnapshotInputs, build_snapshot
from connections_pipeline.transform.token_frame import TOKEN_FRAME_SCHEMA
from connections_pipeline.warehouse.columns import (
    CONNECT_SESSIONS,
    CONNECTIONS,
    CONNECTIONS_COLUMNS,
    TOKENS,
    conform,
    empty_frame,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
COLUMNS = [column.name for column in CONNECTIONS_COLUMNS]
RUN_ID = "run-test"
STATUS_LABELS = {"connected": "Connected", "reauth": "Re-auth", "disconnected": "Disconnected"}


def at(hours: float) -> dt.datetime:
    """T0 shifted by `hours` (negative: in the past)."""
    return T0 + dt.timedelta(hours=hours)


def iso(moment: dt.datetime) -> str:
    """Finch's timestamp text: ISO 8601 UTC with a `Z` suffix."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


# --- Finch bodies -------------------------------------------------------------------------


def introspection(
    connection_id: str | None = "conn-a",
    *,
    status: str = "connected",
    auth_types: tuple[str, ...] = ("credential",),
    products: tuple[str, ...] = ("company", "directory"),
    entities: int | list[dict[str, Any]] = 1,
    last_sync: dt.datetime | None = None,
    customer_id: str | None = "cust-a",
    provider_id: str = "gusto",
    **overrides: Any,
) -> dict[str, Any]:
    """A `/introspect` body shaped like the SDK's `Introspection` (every field present)."""
    connection_status = {
        "status": status,
        "last_successful_sync": iso(last_sync) if last_sync else None,
        "message": None,
    }
    if isinstance(entities, int):
        entities = [
            {
                "id": f"{connection_id}-ent-{n}",
                "name": f"Entity {n} of {connection_id}",
                "source_id": f"src-{n}",
                "status": status,
            }
            for n in range(entities)
        ]
    body = {
        "id": f"tok-id-{connection_id}",
        "client_id": "client-123",
        "client_type": "production",
        "connection_id": connection_id,
        "connection_status": connection_status,
        "connection_type": "provider",
        "products": list(products),
        "provider_id": provider_id,
        "payroll_provider_id": provider_id,
        "account_id": f"acct-{connection_id}",
        "authentication_methods": [
            {"type": kind, "connection_status": connection_status, "products": list(products)}
            for kind in auth_types
        ],
        "company_id": f"company-{connection_id}",
        "customer_id": customer_id,
        "customer_name": f"Customer {customer_id}" if customer_id else None,
        "customer_email": f"{customer_id}@example.com" if customer_id else None,
        "entities": entities,
        "manual": auth_types == ("assisted",),
        "username": "payroll-admin",
    }
    body.update(overrides)
    return body


def jobs(*created_at: dt.datetime, kind: str = "data_sync_all") -> dict[str, Any]:
    """A `/jobs/automated` body (SDK `AutomatedListResponse`), newest first."""
    data = [
        {
            "job_id": f"job-{n}",
            "job_url": f"https://api.tryfinch.com/jobs/automated/job-{n}",
            "type": kind,
            "status": "complete",
            "created_at": iso(moment),
            "scheduled_at": iso(moment + dt.timedelta(hours=1)),
            "started_at": iso(moment + dt.timedelta(hours=1)),
            "completed_at": iso(moment + dt.timedelta(hours=2)),
            "params": None,
        }
        for n, moment in enumerate(created_at)
    ]
    return {"data": data, "meta": {"quotas": {"data_sync_all": {"allowed_refreshes": 1}}}}


def company(legal_name: str | None, company_id: str = "company-x") -> dict[str, Any]:
    """A `/employer/company` body (SDK `Company`)."""
    return {
        "id": company_id,
        "legal_name": legal_name,
        "ein": "12-3456789",
        "entity": {"type": "llc", "subtype": None},
        "primary_email": "payroll@example.com",
        "primary_phone_number": "+15555550100",
        "departments": [{"name": "Engineering", "parent": None}],
        "locations": [
            {
                "line1": "1 Market St",
                "line2": None,
                "city": "San Francisco",
                "state": "CA",
                "postal_code": "94105",
                "country": "US",
            }
        ],
        "accounts": [],
    }


def providers(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    """A `/providers` body: a list of SDK `ProviderListResponse`."""
    return [
        {
            "id": provider_id,
            "display_name": name,
            "products": ["company", "directory"],
            "icon": None,
            "logo": None,
            "mfa_required": False,
            "primary_color": None,
            "manual": False,
            "beta": False,
            "authentication_methods": [{"type": "credential", "benefits_support": None}],
        }
        for provider_id, name in pairs
    ]


def sdk_checked(endpoint: str, body: Any) -> Any:
    """Parse `body` with the official SDK's model for `endpoint`; returns the body unchanged."""
    if endpoint == "introspect":
        Introspection.model_validate(body)
    elif endpoint == "jobs":
        AutomatedListResponse.model_validate(body)
    elif endpoint == "company":
        Company.model_validate(body)
    elif endpoint == "providers":
        for provider in body:
            ProviderListResponse.model_validate(provider)
    return body


# --- raw responses ------------------------------------------------------------------------


def raw_row(
    endpoint: str,
    fingerprint: str | None,
    body: Any = None,
    *,
    outcome: str = "ok",
    connection_id: str | None = None,
    fetched_at: dt.datetime = T0,
    status_code: int | None = None,
    encoded: str | None = None,
) -> dict[str, Any]:
    """One row of RAW_SCHEMA; `encoded` is a literal body text (for malformed JSON)."""
    if encoded is None and outcome == "ok":
        encoded = json.dumps(body, ensure_ascii=False)
    if connection_id is None and isinstance(body, dict) and endpoint == "introspect":
        value = body.get("connection_id")
        connection_id = value if isinstance(value, str) else None
    return {
        "run_id": RUN_ID,
        "endpoint": endpoint,
        "token_fingerprint": fingerprint,
        "connection_id": connection_id,
        "fetched_at": fetched_at,
        "outcome": outcome,
        "status_code": status_code
        if status_code is not None
        else (200 if outcome == "ok" else 401),
        "error_name": None if outcome == "ok" else "invalid_token_error",
        "finch_code": None,
        "request_id": "req-1",
        "body": encoded if outcome == "ok" else None,
    }


def ok(fingerprint: str, body: dict[str, Any]) -> dict[str, Any]:
    return raw_row("introspect", fingerprint, body)


def revoked(fingerprint: str, connection_id: str | None = None) -> dict[str, Any]:
    return raw_row("introspect", fingerprint, outcome="invalid_token", connection_id=connection_id)


def failed(fingerprint: str, outcome: str = "failed") -> dict[str, Any]:
    return raw_row("introspect", fingerprint, outcome=outcome, status_code=503)


def raw_frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=RAW_SCHEMA, orient="row")


# --- warehouse-shaped frames --------------------------------------------------------------


def token_source(*rows: dict[str, Any]) -> pl.DataFrame:
    """token_fingerprint plus optional source_connection_id, source_disconnected, issued_at."""
    filled = [
        {
            "token_fingerprint": row["token_fingerprint"],
            "source_connection_id": row.get("source_connection_id"),
            "source_disconnected": row.get("source_disconnected", False),
            "issued_at": row.get("issued_at"),
        }
        for row in rows
    ]
    return pl.DataFrame(filled, schema=TOKEN_FRAME_SCHEMA, orient="row")


def _table(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    if not rows:
        return empty_frame(table)
    names = list(empty_frame(table).columns)
    full = [{name: row.get(name) for name in names} for row in rows]
    frame = pl.DataFrame(full, schema=empty_frame(table).schema, orient="row")
    return conform(frame, table)


def previous_row(key: str, **overrides: Any) -> dict[str, Any]:
    """A finch_connections row from an earlier run: a healthy live connection `key`."""
    connection_id = key
    row = {
        "connection_key": connection_id,
        "state": "live",
        "connection_id": connection_id,
        "company_name": f"Legal {connection_id}",
        "company_id": f"company-{connection_id}",
        "customer_name": "Customer cust-a",
        "customer_id": "cust-a",
        "entity_count": 1,
        "connection_status": "connected",
        "needs_action": False,
        "last_synced_at": at(-30),
        "connection_type": "Automated",
        "expected_refresh_hours": 24,
        "sync_overdue": False,
        "connected_at": at(-24 * 90),
        "provider_id": "gusto",
        "provider_name": "Gusto",
        "products": "company,directory",
        "token_count": 1,
        "working_token_fingerprint": f"fp-{connection_id}",
        "first_seen_at": at(-24 * 60),
        "last_seen_at": at(-24),
        "company_fetched_at": at(-24),
        "stale": False,
        "company_name_pending": False,
        "run_id": "run-earlier",
    }
    row.update(overrides)
    row.setdefault("connection_status_label", STATUS_LABELS.get(row["connection_status"]))
    return row


def previous(*rows: dict[str, Any]) -> pl.DataFrame:
    return _table(CONNECTIONS, list(rows))


def previous_token(fingerprint: str, connection_id: str | None, **overrides: Any) -> dict:
    row = {
        "token_fingerprint": fingerprint,
        "connection_id": connection_id,
        "first_seen_at": at(-24 * 60),
        "last_seen_at": at(-24),
        "last_outcome": "ok",
        "last_ok_at": at(-24),
    }
    row.update(overrides)
    return row


def previous_tokens(*rows: dict[str, Any]) -> pl.DataFrame:
    return _table(TOKENS, list(rows))


def session(session_id: str, **overrides: Any) -> dict[str, Any]:
    """A pending connect session in the ledger, created a day before T0, open for 90 days."""
    row = {
        "session_id": session_id,
        "connect_url": f"https://connect.tryfinch.com/authorize?session={session_id}",
        "customer_id": "cust-new",
        "customer_name": "New Customer",
        "customer_email": "new@example.com",
        "products": "company,directory",
        "provider_id": "gusto",
        "minutes_to_expire": 129_600,
        "kind": "connect",
        "created_at": at(-24),
        "expires_at": at(-24) + dt.timedelta(minutes=129_600),
        "created_by": "pipeline",
        "status": "pending",
        "status_updated_at": at(-24),
    }
    row.update(overrides)
    return row


def sessions(*rows: dict[str, Any]) -> pl.DataFrame:
    return _table(CONNECT_SESSIONS, list(rows))


def snapshot(
    *raw_rows: dict[str, Any],
    source: pl.DataFrame | None = None,
    prior: pl.DataFrame | None = None,
    prior_tokens: pl.DataFrame | None = None,
    ledger: pl.DataFrame | None = None,
    as_of: dt.datetime = T0,
    application: Application | None = None,
) -> Snapshot:
    """build_snapshot over the given raw rows; every introspected token is in the source."""
    raw = raw_frame(*raw_rows)
    if source is None:
        fingerprints = [
            row["token_fingerprint"] for row in raw_rows if row["endpoint"] == "introspect"
        ]
        source = token_source(*({"token_fingerprint": fp} for fp in fingerprints))
    return build_snapshot(
        SnapshotInputs(
            run_id=RUN_ID,
            as_of=as_of,
            raw=raw,
            token_source=source,
            previous=prior if prior is not None else previous(),
            previous_tokens=prior_tokens if prior_tokens is not None else previous_tokens(),
            sessions=ledger if ledger is not None else sessions(),
            application=application or Application(),
        ),
        COLUMNS,
    )


def row_of(frame: pl.DataFrame, key: str) -> dict[str, Any]:
    """The one row of `frame` whose connection_key is `key`."""
    rows = frame.filter(pl.col("connection_key") == key).to_dicts()
    assert len(rows) == 1, f"expected one row for {key}, got {len(rows)}"
    return rows[0]
