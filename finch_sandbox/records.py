"""The emulator's records: what Finch knows about connections, tokens and Connect sessions.

These are the single source of both the API answers and the Dashboard ground truth, so the
truth can never disagree with what the API would let a client observe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .providers import ASSISTED, AUTOMATED_AUTH_TYPES

CONNECTED = "connected"
REAUTH = "reauth"
ERROR_NO_ACCOUNT_SETUP = "error_no_account_setup"
ERROR_PERMISSIONS = "error_permissions"
PENDING = "pending"
PROCESSING = "processing"
CONNECTION_STATUSES = (
    PENDING,
    PROCESSING,
    CONNECTED,
    ERROR_NO_ACCOUNT_SETUP,
    ERROR_PERMISSIONS,
    REAUTH,
)
NEEDS_ACTION_STATUSES = frozenset({REAUTH, ERROR_NO_ACCOUNT_SETUP, ERROR_PERMISSIONS})

AUTOMATED_REFRESH = timedelta(hours=24)
ASSISTED_REFRESH = timedelta(days=7)

SESSION_PENDING = "pending"
SESSION_COMPLETED = "completed"
SESSION_EXPIRED = "expired"
KIND_CONNECT = "connect"
KIND_REAUTHENTICATE = "reauthenticate"


@dataclass(frozen=True, slots=True)
class AuthMethod:
    """One authentication method of a token and the products it grants."""

    type: str
    products: tuple[str, ...]


def connection_type_label(auth_types: tuple[str, ...] | list[str]) -> str:
    """The Dashboard's Connection Type column from a token's authentication method types."""
    automated = any(t in AUTOMATED_AUTH_TYPES for t in auth_types)
    assisted = ASSISTED in auth_types
    if automated and assisted:
        return "Automated, Assisted"
    if assisted:
        return "Assisted"
    return "Automated"


@dataclass(slots=True)
class Token:
    """An access token. Its products and methods are frozen at issue time, like Finch's."""

    access_token: str
    token_id: str
    connection_id: str
    issued_at: datetime
    auth_methods: tuple[AuthMethod, ...]
    username: str | None = None
    revoked: bool = False

    @property
    def products(self) -> tuple[str, ...]:
        if len(self.auth_methods) == 1:
            return self.auth_methods[0].products
        seen: dict[str, None] = {}
        for method in self.auth_methods:
            seen.update(dict.fromkeys(method.products))
        return tuple(seen)

    @property
    def auth_types(self) -> tuple[str, ...]:
        return tuple(m.type for m in self.auth_methods)

    @property
    def is_automated(self) -> bool:
        return any(m.type in AUTOMATED_AUTH_TYPES for m in self.auth_methods)


@dataclass(slots=True)
class Company:
    id: str
    legal_name: str
    detail_seed: int
    """Seed for the rarely read details (EIN, locations, bank accounts), built on demand so
    100,000 connections stay cheap to generate."""


@dataclass(slots=True)
class Entity:
    id: str
    name: str | None
    source_id: str | None
    status: str


@dataclass(slots=True)
class Connection:
    """One employer connection, live or disconnected."""

    connection_id: str
    account_id: str
    company: Company
    provider_id: str
    connection_type: str
    status: str
    entities: list[Entity]
    connected_at: datetime
    last_sync: datetime | None
    sync_duration: timedelta
    customer_id: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    session_id: str | None = None
    status_message: str | None = None
    sync_stalled: bool = False
    disconnected_at: datetime | None = None
    tokens: list[Token] = field(default_factory=list)

    @property
    def disconnected(self) -> bool:
        return self.disconnected_at is not None

    def current_token(self) -> Token | None:
        """The newest token that still works: it carries the current products and methods."""
        for token in reversed(self.tokens):
            if not token.revoked:
                return token
        return None

    def reference_token(self) -> Token:
        """The current token, or for a disconnected connection the last one it had."""
        return self.current_token() or self.tokens[-1]

    @property
    def refresh_interval(self) -> timedelta:
        return AUTOMATED_REFRESH if self.reference_token().is_automated else ASSISTED_REFRESH


@dataclass(slots=True)
class ConnectSession:
    """A Finch Connect session (a link handed to an employer), new or reauthenticating."""

    session_id: str
    kind: str
    customer_id: str | None
    customer_name: str | None
    customer_email: str | None
    products: tuple[str, ...]
    redirect_uri: str | None
    provider_id: str | None
    auth_method: str | None
    manual: bool
    sandbox_mode: str | None
    created_at: datetime
    expires_at: datetime
    status: str = SESSION_PENDING
    connection_id: str | None = None
    completed_at: datetime | None = None

    @property
    def connect_url(self) -> str:
        return f"https://connect.tryfinch.com/authorize?session={self.session_id}"


@dataclass(slots=True)
class AuthorizationCode:
    """A Connect authorization code: exchangeable once for its access token."""

    code: str
    access_token: str
    redirect_uri: str | None
    used: bool = False
