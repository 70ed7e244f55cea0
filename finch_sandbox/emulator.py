"""`FinchSandbox`: the emulator's state and every operation of its Finch and admin surfaces.

The HTTP layer (`app`) only parses requests and renders answers; the behaviour lives here so
that the same operations are reachable in-process (`sandbox.advance(...)`, `sandbox.truth()`)
and over HTTP, and so one lock can make them safe while uvicorn serves from another thread.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from . import errors, payloads
from .clock import VirtualClock, floor_to_day, iso_z
from .config import EndpointFaults, SandboxConfig
from .dataset import Dataset, IdSource, generate_dataset, reauth_session
from .evolution import Evolution
from .faults import FaultInjector
from .lifecycle import Lifecycle, SessionNotCompletable
from .rate_limits import RateLimiter
from .records import (
    CONNECTED,
    ERROR_NO_ACCOUNT_SETUP,
    ERROR_PERMISSIONS,
    KIND_CONNECT,
    REAUTH,
    Connection,
    ConnectSession,
    Token,
)
from .stats import RequestStats
from .truth import truth_rows
from .validation import (
    NewSessionRequest,
    ReauthRequest,
    SandboxConnectionRequest,
    TokenRequest,
)
from .webhooks import ACCOUNT_UPDATED, JOB_COMPLETED, WebhookSender, webhook_secret


class SessionNotFound(KeyError):
    """No Connect session with that id."""


class ConnectionNotFound(KeyError):
    """No connection with that id."""


# What a webhook watches per connection: its status (or `disconnected`) and its last sync.
Observed = dict[str, tuple[str, datetime | None]]


class FinchSandbox:
    """A seeded, evolving Finch account: connections, tokens, Connect sessions and limits.

    Args:
        config: What to generate and how to behave; defaults to `SandboxConfig()`.
        monotonic: The clock of the rate-limit windows; tests pass a fake one to cross
            windows and blocks without sleeping.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SandboxConfig()
        seed = self.config.seed
        start = self.config.start_time or floor_to_day(datetime.now(UTC))
        self.clock = VirtualClock(start)
        self.data: Dataset = generate_dataset(seed, self.config.connections, self.clock.now)
        self._ids = IdSource(Random(f"{seed}:runtime-ids"))
        self.lifecycle = Lifecycle(self.data, Random(f"{seed}:runtime"), self._ids)
        self.evolution = Evolution(self.lifecycle, Random(f"{seed}:evolution"))
        self.limiter = RateLimiter(
            enabled=self.config.rate_limits, time_scale=self.config.time_scale, clock=monotonic
        )
        self.faults = FaultInjector(self.config)
        self.request_stats = RequestStats()
        self.lock = threading.RLock()
        self.webhooks = WebhookSender(webhook_secret(seed), seed)

    def _observe(self) -> Observed | None:
        """What webhooks watch, or None when none are sent (nothing needs comparing)."""
        if not self.webhooks.active:
            return None
        return {
            connection.connection_id: (
                "disconnected" if connection.disconnected else connection.status,
                connection.last_sync,
            )
            for connection in self.data.connections.values()
        }

    def _send_webhooks(self, before: Observed | None) -> int:
        """Queue an `account.updated` for every connection whose status changed since
        `before` and a job completion for every one that synced; returns how many."""
        after = self._observe()
        if before is None or after is None:
            return 0
        sent = 0
        for connection_id, (status, last_sync) in after.items():
            connection = self.data.connections[connection_id]
            old_status, old_sync = before.get(connection_id, (None, None))
            if last_sync is not None and last_sync != old_sync and status != "disconnected":
                payload = payloads.webhook_job_completed(connection)
                sent += self.webhooks.emit(JOB_COMPLETED, payload) is not None
            if status != old_status:
                payload = payloads.webhook_account_updated(connection)
                sent += self.webhooks.emit(ACCOUNT_UPDATED, payload) is not None
        return sent

    def set_connection_status(self, connection_id: str, status: str) -> dict[str, Any]:
        """Set a connection's status now, as if the employer's system changed it, or
        disconnect it (`disconnected`); sends the webhook Finch would.

        Raises:
            ConnectionNotFound: no such connection.
            ValueError: an unknown status, or a disconnected connection.
        """
        allowed = (CONNECTED, REAUTH, ERROR_NO_ACCOUNT_SETUP, ERROR_PERMISSIONS, "disconnected")
        if status not in allowed:
            raise ValueError(f"status must be one of {', '.join(allowed)}, got {status!r}")
        with self.lock:
            connection = self.data.connections.get(connection_id)
            if connection is None:
                raise ConnectionNotFound(connection_id)
            if connection.disconnected:
                raise ValueError(f"connection {connection_id!r} is disconnected")
            before = self._observe()
            if status == "disconnected":
                self.lifecycle.disconnect(connection, self.clock.now)
            else:
                self.lifecycle.set_status(connection, status, at=self.clock.now)
            sent = self._send_webhooks(before)
            return {"connection_id": connection_id, "status": status, "webhooks": sent}

    @property
    def credentials(self) -> tuple[str, str]:
        """(client_id, client_secret) of the sandbox application."""
        return self.data.client_id, self.data.client_secret

    @property
    def now(self) -> datetime:
        """The virtual clock (UTC); it only moves with `advance`."""
        return self.clock.now

    def tokens(self) -> list[dict[str, Any]]:
        """Every token ever issued, in issue order (the last valid one of a connection is its
        newest), revoked ones included."""
        with self.lock:
            return payloads.tokens_listing(self.data)

    def sessions(self) -> list[dict[str, Any]]:
        with self.lock:
            return [payloads.session_json(s) for s in self.data.sessions.values()]

    def truth(self) -> list[dict[str, Any]]:
        """The Dashboard's Connections page as of `now` (see `truth`)."""
        with self.lock:
            return truth_rows(self.data, self.clock.now)

    def advance(self, days: float) -> dict[str, Any]:
        """Move the virtual clock `days` forward and evolve the dataset (see `evolution`)."""
        if isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days):
            raise ValueError(f"days must be a finite number, got {days!r}")
        if days < 0:
            raise ValueError("days must be >= 0")
        with self.lock:
            before = self._observe()
            now, changes = self.evolution.advance(self.clock.now, float(days))
            self.clock.advance_to(now)
            sent = self._send_webhooks(before)
            return {"now": iso_z(now), "days": days, "changes": changes, "webhooks": sent}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return self.request_stats.snapshot(self.limiter)

    def set_faults(self, faults: dict[str, EndpointFaults]) -> None:
        """Replace the fault configuration from now on (tests switch Finch's mood mid-run)."""
        with self.lock:
            self.config = replace(self.config, faults=dict(faults))
            self.faults = FaultInjector(self.config)

    def reset_stats(self) -> None:
        with self.lock:
            self.request_stats.reset()
            self.limiter.reset_peaks()

    def complete_session(self, session_id: str) -> dict[str, Any]:
        """The employer completes a pending Connect session right now.

        Returns the authorization `code` (exchangeable once at `/auth/token`), the
        `connection_id` and the `access_token` the code stands for (already issued).

        Raises:
            SessionNotFound: No such session.
            SessionNotCompletable: The session is not pending or its connection is gone.
        """
        with self.lock:
            session = self.data.sessions.get(session_id)
            if session is None:
                raise SessionNotFound(session_id)
            if session.expires_at <= self.clock.now:
                raise SessionNotCompletable("session has expired")
            before = self._observe()
            connection, token = self.lifecycle.complete_session(session, self.clock.now)
            self._send_webhooks(before)
            code = self.lifecycle.issue_code(token, session.redirect_uri)
            return {
                "code": code.code,
                "connection_id": connection.connection_id,
                "access_token": token.access_token,
            }

    def authenticate(self, authorization: str | None) -> tuple[Token, Connection]:
        """Resolve a `Bearer` header; unknown and revoked tokens answer alike."""
        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise errors.missing_authorization()
        token = self.data.tokens.get(credential.strip())
        if token is None or token.revoked:
            raise errors.invalid_token()
        connection = self.data.connections[token.connection_id]
        if connection.disconnected:
            raise errors.invalid_token()
        return token, connection

    def check_client(self, authorization: str | None) -> None:
        """Check `Basic base64(client_id:client_secret)`."""
        if not authorization:
            raise errors.missing_authorization()
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise errors.invalid_client()
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise errors.invalid_client() from exc
        client_id, _, client_secret = decoded.partition(":")
        self._check_client_pair(client_id, client_secret)

    def _check_client_pair(self, client_id: str | None, client_secret: str | None) -> None:
        expected_id, expected_secret = self.credentials
        ok_id = hmac.compare_digest((client_id or "").encode(), expected_id.encode())
        ok_secret = hmac.compare_digest((client_secret or "").encode(), expected_secret.encode())
        if not (ok_id and ok_secret):
            raise errors.invalid_client()

    def introspect(self, authorization: str | None) -> dict[str, Any]:
        with self.lock:
            token, connection = self.authenticate(authorization)
            return payloads.introspection(token, connection, self.data.client_id)

    def automated_jobs(
        self,
        authorization: str | None,
        limit: int,
        offset: int,
        base_url: str,
    ) -> dict[str, Any]:
        with self.lock:
            token, connection = self.authenticate(authorization)
            return payloads.jobs_page(connection, token, self.clock.now, limit, offset, base_url)

    def company(self, authorization: str | None, entity_ids: Sequence[str]) -> dict[str, Any]:
        """`GET /employer/company`: a data endpoint, so scope, rate limit and the connection's
        health all apply (in that order)."""
        with self.lock:
            token, connection = self.authenticate(authorization)
            if "company" not in token.products:
                raise errors.insufficient_scope("company")
            refusal = self.limiter.check_product("company")
            if refusal is not None:
                raise errors.rate_limited(refusal)
            if connection.status == REAUTH:
                raise errors.reauthenticate_user()
            if connection.status == ERROR_NO_ACCOUNT_SETUP:
                raise errors.account_setup_required()
            if connection.status == ERROR_PERMISSIONS:
                raise errors.insufficient_account_permissions()
            entities = {e.id: e for e in connection.entities}
            if len(entity_ids) > 1:
                raise errors.FinchError(
                    400, "invalid_request_error", "Provide exactly one entity ID per request."
                )
            if entity_ids:
                entity = entities.get(entity_ids[0])
                if entity is None:
                    raise errors.FinchError(
                        400,
                        "invalid_request_error",
                        "entity_ids contains an entity this connection does not have.",
                    )
            elif len(entities) > 1:
                raise errors.FinchError(
                    400,
                    "invalid_request_error",
                    "entity_ids is required for a connection with more than one entity.",
                )
            else:
                entity = connection.entities[0]
            return payloads.company(connection, entity)

    def new_session(self, request: NewSessionRequest) -> dict[str, Any]:
        """`POST /connect/sessions` (the caller has checked the client credentials)."""
        with self.lock:
            now = self.clock.now
            session = ConnectSession(
                session_id=self._ids.uuid(),
                kind=KIND_CONNECT,
                customer_id=request.customer_id,
                customer_name=request.customer_name,
                customer_email=request.customer_email,
                products=request.products,
                redirect_uri=request.redirect_uri,
                provider_id=request.provider_id,
                auth_method=request.auth_method,
                manual=request.manual,
                sandbox_mode=request.sandbox_mode,
                created_at=now,
                expires_at=(now + timedelta(minutes=request.minutes_to_expire)).replace(
                    microsecond=0
                ),
            )
            self.data.add_session(session)
            return {"session_id": session.session_id, "connect_url": session.connect_url}

    def reauthenticate(self, request: ReauthRequest) -> dict[str, Any]:
        """`POST /connect/sessions/reauthenticate` (client credentials already checked)."""
        with self.lock:
            connection = self.data.connections.get(request.connection_id)
            if connection is None:
                raise errors.not_found(f"No connection with id {request.connection_id!r}.")
            if connection.disconnected:
                raise errors.bad_request("The connection is disconnected; create a new session.")
            session = reauth_session(
                self._ids,
                connection,
                self.clock.now,
                request.minutes_to_expire,
                request.products,
                request.redirect_uri,
            )
            self.data.add_session(session)
            return {"session_id": session.session_id, "connect_url": session.connect_url}

    def exchange_code(self, request: TokenRequest) -> dict[str, Any]:
        """`POST /auth/token`: a code works once, and only with matching credentials."""
        with self.lock:
            self._check_client_pair(request.client_id, request.client_secret)
            if request.code is None:
                raise errors.bad_request("code is required.")
            code = self.data.codes.get(request.code)
            if code is None or code.used:
                raise errors.invalid_grant()
            if request.redirect_uri is not None and code.redirect_uri not in (
                None,
                request.redirect_uri,
            ):
                raise errors.invalid_grant()
            token = self.data.tokens[code.access_token]
            code.used = True
            if token.revoked:
                raise errors.invalid_grant()
            return payloads.access_token_response(token, self.data.connections[token.connection_id])

    def disconnect(self, authorization: str | None) -> dict[str, Any]:
        with self.lock:
            _, connection = self.authenticate(authorization)
            before = self._observe()
            self.lifecycle.disconnect(connection, self.clock.now)
            self._send_webhooks(before)
            return {"status": "success"}

    def create_sandbox_connection(self, request: SandboxConnectionRequest) -> dict[str, Any]:
        """`POST /sandbox/connections` (client credentials already checked)."""
        with self.lock:
            connection = self.lifecycle.create_sandbox_connection(
                request.provider, request.authentication_type, request.products, self.clock.now
            )
            return payloads.sandbox_connection_response(connection, connection.tokens[-1])

    def update_account(self, authorization: str | None, status: str) -> dict[str, Any]:
        with self.lock:
            token, connection = self.authenticate(authorization)
            before = self._observe()
            self.lifecycle.set_status(connection, status, at=self.clock.now)
            self._send_webhooks(before)
            return payloads.account_update_response(connection, token)

    def check_ip(self, ip: str) -> str | None:
        with self.lock:
            return self.limiter.check_ip(ip)

    def record(self, endpoint: str, status: int, faults: Iterable[str] = ()) -> None:
        with self.lock:
            self.request_stats.record(endpoint, status, faults)
