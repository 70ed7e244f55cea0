"""The Finch API surface: exact paths, auth schemes, version header, limits and faults.

Every route runs the same gate, in the order a real gateway would: count the request toward
the client IP's window (refusing it while blocked), require `Finch-API-Version`, apply the
endpoint's injected faults, and only then run the handler (with `after_effect`, the delay and
the 5xx come after it instead). The handler's answer, or its `FinchError`, is rendered once,
with a `Finch-Request-Id` and the virtual `Date`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors, validation
from .emulator import FinchSandbox
from .faults import FaultPlan, truncate_json, with_extra_fields
from .providers import PROVIDERS_BODY
from .rate_limits import APPLICATION_LIMIT
from .responses import JSON_MEDIA_TYPE, DroppedResponse, dump_json, finch_headers

API_VERSION = "2020-09-17"
UNKNOWN_ENDPOINT = "unknown"

Handler = Callable[[Request], Awaitable[Any]]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _gate(sandbox: FinchSandbox, name: str, request: Request, handler: Handler) -> Response:
    plan = None
    met: list[str] = []  # the injected faults this request met, for the statistics
    try:
        refusal = sandbox.check_ip(client_ip(request))
        if refusal is not None:
            raise errors.rate_limited(refusal)
        if request.headers.get("finch-api-version") != API_VERSION:
            raise errors.bad_request(f"The Finch-API-Version header must be {API_VERSION}.")
        with sandbox.lock:
            plan = sandbox.faults.plan(name)
        before = plan is not None and not plan.after_effect
        if before:
            await _delay(plan, met)
        if plan is not None and plan.rate_limited:
            met.append("rate_limited")
            raise errors.rate_limited(APPLICATION_LIMIT)
        if before:
            _fail(plan, met)
        result = await handler(request)
        if plan is not None and plan.after_effect:
            await _delay(plan, met)
            _fail(plan, met)
        status = 200
        if plan is not None and plan.extra_fields:
            parsed = json.loads(result) if isinstance(result, bytes) else result
            result = with_extra_fields(parsed)
        body = result if isinstance(result, bytes) else dump_json(result)
        if plan is not None and plan.malformed:
            met.append("malformed")
            body = truncate_json(body)
    except errors.FinchError as exc:
        status = exc.status
        body = dump_json(exc.body())
    if plan is not None and plan.drop:
        met.append("drop")
    sandbox.record(name, status, met)
    headers = finch_headers(sandbox.clock.date_header)
    if plan is not None and plan.drop:
        return DroppedResponse(body, status, headers, JSON_MEDIA_TYPE)
    return Response(body, status, headers, JSON_MEDIA_TYPE)


async def _delay(plan: FaultPlan, met: list[str]) -> None:
    """The plan's latency and hang, if any."""
    if plan.hang:
        met.append("hang")
    if plan.delay_seconds:
        await asyncio.sleep(plan.delay_seconds)


def _fail(plan: FaultPlan, met: list[str]) -> None:
    """The plan's 5xx, if any."""
    if plan.error_status is not None:
        met.append("error")
        raise errors.server_error(plan.error_status)


async def _body(request: Request) -> dict[str, Any]:
    return validation.parse_json_object(await request.body())


def _entity_ids(request: Request) -> list[str]:
    """`entity_ids` as the SDK sends it (`entity_ids[]=a`) or repeated / comma-separated."""
    raw = request.query_params.getlist("entity_ids") + request.query_params.getlist("entity_ids[]")
    return [part for value in raw for part in value.split(",") if part]


def finch_routes(sandbox: FinchSandbox) -> list[Route]:
    def auth(request: Request) -> str | None:
        return request.headers.get("authorization")

    async def introspect(request: Request) -> Any:
        return sandbox.introspect(auth(request))

    async def jobs(request: Request) -> Any:
        sandbox.authenticate(auth(request))
        limit, offset = validation.paging(request.query_params)
        return sandbox.automated_jobs(auth(request), limit, offset, str(request.base_url))

    async def company(request: Request) -> Any:
        return sandbox.company(auth(request), _entity_ids(request))

    async def providers(request: Request) -> Any:
        return PROVIDERS_BODY

    async def connect_sessions(request: Request) -> Any:
        sandbox.check_client(auth(request))
        return sandbox.new_session(validation.new_session_request(await _body(request)))

    async def reauthenticate(request: Request) -> Any:
        sandbox.check_client(auth(request))
        return sandbox.reauthenticate(validation.reauth_request(await _body(request)))

    async def auth_token(request: Request) -> Any:
        body = validation.parse_form_or_json(
            await request.body(), request.headers.get("content-type", "")
        )
        request_body = validation.token_request(body)
        return sandbox.exchange_code(request_body)

    async def disconnect(request: Request) -> Any:
        return sandbox.disconnect(auth(request))

    async def sandbox_connections(request: Request) -> Any:
        sandbox.check_client(auth(request))
        return sandbox.create_sandbox_connection(
            validation.sandbox_connection_request(await _body(request))
        )

    async def sandbox_accounts(request: Request) -> Any:
        sandbox.authenticate(auth(request))
        status = validation.connection_status(await _body(request))
        return sandbox.update_account(auth(request), status)

    def route(path: str, name: str, handler: Handler, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            return await _gate(sandbox, name, request, handler)

        return Route(path, endpoint, methods=[method], name=name)

    return [
        route("/introspect", "introspect", introspect, "GET"),
        route("/jobs/automated", "jobs", jobs, "GET"),
        route("/employer/company", "company", company, "GET"),
        route("/providers", "providers", providers, "GET"),
        route("/connect/sessions", "connect_sessions", connect_sessions, "POST"),
        route("/connect/sessions/reauthenticate", "reauthenticate", reauthenticate, "POST"),
        route("/auth/token", "auth_token", auth_token, "POST"),
        route("/disconnect", "disconnect", disconnect, "POST"),
        route("/sandbox/connections", "sandbox_connections", sandbox_connections, "POST"),
        route("/sandbox/connections/accounts", "sandbox_accounts", sandbox_accounts, "PUT"),
    ]


async def unknown_finch_path(sandbox: FinchSandbox, request: Request) -> Response:
    """A path or method Finch does not have: 404 `not_found_error`, counted like any request."""

    async def missing(_: Request) -> Any:
        raise errors.not_found(f"No route for {request.method} {request.url.path}.")

    return await _gate(sandbox, UNKNOWN_ENDPOINT, request, missing)
