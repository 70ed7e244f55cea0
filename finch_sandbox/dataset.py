"""The seeded dataset: the records the emulator serves, and the generator that creates them.

Determinism is the point: every choice comes from `random.Random` streams derived from the
config seed (ids included, never `uuid4` or the wall clock), so the same `SandboxConfig` gives
identical connections, tokens and ground truth on every machine. Proportions are allotted
exactly (largest remainder) and then shuffled, so even a 200-connection dataset contains every
status, connection type and edge case rather than "probably" containing them.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from random import Random
from typing import TypeVar

from . import names
from .draws import between, pick, shuffle
from .providers import (
    ALL_PRODUCTS,
    ASSISTED,
    PROVIDERS,
    Provider,
    providers_supporting,
)
from .records import (
    ASSISTED_REFRESH,
    AUTOMATED_REFRESH,
    CONNECTED,
    ERROR_NO_ACCOUNT_SETUP,
    ERROR_PERMISSIONS,
    KIND_CONNECT,
    KIND_REAUTHENTICATE,
    NEEDS_ACTION_STATUSES,
    PENDING,
    PROCESSING,
    REAUTH,
    SESSION_COMPLETED,
    SESSION_EXPIRED,
    AuthMethod,
    AuthorizationCode,
    Company,
    Connection,
    ConnectSession,
    Entity,
    Token,
)

K = TypeVar("K", bound=Hashable)

DISCONNECTED = "disconnected"

STATE_WEIGHTS: dict[str, float] = {
    CONNECTED: 0.70,
    REAUTH: 0.09,
    ERROR_NO_ACCOUNT_SETUP: 0.03,
    ERROR_PERMISSIONS: 0.04,
    PENDING: 0.05,
    PROCESSING: 0.04,
    DISCONNECTED: 0.05,
}
FAMILY_WEIGHTS: dict[str, float] = {"automated": 0.60, "assisted": 0.25, "mixed": 0.15}
MULTI_ENTITY_SHARE = 0.08
MULTI_TOKEN_SHARE = 0.15
LEGACY_SHARE = 0.15
NO_COMPANY_PRODUCT_SHARE = 0.10
FINCH_CONNECTION_TYPE_SHARE = 0.10
OVERDUE_SHARE = 0.05
PENDING_SESSION_SHARE = 0.06
EXPIRED_SESSION_SHARE = 0.04
REAUTH_SESSION_SHARE = 0.30

DEFAULT_SESSION_MINUTES = 129_600
DEFAULT_REAUTH_MINUTES = 43_200
SESSION_MINUTES_CHOICES = (129_600, 43_200, 10_080, 2_880, 1_440)
SESSION_MINUTES_WEIGHTS = (0.6, 0.15, 0.1, 0.1, 0.05)
REDIRECT_URIS = (None, None, "https://app.example.com/finch/callback")
CONNECT_AUTH_METHODS = frozenset({"assisted", "credential", "oauth", "api_token"})

STATUS_MESSAGES = {
    REAUTH: "The credentials for this connection are no longer valid. Please reconnect.",
    ERROR_NO_ACCOUNT_SETUP: "The employer has not finished setting up the payroll account.",
    ERROR_PERMISSIONS: "The admin account lacks the permissions Finch needs.",
}


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


class IdSource:
    """Random-looking but seeded identifiers."""

    __slots__ = ("_rng",)

    def __init__(self, rng: Random) -> None:
        self._rng = rng

    def uuid(self) -> str:
        """A version-4 UUID string (formatted by hand: `uuid.UUID` dominated 100k builds)."""
        h = f"{self._rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"

    def hex(self, nbytes: int) -> str:
        return f"{self._rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


class Dataset:
    """All records, indexed for O(1) lookup by access token, connection id and session id.

    Dicts keep insertion order, which is issue/creation order: "newest" always means "last
    inserted", never a timestamp comparison (several tokens can share a virtual instant).
    """

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.connections: dict[str, Connection] = {}
        self.tokens: dict[str, Token] = {}
        self.sessions: dict[str, ConnectSession] = {}
        self.codes: dict[str, AuthorizationCode] = {}

    def add_connection(self, connection: Connection) -> None:
        self.connections[connection.connection_id] = connection
        for token in connection.tokens:
            self.tokens[token.access_token] = token

    def add_token(self, connection: Connection, token: Token) -> None:
        connection.tokens.append(token)
        self.tokens[token.access_token] = token

    def add_session(self, session: ConnectSession) -> None:
        self.sessions[session.session_id] = session


@lru_cache(maxsize=4096)
def split_products(
    auth_types: tuple[str, ...],
    products: tuple[str, ...],
) -> tuple[AuthMethod, ...]:
    """Split products over methods: in a mixed connection deductions are the assisted part.

    Cached: the combinations are few, and the (immutable) results are shared by many tokens.
    """
    if len(auth_types) == 1:
        return (AuthMethod(auth_types[0], products),)
    deduction_like = tuple(p for p in products if p in ("benefits", "deduction")) or ("deduction",)
    automated = tuple(p for p in products if p not in deduction_like) or ("directory",)
    return tuple(AuthMethod(t, deduction_like if t == ASSISTED else automated) for t in auth_types)


def allot(rng: Random, n: int, weights: dict[K, float]) -> list[K]:
    """`n` labels in exactly the given proportions (largest remainder), shuffled."""
    total = sum(weights.values())
    quotas = {k: n * w / total for k, w in weights.items()}
    counts = {k: math.floor(q) for k, q in quotas.items()}
    short = n - sum(counts.values())
    for k in sorted(quotas, key=lambda k: quotas[k] - counts[k], reverse=True)[:short]:
        counts[k] += 1
    labels = [k for k, c in counts.items() for _ in range(c)]
    shuffle(rng, labels)
    return labels


def allot_flags(rng: Random, n: int, share: float) -> list[bool]:
    return allot(rng, n, {True: share, False: 1.0 - share})


def _seconds(rng: Random, low: timedelta, high: timedelta) -> timedelta:
    """A whole number of seconds between `low` and `high`."""
    low_s = low.total_seconds()
    return timedelta(seconds=int(low_s + rng.random() * (high.total_seconds() - low_s)))


@dataclass(slots=True)
class ConnectionPlan:
    """The choices that define a new connection, separated from how its records are built."""

    provider: Provider
    auth_types: tuple[str, ...]
    products: tuple[str, ...]
    entity_count: int
    legal_name: str
    connection_type: str
    status: str
    connected_at: datetime


class ConnectionBuilder:
    """Builds connection records from plans; shared by the seed, the API and evolution."""

    def __init__(self, rng: Random, ids: IdSource) -> None:
        self.rng = rng
        self.ids = ids

    def auth_types_for(self, provider: Provider, family: str) -> tuple[str, ...]:
        if family == "assisted":
            return (ASSISTED,)
        automated = pick(self.rng, provider.automated_types)
        return (automated, ASSISTED) if family == "mixed" else (automated,)

    def products_for(self, provider: Provider, *, with_company: bool) -> tuple[str, ...]:
        wanted = {"directory"}
        if with_company:
            wanted.add("company")
        for product in ("individual", "employment", "payment", "pay_statement", "benefits"):
            if self.rng.random() < 0.6:
                wanted.add(product)
        if self.rng.random() < 0.1:
            wanted.add("ssn")
        return tuple(p for p in ALL_PRODUCTS if p in wanted and p in provider.products)

    def username_for(self, auth_types: tuple[str, ...], legal_name: str) -> str | None:
        if not {"credential", "api_credential"} & set(auth_types) or self.rng.random() < 0.3:
            return None
        return f"admin@{names.slug(legal_name)}.example.com"

    def entities(self, plan: ConnectionPlan) -> list[Entity]:
        """Entities; where `/employer/company` cannot answer (no `company` product, or a
        connection that needs action or has not synced yet) every entity carries the legal
        name, so the Dashboard's company name stays observable through `/introspect`."""
        rng = self.rng
        with_company = "company" in plan.products and plan.status == CONNECTED
        result: list[Entity] = []
        for index in range(plan.entity_count):
            if not with_company:
                name: str | None = plan.legal_name
            elif plan.entity_count == 1:
                name = plan.legal_name if rng.random() < 0.6 else None
            elif rng.random() < 0.8:
                name = names.entity_name(rng, plan.legal_name, index)
            else:
                name = None
            source_id = str(between(rng, 100_000, 999_999)) if rng.random() < 0.7 else None
            result.append(Entity(self.ids.uuid(), name, source_id, plan.status))
        if plan.entity_count > 1 and plan.status == CONNECTED and rng.random() < 0.15:
            result[-1].status = DISCONNECTED
        return result

    def token(
        self,
        connection_id: str,
        issued_at: datetime,
        methods: tuple[AuthMethod, ...],
        username: str | None,
    ) -> Token:
        return Token(
            access_token=self.ids.uuid(),
            token_id=self.ids.uuid(),
            connection_id=connection_id,
            issued_at=issued_at,
            auth_methods=methods,
            username=username,
        )

    def connection(self, plan: ConnectionPlan) -> Connection:
        """A connection with a single token issued at its connection time and no sync yet."""
        connection_id = self.ids.uuid()
        company = Company(self.ids.uuid(), plan.legal_name, self.rng.getrandbits(32))
        methods = split_products(plan.auth_types, plan.products)
        connection = Connection(
            connection_id=connection_id,
            account_id=self.ids.uuid(),
            company=company,
            provider_id=plan.provider.id,
            connection_type=plan.connection_type,
            status=plan.status,
            entities=self.entities(plan),
            connected_at=plan.connected_at,
            last_sync=None,
            sync_duration=timedelta(seconds=between(self.rng, 120, 3600)),
            status_message=STATUS_MESSAGES.get(plan.status),
        )
        username = self.username_for(plan.auth_types, plan.legal_name)
        connection.tokens.append(self.token(connection_id, plan.connected_at, methods, username))
        return connection


def latest_sync_index(
    connected_at: datetime,
    interval: timedelta,
    duration: timedelta,
    until: datetime,
) -> int | None:
    """Index of the last sync (one every `interval` since connection, each lasting
    `duration`) that finished by `until`, or None if none has."""
    elapsed = until - connected_at - duration
    if elapsed < timedelta(0):
        return None
    return int(elapsed / interval)


class _Seeder:
    """Seeds one dataset: connections first, then the Connect sessions around them."""

    def __init__(self, seed: int, n: int, start: datetime) -> None:
        self.rng = Random(seed)
        self.ids = IdSource(Random(f"{seed}:ids"))
        self.builder = ConnectionBuilder(self.rng, self.ids)
        self.n = n
        self.start = start
        self.data = Dataset(self.ids.uuid(), f"sandbox-secret-{self.ids.hex(16)}")
        self.families = {
            "automated": providers_supporting(automated=True, assisted=False),
            "assisted": providers_supporting(automated=False, assisted=True),
            "mixed": providers_supporting(automated=True, assisted=True),
        }

    def run(self) -> Dataset:
        rng, n = self.rng, self.n
        states = allot(rng, n, STATE_WEIGHTS)
        families = allot(rng, n, FAMILY_WEIGHTS)
        multi_entity = allot_flags(rng, n, MULTI_ENTITY_SHARE)
        multi_token = allot_flags(rng, n, MULTI_TOKEN_SHARE)
        legacy = allot_flags(rng, n, LEGACY_SHARE)
        no_company = allot_flags(rng, n, NO_COMPANY_PRODUCT_SHARE)
        finch_type = allot_flags(rng, n, FINCH_CONNECTION_TYPE_SHARE)
        hostile_count = min(len(names.HOSTILE_COMPANY_NAMES), max(1, n // 12)) if n else 0
        hostile = dict(
            zip(rng.sample(range(n), hostile_count), names.HOSTILE_COMPANY_NAMES, strict=False)
        )
        for i in range(n):
            connection = self.seed_connection(
                state=states[i],
                family=families[i],
                multi_entity=multi_entity[i],
                multi_token=multi_token[i],
                legacy=legacy[i],
                with_company=not no_company[i],
                connection_type="finch" if finch_type[i] else "provider",
                legal_name=hostile.get(i),
            )
            self.data.add_connection(connection)
        self.seed_sessions()
        return self.data

    def seed_connection(
        self,
        *,
        state: str,
        family: str,
        multi_entity: bool,
        multi_token: bool,
        legacy: bool,
        with_company: bool,
        connection_type: str,
        legal_name: str | None,
    ) -> Connection:
        rng, start = self.rng, self.start
        status = pick(rng, (CONNECTED, REAUTH)) if state == DISCONNECTED else state
        provider = pick(rng, self.families[family])
        if status == PENDING:
            age = _seconds(rng, timedelta(hours=1), timedelta(days=10))
        elif status == PROCESSING:
            age = _seconds(rng, timedelta(days=1), timedelta(days=30))
        else:
            age = _seconds(rng, timedelta(days=2), timedelta(days=900))
        plan = ConnectionPlan(
            provider=provider,
            auth_types=self.builder.auth_types_for(provider, family),
            products=self.builder.products_for(provider, with_company=with_company),
            entity_count=between(rng, 2, 12) if multi_entity else 1,
            legal_name=legal_name or names.company_name(rng),
            connection_type=connection_type,
            status=status,
            connected_at=start - age,
        )
        connection = self.builder.connection(plan)
        self.seed_sync(connection, ASSISTED_REFRESH if family == "assisted" else AUTOMATED_REFRESH)
        if multi_token:
            self.seed_more_tokens(connection, plan)
        if not legacy:
            self.seed_customer(connection, plan)
        if state == DISCONNECTED:
            last_issue = connection.tokens[-1].issued_at
            connection.disconnected_at = last_issue + (start - last_issue) * rng.random()
            connection.disconnected_at = connection.disconnected_at.replace(microsecond=0)
            for token in connection.tokens:
                token.revoked = True
        return connection

    def seed_sync(self, connection: Connection, interval: timedelta) -> None:
        """Last sync on the connection's cadence: recent when healthy, stale when broken."""
        if connection.status == PENDING:
            return
        rng = self.rng
        index = latest_sync_index(
            connection.connected_at, interval, connection.sync_duration, self.start
        )
        if index is None:
            return
        if connection.status in NEEDS_ACTION_STATUSES:
            index = max(0, index - between(rng, 1, 20))
        elif connection.status == CONNECTED and rng.random() < OVERDUE_SHARE:
            index = max(0, index - between(rng, 2, 6))
            connection.sync_stalled = True
        connection.last_sync = connection.connected_at + index * interval + connection.sync_duration

    def seed_more_tokens(self, connection: Connection, plan: ConnectionPlan) -> None:
        """Re-authentications: older tokens may differ in products or method, half revoked;
        the newest (last) token always carries the connection's current grant."""
        rng, first = self.rng, connection.tokens[0]
        current = first.auth_methods
        extra = between(rng, 1, 3)
        span = (self.start - connection.connected_at).total_seconds()
        offsets = sorted(rng.uniform(0.05, 0.95) * span for _ in range(extra))
        older_methods = current
        if rng.random() < 0.5 and len(plan.products) > 1:
            fewer = tuple(p for p in plan.products if p != plan.products[-1])
            older_methods = split_products(plan.auth_types, fewer)
        first.auth_methods = older_methods
        for position, offset in enumerate(offsets):
            newest = position == extra - 1
            token = self.builder.token(
                connection.connection_id,
                (connection.connected_at + timedelta(seconds=offset)).replace(microsecond=0),
                current if newest else older_methods,
                first.username,
            )
            connection.tokens.append(token)
        for token in connection.tokens[:-1]:
            token.revoked = rng.random() < 0.5

    def seed_customer(self, connection: Connection, plan: ConnectionPlan) -> None:
        """Customer fields and the completed Connect session that carried them."""
        rng = self.rng
        connection.customer_id = f"cus_{self.ids.hex(6)}"
        if rng.random() < 0.06:
            connection.customer_name = pick(rng, names.HOSTILE_CUSTOMER_NAMES)
        else:
            connection.customer_name = plan.legal_name.rsplit(" ", 1)[0] or plan.legal_name
        if rng.random() < 0.8:
            connection.customer_email = f"payroll@{names.slug(plan.legal_name)}.example.com"
        created = connection.connected_at - _seconds(rng, timedelta(minutes=5), timedelta(days=3))
        integrated = rng.random() < 0.5
        first_type = connection.tokens[0].auth_methods[0].type
        session = ConnectSession(
            session_id=self.ids.uuid(),
            kind=KIND_CONNECT,
            customer_id=connection.customer_id,
            customer_name=connection.customer_name,
            customer_email=connection.customer_email,
            products=connection.tokens[0].products,
            redirect_uri=pick(rng, REDIRECT_URIS),
            provider_id=plan.provider.id if integrated else None,
            auth_method=first_type if integrated and first_type in CONNECT_AUTH_METHODS else None,
            manual=plan.auth_types == (ASSISTED,),
            sandbox_mode=None,
            created_at=created,
            expires_at=created + timedelta(minutes=DEFAULT_SESSION_MINUTES),
            status=SESSION_COMPLETED,
            connection_id=connection.connection_id,
            completed_at=connection.connected_at,
        )
        connection.session_id = session.session_id
        self.data.add_session(session)

    def seed_sessions(self) -> None:
        rng, start = self.rng, self.start
        for _ in range(math.ceil(self.n * PENDING_SESSION_SHARE)):
            minutes = rng.choices(SESSION_MINUTES_CHOICES, SESSION_MINUTES_WEIGHTS)[0]
            lifetime = timedelta(minutes=minutes)
            created = start - lifetime * rng.uniform(0.02, 0.9)
            self.data.add_session(self.staged_session(created.replace(microsecond=0), minutes))
        for _ in range(math.ceil(self.n * EXPIRED_SESSION_SHARE)):
            minutes = rng.choices(SESSION_MINUTES_CHOICES, SESSION_MINUTES_WEIGHTS)[0]
            created = (
                start
                - timedelta(minutes=minutes)
                - _seconds(rng, timedelta(hours=1), timedelta(days=200))
            )
            session = self.staged_session(created, minutes)
            session.status = SESSION_EXPIRED
            self.data.add_session(session)
        for connection in list(self.data.connections.values()):
            if (
                connection.status == REAUTH
                and not connection.disconnected
                and (rng.random() < REAUTH_SESSION_SHARE)
            ):
                created = start - _seconds(rng, timedelta(hours=1), timedelta(days=5))
                session = reauth_session(
                    self.ids, connection, created, DEFAULT_REAUTH_MINUTES, None, None
                )
                self.data.add_session(session)

    def staged_session(self, created: datetime, minutes: int) -> ConnectSession:
        rng = self.rng
        legal = names.company_name(rng)
        customer_name = pick(rng, names.HOSTILE_CUSTOMER_NAMES) if rng.random() < 0.1 else legal
        provider = pick(rng, PROVIDERS) if rng.random() < 0.4 else None
        optional = ("individual", "employment", "payment", "pay_statement", "benefits")
        products = ("company", "directory", *(p for p in optional if rng.random() < 0.5))
        return ConnectSession(
            session_id=self.ids.uuid(),
            kind=KIND_CONNECT,
            customer_id=f"cus_{self.ids.hex(6)}",
            customer_name=customer_name,
            customer_email=(f"hr@{names.slug(legal)}.example.com" if rng.random() < 0.7 else None),
            products=products,
            redirect_uri=pick(rng, REDIRECT_URIS),
            provider_id=provider.id if provider else None,
            auth_method=None,
            manual=False,
            sandbox_mode=None,
            created_at=created,
            expires_at=created + timedelta(minutes=minutes),
        )


def reauth_session(
    ids: IdSource,
    connection: Connection,
    created: datetime,
    minutes: float,
    products: Sequence[str] | None,
    redirect_uri: str | None,
) -> ConnectSession:
    """A reauthenticate session; it inherits the connection's customer and provider."""
    token = connection.reference_token()
    return ConnectSession(
        session_id=ids.uuid(),
        kind=KIND_REAUTHENTICATE,
        customer_id=connection.customer_id,
        customer_name=connection.customer_name,
        customer_email=connection.customer_email,
        products=tuple(products) if products else token.products,
        redirect_uri=redirect_uri,
        provider_id=connection.provider_id,
        auth_method=None,
        manual=False,
        sandbox_mode=None,
        created_at=created.replace(microsecond=0),
        expires_at=(created + timedelta(minutes=minutes)).replace(microsecond=0),
        connection_id=connection.connection_id,
    )


def generate_dataset(seed: int, connections: int, start: datetime) -> Dataset:
    """Build the seeded dataset as of the virtual instant `start`.

    The cyclic garbage collector is paused meanwhile: the build creates about ten objects per
    connection and none of them is garbage, so repeated full collections were pure overhead.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _Seeder(seed, connections, start).run()
    finally:
        if was_enabled:
            gc.enable()
