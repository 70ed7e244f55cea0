"""Emulator-only routes under `/_sandbox/`: inspect and steer the fake Finch account.

They need no auth, are not rate limited and are not counted in the statistics, because they
stand in for things a real integrator sees elsewhere (the Dashboard, their own ledger of
tokens and Connect sessions) or for the passage of time.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .clock import iso_z
from .emulator import ConnectionNotFound, FinchSandbox, SessionNotFound
from .lifecycle import SessionNotCompletable
from .responses import JSON_MEDIA_TYPE, dump_json
from .truth import truth_rows
from .webhooks import EVENT_TYPES, WebhookFaults


def admin_json(value: Any, status: int = 200) -> Response:
    return Response(dump_json(value), status, media_type=JSON_MEDIA_TYPE)


def admin_error(status: int, message: str) -> Response:
    return admin_json({"error": message}, status)


def admin_routes(sandbox: FinchSandbox) -> list[Route]:
    async def tokens(request: Request) -> Response:
        """Every access token the emulator issued, with its connection, products and whether it is
        revoked."""
        return admin_json({"tokens": sandbox.tokens()})

    async def sessions(request: Request) -> Response:
        """Every Connect session, with its status and the connection it completed into."""
        return admin_json({"sessions": sandbox.sessions()})

    async def complete(request: Request) -> Response:
        """Complete a pending Connect session as if the employer finished Connect: a new
        connection (or a reconnected one)."""
        session_id = request.path_params["session_id"]
        try:
            return admin_json(sandbox.complete_session(session_id))
        except SessionNotFound:
            return admin_error(404, f"no Connect session {session_id!r}")
        except SessionNotCompletable as exc:
            return admin_error(409, f"session {session_id!r} cannot be completed: {exc}")

    async def credentials(request: Request) -> Response:
        """The application's client ID and secret, and the webhook secret (base64)."""
        client_id, client_secret = sandbox.credentials
        return admin_json(
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "webhook_secret": sandbox.webhooks.secret,
            }
        )

    async def set_status(request: Request) -> Response:
        """Set a connection's status (`{"status": "reauth"}`, `connected`,
        `error_permissions`, ...): what `/introspect` answers next."""
        connection_id = request.path_params["connection_id"]
        try:
            body = json.loads(await request.body() or b"{}")
            status = body.get("status") if isinstance(body, dict) else None
            return admin_json(sandbox.set_connection_status(connection_id, status))
        except ConnectionNotFound:
            return admin_error(404, f"no connection {connection_id!r}")
        except ValueError as exc:
            return admin_error(400, str(exc))

    async def webhooks(request: Request) -> Response:
        """The webhook settings and every delivery made so far."""
        settings = sandbox.webhooks.settings()
        return admin_json({**settings, "deliveries": sandbox.webhooks.deliveries()})

    async def configure_webhooks(request: Request) -> Response:
        """Where to deliver webhooks (`{"url": ..., "events": [...], "faults": {...}}`)."""
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
            sandbox.webhooks.configure(
                body.get("url"),
                tuple(body.get("events") or EVENT_TYPES),
                WebhookFaults(**(body.get("faults") or {})),
            )
        except (ValueError, TypeError) as exc:
            return admin_error(
                400,
                'expected {"url": "http://127.0.0.1:<port>/...", "events": [...], '
                f'"faults": {{"duplicate_rate", "bad_signature_rate", "delay_seconds"}}}}: {exc}',
            )
        return admin_json(sandbox.webhooks.settings())

    async def truth(request: Request) -> Response:
        """The Connections page as Finch's Dashboard would show it now: one row per connection and
        staged session (the ground truth the tests compare with)."""
        with sandbox.lock:
            now = sandbox.now
            rows = truth_rows(sandbox.data, now)
        return admin_json({"now": iso_z(now), "rows": rows})

    async def advance(request: Request) -> Response:
        """Move the simulated clock ahead (`{"days": 3}`): syncs run, links expire,
        connections drift."""
        try:
            body = json.loads(await request.body() or b"{}")
            days = body["days"] if isinstance(body, dict) else None
            return admin_json(sandbox.advance(days))
        except (ValueError, KeyError) as exc:
            return admin_error(400, f'expected {{"days": <number >= 0>}}: {exc}')

    async def stats(request: Request) -> Response:
        """Requests served so far, by endpoint and by status (429s included), and IP blocks."""
        return admin_json(sandbox.stats())

    async def reset_stats(request: Request) -> Response:
        """Zero the request counters."""
        sandbox.reset_stats()
        return admin_json(sandbox.stats())

    return [
        Route("/_sandbox/tokens", tokens, methods=["GET"]),
        Route("/_sandbox/sessions", sessions, methods=["GET"]),
        Route("/_sandbox/sessions/{session_id}/complete", complete, methods=["POST"]),
        Route("/_sandbox/credentials", credentials, methods=["GET"]),
        Route("/_sandbox/truth", truth, methods=["GET"]),
        Route("/_sandbox/advance", advance, methods=["POST"]),
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sandbox/connections/{connection_id}/status", set_status, methods=["POST"]),
        Route("/_sandbox/webhooks", webhooks, methods=["GET"]),
        Route("/_sandbox/webhooks", configure_webhooks, methods=["POST"]),
    ]
