"""State changes of connections and sessions, shared by the API, the admin routes and evolution.

Keeping each transition in one place means a reconnect through `/_sandbox/sessions/.../complete`
and a reconnect that "just happened" during `advance()` leave exactly the same records behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from random import Random

from . import names
from .dataset import (
    STATUS_MESSAGES,
    ConnectionBuilder,
    ConnectionPlan,
    Dataset,
    IdSource,
    split_products,
)
from .draws import between, pick
from .providers import (
    ASSISTED,
    PROVIDERS_BY_ID,
    Provider,
    providers_supporting,
)
from .records import (
    CONNECTED,
    KIND_CONNECT,
    PENDING,
    SESSION_COMPLETED,
    AuthorizationCode,
    Connection,
    ConnectSession,
    Token,
)

SANDBOX_DEFAULT_PRODUCTS = ("company", "directory", "individual", "employment")
HOSTILE_NEW_NAME_SHARE = 0.05
REVOKE_OLDER_ON_REAUTH_SHARE = 0.5


class SessionNotCompletable(Exception):
    """The session is not pending, or its connection can no longer be reauthenticated."""


class Lifecycle:
    """Applies transitions to a `Dataset`, drawing any choice from one seeded stream."""

    def __init__(self, data: Dataset, rng: Random, ids: IdSource) -> None:
        self.data = data
        self.rng = rng
        self.ids = ids
        self.builder = ConnectionBuilder(rng, ids)

    def _new_legal_name(self) -> str:
        if self.rng.random() < HOSTILE_NEW_NAME_SHARE:
            return pick(self.rng, names.HOSTILE_COMPANY_NAMES)
        return names.company_name(self.rng)

    def _auth_types_for_session(self, session: ConnectSession) -> tuple[Provider, tuple[str, ...]]:
        """Provider and methods the employer ends up using for a Connect session."""
        rng = self.rng
        wants_assisted = session.manual or session.auth_method == ASSISTED
        if session.provider_id is not None:
            provider = PROVIDERS_BY_ID[session.provider_id]
        else:
            candidates = providers_supporting(automated=not wants_assisted, assisted=wants_assisted)
            provider = pick(rng, candidates)
        if session.auth_method is not None and session.auth_method in provider.auth_types:
            return provider, (session.auth_method,)
        if wants_assisted and provider.supports_assisted:
            return provider, (ASSISTED,)
        if provider.automated_types:
            return provider, (pick(rng, provider.automated_types),)
        return provider, (ASSISTED,)

    def complete_session(self, session: ConnectSession, at: datetime) -> tuple[Connection, Token]:
        """The employer finishes Connect: a new connection (or a reconnect) and a fresh token."""
        if session.status != "pending":
            raise SessionNotCompletable(f"session is {session.status}")
        if session.kind == KIND_CONNECT:
            connection = self._connection_from_session(session, at)
            token = connection.tokens[-1]
        else:
            connection = self.data.connections[session.connection_id or ""]
            if connection.disconnected:
                raise SessionNotCompletable("the connection has been disconnected")
            token = self.reconnect(connection, at, session.products)
        session.status = SESSION_COMPLETED
        session.connection_id = connection.connection_id
        session.completed_at = at
        return connection, token

    def _connection_from_session(self, session: ConnectSession, at: datetime) -> Connection:
        provider, auth_types = self._auth_types_for_session(session)
        products = tuple(p for p in session.products if p in provider.products) or session.products
        plan = ConnectionPlan(
            provider=provider,
            auth_types=auth_types,
            products=products,
            entity_count=between(self.rng, 2, 6) if self.rng.random() < 0.08 else 1,
            legal_name=self._new_legal_name(),
            connection_type="finch" if session.sandbox_mode == "finch" else "provider",
            status=PENDING,
            connected_at=at,
        )
        connection = self.builder.connection(plan)
        connection.customer_id = session.customer_id
        connection.customer_name = session.customer_name
        connection.customer_email = session.customer_email
        connection.session_id = session.session_id
        self.data.add_connection(connection)
        return connection

    def create_sandbox_connection(
        self,
        provider: Provider,
        auth_type: str,
        products: Sequence[str] | None,
        at: datetime,
    ) -> Connection:
        """`POST /sandbox/connections`: a Finch-generated, already synced connection."""
        chosen = (
            tuple(products)
            if products
            else tuple(p for p in SANDBOX_DEFAULT_PRODUCTS if p in provider.products)
        )
        plan = ConnectionPlan(
            provider=provider,
            auth_types=(auth_type,),
            products=chosen,
            entity_count=1,
            legal_name=self._new_legal_name(),
            connection_type="finch",
            status=CONNECTED,
            connected_at=at,
        )
        connection = self.builder.connection(plan)
        connection.last_sync = at
        self.data.add_connection(connection)
        return connection

    def issue_code(self, token: Token, redirect_uri: str | None) -> AuthorizationCode:
        code = AuthorizationCode(self.ids.uuid(), token.access_token, redirect_uri)
        self.data.codes[code.code] = code
        return code

    def reissue_token(
        self,
        connection: Connection,
        at: datetime,
        products: Sequence[str] | None = None,
    ) -> Token:
        """A new token for an existing connection; older tokens may stay valid or be revoked."""
        current = connection.reference_token()
        methods = current.auth_methods
        if products:
            methods = split_products(current.auth_types, tuple(products))
        for older in connection.tokens:
            if not older.revoked and self.rng.random() < REVOKE_OLDER_ON_REAUTH_SHARE:
                older.revoked = True
        token = self.builder.token(connection.connection_id, at, methods, current.username)
        self.data.add_token(connection, token)
        return token

    def reconnect(
        self,
        connection: Connection,
        at: datetime,
        products: Sequence[str] | None = None,
    ) -> Token:
        """The employer reauthenticates: back to connected with a new token."""
        token = self.reissue_token(connection, at, products)
        self.set_status(connection, CONNECTED)
        connection.sync_stalled = False
        return token

    def set_status(self, connection: Connection, status: str, at: datetime | None = None) -> None:
        """Set the connection's (and its still-connected entities') status.

        With `at`, a connection that never synced counts its first sync as done then, since a
        connection only reads "connected" after its first sync.
        """
        connection.status = status
        connection.status_message = STATUS_MESSAGES.get(status)
        for entity in connection.entities:
            if entity.status != "disconnected":
                entity.status = status
        if status == CONNECTED and at is not None and connection.last_sync is None:
            connection.last_sync = at

    def disconnect(self, connection: Connection, at: datetime) -> None:
        if connection.disconnected_at is None:
            connection.disconnected_at = at
        for token in connection.tokens:
            token.revoked = True

    @staticmethod
    def catch_up_syncs(connection: Connection, until: datetime) -> int:
        """Run every sync a healthy connection was due by `until`; returns how many ran."""
        if (
            connection.disconnected
            or connection.status != CONNECTED
            or connection.sync_stalled
            or connection.last_sync is None
        ):
            return 0
        interval = connection.refresh_interval
        duration = connection.sync_duration
        base = connection.last_sync - duration
        due = int((until - duration - base) / interval)
        if due <= 0:
            return 0
        connection.last_sync = base + due * interval + duration
        return due

    def first_sync(self, connection: Connection, at: datetime) -> None:
        """A pending/processing connection completes its first sync and reads connected."""
        self.set_status(connection, CONNECTED)
        connection.last_sync = at
