"""Connect-link requests: validation with Finch's limits, the request body, the ledger row.

Pure functions (no I/O, no Dagster): everything here runs before any request is sent, so
bad input is refused without touching Finch or the warehouse.
"""

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import polars as pl
import regex

from connections_pipeline.concepts import (
    AUTH_METHODS,
    CONNECT_PRODUCTS,
    KIND_CONNECT,
    KIND_REAUTHENTICATE,
    PENDING,
    SANDBOX_MODES,
    UNKNOWN,
)

MAX_TEXT = 255
# Finch's default and maximum: 90 days.
MAX_MINUTES_TO_EXPIRE = 129_600
DEFAULT_MINUTES_TO_EXPIRE = MAX_MINUTES_TO_EXPIRE
# Finch's default lifetime of a reauthentication link: 30 days.
DEFAULT_REAUTH_MINUTES = 43_200
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The ledger key of an attempt whose outcome is unknown: Finch never told us its session id.
# Finch's session ids are UUIDs, so this prefix can never meet one.
UNKNOWN_KEY_PREFIX = "unknown-"
UNKNOWN_KEY_HEX_DIGITS = 32
# Ledger statuses that stand for a link that may be open: a second link for the same
# customer (or reauthentication of the same connection) waits until they expire.
OPEN_STATUSES = (PENDING, UNKNOWN)
_TIME = "%Y-%m-%dT%H:%M:%SZ"
# What a reader cannot see: format characters (zero-width space and joiners, BOM, soft
# hyphen, bidi marks) and the rest of Unicode's default-ignorable code points (Hangul
# fillers, variation selectors), which a renderer shows as nothing.
_INVISIBLE = regex.compile(r"[\p{Cf}\p{Default_Ignorable_Code_Point}]")


class ConnectLinkError(ValueError):
    """A Connect link cannot be created; the message says why (never with a secret)."""


class ConnectLinkOutcomeUnknown(ConnectLinkError):
    """The request may have created a link at Finch, but no usable answer came back.

    The attempt is in the ledger with status `unknown` under `attempt_key`, and blocks another
    link for the customer (or connection) until `expires_at` unless forced.
    """

    def __init__(self, message: str, attempt_key: str, expires_at: datetime) -> None:
        super().__init__(message)
        self.attempt_key = attempt_key
        self.expires_at = expires_at


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

    @classmethod
    def from_fields(cls, values: Mapping[str, Any], *, created_by: str) -> "ConnectLinkRequest":
        """A request from any mapping holding its fields (parsed CLI arguments, a run's
        config); other keys are ignored, `products` may be `a,b` or a list."""
        known = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        known["products"] = parse_products(known.get("products", ()))
        return cls(**{**known, "created_by": created_by})


def customer_key(customer_id: str) -> str:
    """How the duplicate guard compares customer ids: NFKC-normalised, invisible characters
    removed, case-folded and trimmed, so ` redteam-1`, `redteam-1` + U+200B (zero-width
    space) and full-width `REDTEAM-1` (U+FF32...) are all the customer `REDTEAM-1`.

    Derived on every comparison, never stored: ledger rows written before a rule was added
    compare by the current one. Empty when the id has nothing a person could see.
    """
    visible = _INVISIBLE.sub("", unicodedata.normalize("NFKC", customer_id))
    # Case folding can leave a string that is no longer NFKC (e.g. U+0345); normalise again.
    return unicodedata.normalize("NFKC", visible.casefold()).strip()


def normalized(request: ConnectLinkRequest) -> ConnectLinkRequest:
    """`request` as it is sent and stored: the customer id trimmed, otherwise as given.

    Not `customer_key`: Finch hands the id back in `/introspect` and the token exchange,
    and the application matches it against its own records, which hold it as typed."""
    return replace(request, customer_id=request.customer_id.strip())


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
        *redirect_uri_problems(request.redirect_uri),
    ]
    email = request.customer_email
    if email is not None and (
        len(email) > MAX_TEXT or not _EMAIL.match(email) or _has_control(email)
    ):
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
    elif request.provider is not None and _has_control(request.provider):
        problems.append(f"provider must not contain control characters, got {request.provider!r}")
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
    if len(value.strip()) > MAX_TEXT:
        return [f"{name} must be at most {MAX_TEXT} characters, got {len(value.strip())}"]
    if not customer_key(value):
        return [
            f"{name} must hold a visible character, got only invisible ones (zero-width, "
            f"BOM or other format characters): {value!r}"
        ]
    if _has_control(value):
        # A NUL cannot even be stored in PostgreSQL text; none of them belongs in a name.
        return [f"{name} must not contain control characters, got {value!r}"]
    return []


def _has_control(text: str) -> bool:
    """Whether `text` holds a C0 or C1 control character (TAB, CR, LF, NUL, DEL, U+0085...)."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def _product_problems(products: Sequence[str]) -> list[str]:
    if not products:
        return [f"products is required: one or more of {', '.join(CONNECT_PRODUCTS)}"]
    unknown = [product for product in products if product not in CONNECT_PRODUCTS]
    if unknown:
        return [f"unknown product(s) {', '.join(unknown)}; known: {', '.join(CONNECT_PRODUCTS)}"]
    return []


def redirect_uri_problems(uri: Any) -> list[str]:
    """Finch sends the employer's browser to this URI with the authorization code.

    Checked on the text as given, before parsing: `urlsplit` silently drops TAB, CR and LF
    and strips leading control characters, so a URI that smuggles them would pass as another.
    User info (`user:pw@host`) is refused because it hides the real host from a reader
    (`https://app.example.com@evil.example/`) and puts a password in every browser's history.
    """
    if not isinstance(uri, str) or not uri.strip():
        return ["redirect_uri is required"]
    if _has_control(uri):
        return [
            "redirect_uri must not contain control characters (CR, LF, TAB, NUL or any "
            f"other C0/C1 character), got {uri!r}"
        ]
    if any(char.isspace() for char in uri):
        return [f"redirect_uri must not contain whitespace, got {uri!r}"]
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return [f"redirect_uri is not a valid URL: {uri!r}"]
    if "@" in parts.netloc:
        shown = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
        return [
            f"redirect_uri must not carry user info (user:password@) before the host, got {shown!r}"
        ]
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
    """The customer's Connect links that may be open at `now`: pending, or of unknown
    outcome, and not yet (or, if unknown, not yet would-be) expired. Customer ids match by
    `customer_key`; attempts of unknown outcome come first, then the newest."""
    open_links = ledger.filter(
        (pl.col("kind").fill_null(KIND_CONNECT) == KIND_CONNECT)
        & pl.col("status").fill_null(PENDING).is_in(OPEN_STATUSES)
        & (pl.col("expires_at") > now)
        & pl.col("customer_id").is_not_null()
    )
    key = customer_key(customer_id)
    same = pl.Series(
        [customer_key(value) == key for value in open_links["customer_id"]], dtype=pl.Boolean
    )
    return open_links.filter(same).sort(
        [pl.col("status") != UNKNOWN, "created_at"], descending=[False, True]
    )


def check_no_active_session(ledger: pl.DataFrame, request: ConnectLinkRequest, now: datetime):
    """Refuse a second open link for one customer unless `force`: two links for one
    employer end in two connections. An attempt of unknown outcome counts as open: Finch may
    have created that link."""
    if request.force:
        return
    active = active_sessions(ledger, request.customer_id, now)
    if not active.height:
        return
    row = active.row(0, named=True)
    expires = f"{row['expires_at']:{_TIME}}"
    if row["status"] == UNKNOWN:
        raise ConnectLinkError(
            f"customer_id {request.customer_id!r} has a Connect link attempt of unknown "
            f"outcome, {row['session_id']} (made {row['created_at']:{_TIME}} for customer_id "
            f"{row['customer_id']!r}): Finch may have created that link; it blocks another "
            f"until {expires}; pass force to create another"
        )
    stored = row["customer_id"]
    as_stored = "" if stored == request.customer_id else f"customer_id {stored!r}, "
    raise ConnectLinkError(
        f"customer_id {request.customer_id!r} already has an active Connect session "
        f"{row['session_id']} ({as_stored}expires {expires}): {row['connect_url']}; pass "
        "force to create another"
    )


def unknown_attempt_key(kind: str, body: Mapping[str, Any], attempted_at: datetime) -> str:
    """The ledger key of an attempt whose outcome is unknown (it has no Finch session id).

    `unknown-` and 32 hex digits of the SHA-256 of the session kind, the request body and the
    moment of the attempt (UTC, microseconds): fixed once written (a sync never changes it),
    one per attempt, and never equal to one of Finch's session ids, which are UUIDs.
    """
    payload = json.dumps(
        {"kind": kind, "body": body, "attempted_at": attempted_at.astimezone(UTC).isoformat()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(payload.encode()).hexdigest()
    return UNKNOWN_KEY_PREFIX + digest[:UNKNOWN_KEY_HEX_DIGITS]


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
    return _connect_row(
        request, str(response["session_id"]), str(response["connect_url"]), created_at, PENDING
    )


def unknown_ledger_row(
    request: ConnectLinkRequest, attempt_key: str, attempted_at: datetime
) -> pl.DataFrame:
    """The ledger row of an attempt whose outcome is unknown: every input, no link, status
    `unknown`, and the `expires_at` the link would have if Finch created it."""
    return _connect_row(request, attempt_key, None, attempted_at, UNKNOWN)


def _connect_row(
    request: ConnectLinkRequest,
    session_id: str,
    connect_url: str | None,
    created_at: datetime,
    status: str,
) -> pl.DataFrame:
    minutes = request.minutes_to_expire or DEFAULT_MINUTES_TO_EXPIRE
    return _row(
        {
            "session_id": session_id,
            "connect_url": connect_url,
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
        },
        status,
    )


def reauth_ledger_row(
    connection: dict[str, Any],
    response: dict[str, Any] | None,
    created_at: datetime,
    minutes_to_expire: int,
    created_by: str,
    *,
    attempt_key: str | None = None,
) -> pl.DataFrame:
    """The ledger row of a reauthentication session for one live connection; with
    `attempt_key` and no `response`, of an attempt whose outcome is unknown."""
    if response is None:
        if attempt_key is None:
            raise ValueError("an attempt of unknown outcome needs its attempt_key")
        session_id, connect_url, status = attempt_key, None, UNKNOWN
    else:
        session_id = str(response["session_id"])
        connect_url, status = str(response["connect_url"]), PENDING
    return _row(
        {
            "session_id": session_id,
            "connect_url": connect_url,
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
        },
        status,
    )


def _row(values: dict[str, Any], status: str) -> pl.DataFrame:
    values = {**values, "status": status, "status_updated_at": values["created_at"]}
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
