"""`create_app`: the emulator as a Starlette ASGI application."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from .admin_routes import admin_error, admin_routes
from .emulator import FinchSandbox
from .finch_routes import finch_routes, unknown_finch_path

ADMIN_PREFIX = "/_sandbox/"


def create_app(sandbox: FinchSandbox) -> Starlette:
    """Serve `sandbox` over ASGI: the Finch surface plus the `/_sandbox/` admin routes.

    No middleware on purpose: the per-request work is a few dict lookups and one
    `json.dumps`, which is what lets one uvicorn worker sustain a client benchmark.
    """

    async def unrouted(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(ADMIN_PREFIX):
            status = exc.status_code if isinstance(exc, HTTPException) else 404
            return admin_error(status, f"no admin route {request.method} {request.url.path}")
        return await unknown_finch_path(sandbox, request)

    app = Starlette(
        routes=[*finch_routes(sandbox), *admin_routes(sandbox)],
        exception_handlers={404: unrouted, 405: unrouted},
    )
    app.state.sandbox = sandbox
    return app
