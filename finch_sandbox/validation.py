"""Request-body validation of the Finch write endpoints, answered with 400 `bad_request`.

Strict on purpose: a client that sends a field Finch would reject should fail against the
emulator first, not in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from .dataset import CONNECT_AUTH_METHODS
from .errors import bad_request, not_found
from .providers import PROVIDERS_BY_ID, Provider
from .records import CONNECTION_STATUSES

CONNECT_PRODUCTS = frozenset(
    {
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
        "plans",
        "plans_dependents",
        "plans_enrollments",
        "recordkeeping",
    }
)
"""The brief's product set plus the newer products the official SDK already accepts."""
MAX_SESSION_MINUTES = 129_600
DEFAULT_SESSION_MINUTES = 129_600
DEFAULT_REAUTH_MINUTES = 43_200
SANDBOX_CONNECTION_AUTH_TYPES = ("api_token", "assisted", "credential", "oauth")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def valid_connect_auth_method(provider: Provider, auth_method: str) -> bool:
    return auth_method in CONNECT_AUTH_METHODS and auth_method in provider.auth_types


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def parse_form_or_json(raw: bytes, content_type: str) -> dict[str, Any]:
    """`/auth/token` accepts OAuth-style form posts as well as the SDK's JSON."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            return dict(parse_qsl(raw.decode(), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise bad_request("The request body is not valid form data.") from exc
    return parse_json_object(raw)


def _string(body: Mapping[str, Any], key: str, *, required: bool, max_len: int = 255) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad_request(f"{key} is required.")
        return None
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string.")
    if not 1 <= len(value) <= max_len:
        raise bad_request(f"{key} must be between 1 and {max_len} characters.")
    return value


def _products(body: Mapping[str, Any], *, required: bool) -> tuple[str, ...] | None:
    value = body.get("products")
    if value is None:
        if required:
            raise bad_request("products is required.")
        return None
    if not isinstance(value, list) or not value:
        raise bad_request("products must be a non-empty array.")
    unknown = [p for p in value if not isinstance(p, str) or p not in CONNECT_PRODUCTS]
    if unknown:
        raise bad_request(f"Unknown products: {unknown!r}.")
    return tuple(dict.fromkeys(value))


def _minutes(body: Mapping[str, Any], default: int) -> float:
    value = body.get("minutes_to_expire")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request("minutes_to_expire must be a number.")
    if not 1 <= value <= MAX_SESSION_MINUTES:
        raise bad_request(f"minutes_to_expire must be between 1 and {MAX_SESSION_MINUTES}.")
    return value


def _optional_bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad_request(f"{key} must be a boolean.")
    return bool(value)


def _redirect_uri(body: Mapping[str, Any]) -> str | None:
    value = _string(body, "redirect_uri", required=False, max_len=2048)
    if value is not None and not value.startswith(("https://", "http://")):
        raise bad_request("redirect_uri must be an absolute http(s) URL.")
    return value


@dataclass(frozen=True, slots=True)
class NewSessionRequest:
    customer_id: str
    customer_name: str
    customer_email: str | None
    products: tuple[str, ...]
    redirect_uri: str | None
    minutes_to_expire: float
    provider_id: str | None
    auth_method: str | None
    manual: bool
    sandbox_mode: str | None


def new_session_request(body: Mapping[str, Any]) -> NewSessionRequest:
    """`POST /connect/sessions` body."""
    customer_id = _string(body, "customer_id", required=True)
    customer_name = _string(body, "customer_name", required=True)
    products = _products(body, required=True)
    email = _string(body, "customer_email", required=False)
    if email is not None and not _EMAIL.match(email):
        raise bad_request("customer_email must be a valid email address.")
    provider_id = auth_method = None
    integration = body.get("integration")
    if integration is not None:
        if not isinstance(integration, dict):
            raise bad_request("integration must be an object.")
        provider_id = integration.get("provider")
        if not isinstance(provider_id, str) or provider_id not in PROVIDERS_BY_ID:
            raise bad_request(
                f"integration.provider must be a known provider id, got {provider_id!r}."
            )
        auth_method = integration.get("auth_method")
        if auth_method is not None and not (
            isinstance(auth_method, str)
            and valid_connect_auth_method(PROVIDERS_BY_ID[provider_id], auth_method)
        ):
            raise bad_request(
                f"integration.auth_method {auth_method!r} is not offered by {provider_id}."
            )
    sandbox_mode = body.get("sandbox")
    if sandbox_mode is not None and sandbox_mode not in ("finch", "provider"):
        raise bad_request("sandbox must be 'finch' or 'provider'.")
    assert customer_id is not None and customer_name is not None and products is not None
    return NewSessionRequest(
        customer_id=customer_id,
        customer_name=customer_name,
        customer_email=email,
        products=products,
        redirect_uri=_redirect_uri(body),
        minutes_to_expire=_minutes(body, DEFAULT_SESSION_MINUTES),
        provider_id=provider_id,
        auth_method=auth_method,
        manual=_optional_bool(body, "manual"),
        sandbox_mode=sandbox_mode,
    )


@dataclass(frozen=True, slots=True)
class ReauthRequest:
    connection_id: str
    products: tuple[str, ...] | None
    redirect_uri: str | None
    minutes_to_expire: float


def reauth_request(body: Mapping[str, Any]) -> ReauthRequest:
    """`POST /connect/sessions/reauthenticate` body."""
    connection_id = _string(body, "connection_id", required=True)
    assert connection_id is not None
    return ReauthRequest(
        connection_id=connection_id,
        products=_products(body, required=False),
        redirect_uri=_redirect_uri(body),
        minutes_to_expire=_minutes(body, DEFAULT_REAUTH_MINUTES),
    )


@dataclass(frozen=True, slots=True)
class TokenRequest:
    client_id: str | None
    client_secret: str | None
    code: str | None
    redirect_uri: str | None


def token_request(body: Mapping[str, Any]) -> TokenRequest:
    """`POST /auth/token` body; the exchange checks the credentials first, then the code."""

    def text(key: str) -> str | None:
        value = body.get(key)
        return value if isinstance(value, str) and value else None

    return TokenRequest(
        text("client_id"), text("client_secret"), text("code"), text("redirect_uri")
    )


@dataclass(frozen=True, slots=True)
class SandboxConnectionRequest:
    provider: Provider
    authentication_type: str
    employee_size: int
    products: tuple[str, ...] | None


def sandbox_connection_request(body: Mapping[str, Any]) -> SandboxConnectionRequest:
    """`POST /sandbox/connections` body."""
    provider_id = body.get("provider_id")
    if not isinstance(provider_id, str) or not provider_id:
        raise bad_request("provider_id is required.")
    provider = PROVIDERS_BY_ID.get(provider_id)
    if provider is None:
        raise not_found(f"Unknown provider_id {provider_id!r}.")
    auth_type = body.get("authentication_type")
    if auth_type is None:
        auth_type = next(
            (t for t in provider.auth_types if t in SANDBOX_CONNECTION_AUTH_TYPES), "credential"
        )
    if auth_type not in SANDBOX_CONNECTION_AUTH_TYPES:
        raise bad_request(
            f"authentication_type must be one of {', '.join(SANDBOX_CONNECTION_AUTH_TYPES)}."
        )
    size = body.get("employee_size", 20)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 10_000:
        raise bad_request("employee_size must be an integer between 1 and 10000.")
    products = body.get("products")
    if products is not None:
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            raise bad_request("products must be an array of strings.")
        unknown = [p for p in products if p not in CONNECT_PRODUCTS]
        if unknown:
            raise bad_request(f"Unknown products: {unknown!r}.")
    return SandboxConnectionRequest(
        provider, auth_type, size, tuple(dict.fromkeys(products)) if products else None
    )


def connection_status(body: Mapping[str, Any]) -> str:
    """`PUT /sandbox/connections/accounts` body."""
    status = body.get("connection_status")
    if status not in CONNECTION_STATUSES:
        raise bad_request(f"connection_status must be one of {', '.join(CONNECTION_STATUSES)}.")
    return str(status)


def paging(query: Mapping[str, str]) -> tuple[int, int]:
    """`limit` (1..100, default 100) and `offset` (>= 0, default 0) of `/jobs/automated`."""

    def number(key: str, default: int, low: int, high: int | None) -> int:
        raw = query.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise bad_request(f"{key} must be an integer.") from exc
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f">= {low}"
            raise bad_request(f"{key} must be {bounds}.")
        return value

    return number("limit", 100, 1, 100), number("offset", 0, 0, None)
