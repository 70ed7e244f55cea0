"""Connect-link requests: validation with Finch's limits, the request body, the ledger row.

Pure functions (no I/O, no Dagster): everything here runs before any request is sent, so
bad input is refused without touching Finch or the warehouse.
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from connections_pipeline.transform.sessions import KIND_CONNECT, KIND_REAUTHENTICATE, PENDING

# Finch's product set for Connect sessions.
PRODUCTS = (
    "company",
    "directory",
    "individual",
    "employment",
    "payment",
    "pay_statement",
    "benefits",
    "ssn",
    "deduction",
    "documents",
)
AUTH_METHODS = ("assisted", "credential", "api_token", "api_credential", "oauth")
SANDBOX_MODES = ("finch", "provider")
MAX_TEXT = 255
# Finch's default and maximum: 90 days.
MAX_MINUTES_TO_EXPIRE = 129_600
DEFAULT_MINUTES_TO_EXPIRE = MAX_MINUTES_TO_EXPIRE
# Finch's default lifetime of a reauthentication link: 30 days.
DEFAULT_REAUTH_MINUTES = 43_200
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConnectLinkError(ValueError):
    """A Connect link cannot be created; the message says why (never with a secret)."""


@dataclass(frozen=True)
class ConnectLinkRequest:
    """The fields of `POST /connect/sessions`, plus `force` (ours: allow a second link)."""

    customer_id: str
    customer_name: str
    products: tuple[str, ...]
    redirect_uri: str
    customer_email: str | None = None
    minutes_to_expire: int | None = None
    provider: str | None = None
    auth_method: str | None = None
    manual: bool | None = None
    sandbox: str | None = None
    force: bool = False
    created_by: str = field(default="cli", compare=False)


def parse_products(text: str | Sequence[str]) -> tuple[str, ...]:
    """`a,b` (or a list) as a tuple of trimmed, non-empty product names, in order."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return tuple(part.strip() for part in parts if part and part.strip())


def validation_problems(request: ConnectLinkRequest) -> list[str]:
    """Every reason Finch would refuse `request` (empty when it is acceptable)."""
    problems = [
        *_text_problems("customer_id", request.customer_id),
        *_text_problems("customer_name", request.customer_name),
        *_product_problems(request.products),
        *_redirect_problems(request.redirect_uri),
    ]
    email = request.customer_email
    if email is not None and (len(email) > MAX_TEXT or not _EMAIL.match(email)):
        problems.append(f"customer_email must be a valid email address, got {email!r}")
    minutes = request.minutes_to_expire
    if minutes is not None and (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not 1 <= minutes <= MAX_MINUTES_TO_EXPIRE
    ):
        problems.append(
            f"minutes_to_expire must be a whole number from 1 to {MAX_MINUTES_TO_EXPIRE}, "
            f"got {minutes!r}"
        )
    if request.auth_method is not None and request.auth_method not in AUTH_METHODS:
        problems.append(
            f"auth_method must be one of {', '.join(AUTH_METHODS)}, got {request.auth_method!r}"
        )
    if request.auth_method is not None and request.provider is None:
        problems.append("auth_method needs a provider (Finch's integration.provider)")
    if request.provider is not None and not request.provider.strip():
        problems.append("provider must not be empty")
    if request.sandbox is not None and request.sandbox not in SANDBOX_MODES:
        problems.append(
            f"sandbox must be one of {', '.join(SANDBOX_MODES)}, got {request.sandbox!r}"
        )
    return problems


def check_request(request: ConnectLinkRequest) -> None:
    """Raise ConnectLinkError listing every problem of `request`, if any."""
    problems = validation_problems(request)
    if problems:
        raise ConnectLinkError("invalid Connect link request: " + "; ".join(problems))


def check_provider(provider: str | None, known: Iterable[str]) -> None:
    """Refuse a provider id that Finch's `/providers` does not list, naming the known ones."""
    known = sorted(set(known))
    if provider is not None and provider not in known:
        raise ConnectLinkError(
            f"unknown provider {provider!r}; known providers: {', '.join(known)}"
        )


def _text_problems(name: str, value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return [f"{name} is required (1-{MAX_TEXT} characters)"]
    if len(value) > MAX_TEXT:
        return [f"{name} must be at most {MAX_TEXT} characters, got {len(value)}"]
    return []


def _product_problems(products: Sequence[str]) -> list[str]:
    if not products:
        return [f"products is required: one or more of {', '.join(PRODUCTS)}"]
    unknown = [product for product in products if product not in PRODUCTS]
    if unknown:
        return [f"unknown product(s) {', '.join(unknown)}; known: {', '.join(PRODUCTS)}"]
    return []


def _redirect_problems(uri: Any) -> list[str]:
    if not isinstance(uri, str) or not uri.strip():
        return ["redirect_uri is required"]
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return [f"redirect_uri is not a valid URL: {uri!r}"]
    if parts.scheme not in ("https", "http") or not host:
        return [f"redirect_uri must be an https:// URL, got {uri!r}"]
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        return [f"redirect_uri must use https:// unless the host is localhost, got {uri!r}"]
    return []


def request_body(request: ConnectLinkRequest) -> dict[str, Any]:
    """The JSON body of `POST /connect/sessions` (only the fields that were given)."""
    body: dict[str, Any] = {
        "customer_id": request.customer_id,
        "customer_name": request.customer_name,
        "products": list(dict.fromkeys(request.products)),
        "redirect_uri": request.redirect_uri,
    }
    if request.customer_email is not None:
        body["customer_email"] = request.customer_email
    if request.minutes_to_expire is not None:
        body["minutes_to_expire"] = request.minutes_to_expire
    if request.provider is not None:
        integration = {"provider": request.provider}
        if request.auth_method is not None:
            integration["auth_method"] = request.auth_method
        body["integration"] = integration
    if request.manual is not None:
        body["manual"] = request.manual
    if request.sandbox is not None:
        body["sandbox"] = request.sandbox
    return body


def active_sessions(ledger: pl.DataFrame, customer_id: str, now: datetime) -> pl.DataFrame:
    """The customer's Connect sessions that are pending and not yet expired at `now`."""
    return ledger.filter(
        (pl.col("kind").fill_null(KIND_CONNECT) == KIND_CONNECT)
        & (pl.col("customer_id") == customer_id)
        & (pl.col("status").fill_null(PENDING) == PENDING)
        & (pl.col("expires_at") > now)
    )


def check_no_active_session(ledger: pl.DataFrame, request: ConnectLinkRequest, now: datetime):
    """Refuse a second active link for one customer unless `force`: two links for one
    employer end in two connections."""
    if request.force:
        return
    active = active_sessions(ledger, request.customer_id, now)
    if active.height:
        row = active.row(0, named=True)
        raise ConnectLinkError(
            f"customer_id {request.customer_id!r} already has an active Connect session "
            f"{row['session_id']} (expires {row['expires_at']:%Y-%m-%dT%H:%M:%SZ}): "
            f"{row['connect_url']}; pass force to create another"
        )


def server_time(server_date: str | None, fallback: datetime) -> datetime:
    """Finch's clock from a response `Date` header, else `fallback` (both UTC)."""
    if server_date:
        try:
            moment = parsedate_to_datetime(server_date)
        except (TypeError, ValueError):
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment.astimezone(UTC)
    return fallback.astimezone(UTC)


def ledger_row(
    request: ConnectLinkRequest, response: dict[str, Any], created_at: datetime
) -> pl.DataFrame:
    """The ledger row of a session Finch created: every input, the link and its times."""
    minutes = request.minutes_to_expire or DEFAULT_MINUTES_TO_EXPIRE
    return _row(
        {
            "session_id": str(response["session_id"]),
            "connect_url": str(response["connect_url"]),
            "customer_id": request.customer_id,
            "customer_name": request.customer_name,
            "customer_email": request.customer_email,
            "products": ",".join(sorted(set(request.products))),
            "redirect_uri": request.redirect_uri,
            "provider_id": request.provider,
            "auth_method": request.auth_method,
            "manual": request.manual,
            "sandbox": request.sandbox,
            "minutes_to_expire": minutes,
            "kind": KIND_CONNECT,
            "reauth_connection_id": None,
            "created_at": created_at,
            "expires_at": created_at + timedelta(minutes=minutes),
            "created_by": request.created_by,
        }
    )


def reauth_ledger_row(
    connection: dict[str, Any],
    response: dict[str, Any],
    created_at: datetime,
    minutes_to_expire: int,
    created_by: str,
) -> pl.DataFrame:
    """The ledger row of a reauthentication session for one live connection."""
    return _row(
        {
            "session_id": str(response["session_id"]),
            "connect_url": str(response["connect_url"]),
            "customer_id": connection.get("customer_id"),
            "customer_name": connection.get("customer_name"),
            "customer_email": connection.get("customer_email"),
            "products": connection.get("products"),
            "redirect_uri": None,
            "provider_id": connection.get("provider_id"),
            "auth_method": None,
            "manual": None,
            "sandbox": None,
            "minutes_to_expire": minutes_to_expire,
            "kind": KIND_REAUTHENTICATE,
            "reauth_connection_id": connection["connection_id"],
            "created_at": created_at,
            "expires_at": created_at + timedelta(minutes=minutes_to_expire),
            "created_by": created_by,
        }
    )


def _row(values: dict[str, Any]) -> pl.DataFrame:
    values = {**values, "status": PENDING, "status_updated_at": values["created_at"]}
    schema = {
        name: pl.Datetime("us", "UTC")
        if name in ("created_at", "expires_at", "status_updated_at")
        else pl.Int32
        if name == "minutes_to_expire"
        else pl.Boolean
        if name == "manual"
        else pl.String
        for name in values
    }
    return pl.DataFrame([values], schema=schema)
