"""Create Connect links and reauthentication links, and record them in the session ledger.

Order matters: validate everything, ask Finch, and only then write the ledger, so a refused
or failed request leaves the ledger exactly as it was.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connections_pipeline.connect_links.reauth import connections_needing_link, reauth_queue
from connections_pipeline.connect_links.request import (
    DEFAULT_REAUTH_MINUTES,
    MAX_MINUTES_TO_EXPIRE,
    ConnectLinkError,
    ConnectLinkRequest,
    check_no_active_session,
    check_provider,
    check_request,
    ledger_row,
    reauth_ledger_row,
    request_body,
    server_time,
)
from connections_pipeline.finch import FinchClient
from connections_pipeline.finch.errors import FinchCallResult
from connections_pipeline.resources.finch_api import FinchResource
from connections_pipeline.warehouse import CONNECTIONS_HISTORY, Warehouse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedLink:
    session_id: str
    connect_url: str
    created_at: datetime
    expires_at: datetime


@dataclass
class ReauthOutcome:
    as_of: datetime
    created: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    queue: pl.DataFrame = field(default_factory=pl.DataFrame)


def create_connect_link(
    request: ConnectLinkRequest, finch: FinchResource, warehouse: Warehouse
) -> CreatedLink:
    """Validate `request`, create the session at Finch and record it in the ledger.

    Raises:
        ConnectLinkError: the request is invalid, a link is already active for the
            customer (without `force`), or Finch refused or could not be reached; nothing
            was recorded.
        FinchConfigError: the Finch settings are unusable (e.g. no client credentials).
        WarehouseConnectionError: the warehouse cannot be reached.
    """
    check_request(request)
    finch.client_config()
    warehouse.check_connection()
    warehouse.ensure_tables()
    ledger = warehouse.read_sessions()
    result, now = asyncio.run(_create(request, finch, ledger))
    created_at = server_time(result.server_date, now)
    row = ledger_row(request, result.data, created_at)
    warehouse.import_sessions(row)
    link = row.row(0, named=True)
    logger.info(
        "Connect session %s created for customer %s", link["session_id"], request.customer_id
    )
    return CreatedLink(
        link["session_id"], link["connect_url"], link["created_at"], link["expires_at"]
    )


async def _create(
    request: ConnectLinkRequest, finch: FinchResource, ledger: pl.DataFrame
) -> tuple[FinchCallResult, datetime]:
    async with finch.open_client() as client:
        now = await _finch_now(client, request.provider)
        check_no_active_session(ledger, request, now)
        result = await client.create_connect_session(request_body(request))
    if not result.ok:
        raise ConnectLinkError(f"Finch did not create the Connect session: {_describe(result)}")
    return result, now


async def _finch_now(client: FinchClient, provider: str | None) -> datetime:
    """Finch's clock (from `/providers`' `Date` header), checking `provider` on the way."""
    providers = await client.providers()
    if provider is not None:
        if not providers.ok:
            raise ConnectLinkError(
                f"cannot check provider {provider!r}: GET /providers failed: {_describe(providers)}"
            )
        check_provider(provider, (str(item.get("id")) for item in providers.data))
    return server_time(providers.server_date, datetime.now(UTC))


def _describe(result: FinchCallResult) -> str:
    parts = [f"HTTP {result.status_code}" if result.status_code else result.outcome.value]
    parts += [text for text in (result.error_name, result.message, result.reason) if text]
    if result.request_id:
        parts.append(f"Finch-Request-Id {result.request_id}")
    return ", ".join(parts)


def create_reauth_links(
    finch: FinchResource,
    warehouse: Warehouse,
    *,
    minutes_to_expire: int = DEFAULT_REAUTH_MINUTES,
    redirect_uri: str | None = None,
    created_by: str = "reauth_asset",
) -> ReauthOutcome:
    """One reauthentication link per live connection in `reauth` that has no open link,
    then the re-auth queue rebuilt and stored (`finch_reauth_queue`).

    A connection whose request fails is listed in `failed` and gets no ledger row; the
    next run tries it again.
    """
    if not 1 <= minutes_to_expire <= MAX_MINUTES_TO_EXPIRE:
        raise ConnectLinkError(
            f"minutes_to_expire must be from 1 to {MAX_MINUTES_TO_EXPIRE}, got {minutes_to_expire}"
        )
    finch.client_config()
    warehouse.check_connection()
    warehouse.ensure_tables()
    current = warehouse.read_current()
    outcome = asyncio.run(
        _reauthenticate(finch, warehouse, current, minutes_to_expire, redirect_uri, created_by)
    )
    history = warehouse.read_table(CONNECTIONS_HISTORY)
    outcome.queue = reauth_queue(current, history, warehouse.read_sessions(), outcome.as_of)
    warehouse.replace_reauth_queue(outcome.queue)
    return outcome


async def _reauthenticate(
    finch: FinchResource,
    warehouse: Warehouse,
    current: pl.DataFrame,
    minutes_to_expire: int,
    redirect_uri: str | None,
    created_by: str,
) -> ReauthOutcome:
    async with finch.open_client() as client:
        as_of = await _finch_now(client, None)
        outcome = ReauthOutcome(as_of=as_of)
        needing = connections_needing_link(current, warehouse.read_sessions(), as_of)
        for connection in needing.iter_rows(named=True):
            body: dict[str, Any] = {
                "connection_id": connection["connection_id"],
                "minutes_to_expire": minutes_to_expire,
            }
            if redirect_uri:
                body["redirect_uri"] = redirect_uri
            result = await client.reauthenticate_session(body)
            if not result.ok:
                outcome.failed.append(f"{connection['connection_id']}: {_describe(result)}")
                continue
            created_at = server_time(result.server_date, as_of)
            row = reauth_ledger_row(
                connection, result.data, created_at, minutes_to_expire, created_by
            )
            warehouse.import_sessions(row)
            outcome.created.append(row.row(0, named=True))
    return outcome
