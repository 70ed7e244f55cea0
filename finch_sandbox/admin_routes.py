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
from .emulator import FinchSandbox, SessionNotFound
from .lifecycle import SessionNotCompletable
from .responses import JSON_MEDIA_TYPE, dump_json
from .truth import truth_rows


def admin_json(value: Any, status: int = 200) -> Response:
    return Response(dump_json(value), status, media_type=JSON_MEDIA_TYPE)


def admin_error(status: int, message: str) -> Response:
    return admin_json({"error": message}, status)


def admin_routes(sandbox: FinchSandbox) -> list[Route]:
    async def tokens(request: Request) -> Response:
        return admin_json({"tokens": sandbox.tokens()})

    async def sessions(request: Request) -> Response:
        return admin_json({"sessions": sandbox.sessions()})

    async def complete(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        try:
            return admin_json(sandbox.complete_session(session_id))
        except SessionNotFound:
            return admin_error(404, f"no Connect session {session_id!r}")
        except SessionNotCompletable as exc:
            return admin_error(409, f"session {session_id!r} cannot be completed: {exc}")

    async def credentials(request: Request) -> Response:
        client_id, client_secret = sandbox.credentials
        return admin_json({"client_id": client_id, "client_secret": client_secret})

    async def truth(request: Request) -> Response:
        with sandbox.lock:
            now = sandbox.now
            rows = truth_rows(sandbox.data, now)
        return admin_json({"now": iso_z(now), "rows": rows})

    async def advance(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            days = body["days"] if isinstance(body, dict) else None
            return admin_json(sandbox.advance(days))
        except (ValueError, KeyError) as exc:
            return admin_error(400, f'expected {{"days": <number >= 0>}}: {exc}')

    async def stats(request: Request) -> Response:
        return admin_json(sandbox.stats())

    async def reset_stats(request: Request) -> Response:
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
    ]
