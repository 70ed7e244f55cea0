"""Create Connect links and reauthentication links, and record them in the session ledger.

Order matters: validate everything, ask Finch, and only then write the ledger, so a refused
or failed request leaves the ledger exactly as it was. A request whose outcome is unknown
(Finch may have created the link, its answer was lost) is not retried; it is recorded with
status `unknown` so it blocks a second link until it would have expired.
"""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connections_pipeline.concepts import KIND_CONNECT, KIND_REAUTHENTICATE
from connections_pipeline.connect_links.reauth import connections_needing_link, reauth_queue
from connections_pipeline.connect_links.request import (
    DEFAULT_REAUTH_MINUTES,
    MAX_MINUTES_TO_EXPIRE,
    ConnectLinkError,
    ConnectLinkOutcomeUnknown,
    ConnectLinkRequest,
    check_no_active_session,
    check_provider,
    check_request,
    ledger_row,
    normalized,
    reauth_ledger_row,
    redirect_uri_problems,
    request_body,
    server_time,
    unknown_attempt_key,
    unknown_ledger_row,
)
from connections_pipeline.finch import FinchClient
from connections_pipeline.finch.access import FinchAccess
from connections_pipeline.finch.results import MAY_HAVE_TAKEN_EFFECT, FinchCallResult
from connections_pipeline.warehouse import CONNECTIONS_HISTORY, Warehouse

logger = logging.getLogger(__name__)
_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class CreatedLink:
    session_id: str
    connect_url: str
    created_at: datetime
    expires_at: datetime


@dataclass
class ReauthOutcome:
    """What a re-auth run did: links created, connections that failed (nothing recorded,
    retried next run), attempts of unknown outcome (recorded, not retried before they
    expire), and the rebuilt queue."""

    as_of: datetime
    created: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    queue: pl.DataFrame = field(default_factory=pl.DataFrame)


@dataclass(frozen=True)
class _Attempt:
    """One `POST /connect/sessions`: its result, Finch's clock before it, and when it left."""

    result: FinchCallResult
    finch_now: datetime
    attempted_at: datetime


def create_connect_link(
    request: ConnectLinkRequest, finch: FinchAccess, warehouse: Warehouse
) -> CreatedLink:
    """Validate `request`, create the session at Finch and record it in the ledger.

    The customer id is sent and stored trimmed; the duplicate guard compares it by
    `customer_key` (NFKC, invisible characters removed, case-folded, trimmed).

    Raises:
        ConnectLinkOutcomeUnknown: Finch may have created the link but its answer was lost
            (timeout, dropped connection, 5xx); the attempt is recorded with status
            `unknown` and blocks another link for the customer until it would expire.
        ConnectLinkError: the request is invalid, a link is already open for the customer
            (without `force`), or Finch refused it or could not be reached; nothing was
            recorded.
        FinchConfigError: the Finch settings are unusable (e.g. no client credentials).
        WarehouseConnectionError: the warehouse cannot be reached.
    """
    check_request(request)
    request = normalized(request)
    finch.client_config().check_app_credentials()
    warehouse.check_connection()
    warehouse.ensure_tables()
    ledger = warehouse.read_sessions()
    attempt = asyncio.run(_create(request, finch, ledger))
    result = attempt.result
    created_at = server_time(result.server_date, attempt.finch_now)
    if result.unknown:
        key = unknown_attempt_key(KIND_CONNECT, request_body(request), attempt.attempted_at)
        row = unknown_ledger_row(request, key, created_at)
        expires_at = row["expires_at"][0]
        _record(
            warehouse,
            row,
            f"Finch may have created a Connect link for customer_id {request.customer_id!r} "
            f"(outcome unknown, attempt {key})",
        )
        logger.warning(
            "Connect link for customer %s: outcome unknown, recorded as %s (%s)",
            request.customer_id,
            key,
            result.reason,
        )
        raise ConnectLinkOutcomeUnknown(
            f"outcome unknown: Finch may have created a Connect link for customer_id "
            f"{request.customer_id!r} but its answer was lost ({_describe(result)}); not "
            f"retried, recorded as {key} in the ledger; it blocks another link for this "
            f"customer until {expires_at:{_TIME}}; pass force to create another",
            attempt_key=key,
            expires_at=expires_at,
        )
    if not result.ok:
        raise ConnectLinkError(f"Finch did not create the Connect session: {_describe(result)}")
    row = ledger_row(request, result.data, created_at)
    link = row.row(0, named=True)
    _record(
        warehouse,
        row,
        f"Finch created Connect session {link['session_id']} ({link['connect_url']}) for "
        f"customer_id {request.customer_id!r}",
    )
    logger.info(
        "Connect session %s created for customer %s", link["session_id"], request.customer_id
    )
    return CreatedLink(
        link["session_id"], link["connect_url"], link["created_at"], link["expires_at"]
    )


async def _create(
    request: ConnectLinkRequest, finch: FinchAccess, ledger: pl.DataFrame
) -> _Attempt:
    async with finch.open_client() as client:
        now = await _finch_now(client, request.provider)
        check_no_active_session(ledger, request, now)
        attempted_at = datetime.now(UTC)
        result = await client.create_connect_session(request_body(request))
    return _Attempt(result, now, attempted_at)


def _record(warehouse: Warehouse, row: pl.DataFrame, what_finch_holds: str) -> None:
    """Add `row` to the ledger. Finch already holds (or may hold) the link, so a failure
    here says so: the operator must know of a link the ledger does not show."""
    try:
        warehouse.import_sessions(row)
    except Exception as exc:
        logger.debug("Ledger write failed", exc_info=True)
        raise ConnectLinkError(
            f"{what_finch_holds}, but the ledger could not record it: {_first_line(exc)}; "
            "record it before creating another link"
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


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
    if result.unknown:
        what = (result.reason or "").removeprefix(MAY_HAVE_TAKEN_EFFECT) or "no answer"
        return f"{what}, Finch-Request-Id {result.request_id}" if result.request_id else what
    parts = [f"HTTP {result.status_code}" if result.status_code else result.outcome.value]
    for text in (result.error_name, result.reason, result.message):
        if text and not any(text in part for part in parts):
            parts.append(text)
    if result.request_id:
        parts.append(f"Finch-Request-Id {result.request_id}")
    return ", ".join(parts)


def create_reauth_links(
    finch: FinchAccess,
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
    if redirect_uri:
        problems = redirect_uri_problems(redirect_uri)
        if problems:
            raise ConnectLinkError("; ".join(problems))
    finch.client_config().check_app_credentials()
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
    finch: FinchAccess,
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
            attempted_at = datetime.now(UTC)
            result = await client.reauthenticate_session(body)
            created_at = server_time(result.server_date, as_of)
            if result.unknown:
                key = unknown_attempt_key(KIND_REAUTHENTICATE, body, attempted_at)
                row = reauth_ledger_row(
                    connection, None, created_at, minutes_to_expire, created_by, attempt_key=key
                )
                _record(
                    warehouse,
                    row,
                    "Finch may have created a reauthentication link for connection "
                    f"{connection['connection_id']} (outcome unknown, attempt {key})",
                )
                outcome.unknown.append(
                    f"{connection['connection_id']}: {_describe(result)}; recorded as {key}, "
                    f"no new attempt before {row['expires_at'][0]:{_TIME}}"
                )
                continue
            if not result.ok:
                outcome.failed.append(f"{connection['connection_id']}: {_describe(result)}")
                continue
            row = reauth_ledger_row(
                connection, result.data, created_at, minutes_to_expire, created_by
            )
            _record(
                warehouse,
                row,
                f"Finch created reauthentication session {row['session_id'][0]} "
                f"({row['connect_url'][0]}) for connection {connection['connection_id']}",
            )
            outcome.created.append(row.row(0, named=True))
    return outcome
