"""Async Finch client: one place that owns auth, pacing, retries and outcome typing.

Reads are retried freely. Creating a Connect session is not idempotent (Finch documents no
idempotency key), so those calls are retried only when the request certainly did not take
effect: it never left this machine (no connection could be made, or this client held it back)
or Finch refused it unprocessed (429). Once a request may have reached Finch, a timeout, a
dropped connection, a 5xx or an unreadable success body ends the call as `UNKNOWN`.
"""

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, TypeVar, cast

import aiohttp
import httpx
import msgspec
from httpx_aiohttp import AiohttpTransport
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from connections_pipeline.decoding_limits import MAX_JSON_DEPTH
from connections_pipeline.finch.bodies import Unread, excerpt, nested_deeper_than, read_capped
from connections_pipeline.finch.config import FinchClientConfig
from connections_pipeline.finch.errors import FinchConfigError
from connections_pipeline.finch.fingerprint import token_fingerprint
from connections_pipeline.finch.pacing import Pacer
from connections_pipeline.finch.results import MAY_HAVE_TAKEN_EFFECT, CallOutcome, FinchCallResult
from connections_pipeline.finch.stats import RequestStats
from connections_pipeline.redaction import HIDDEN, scrub

logger = logging.getLogger(__name__)

USER_AGENT = "connections-pipeline/0.1"
# Endpoints that Finch rate-limits as a product, beyond the per-IP budget.
ENDPOINT_PRODUCTS: Mapping[str, str] = {"company": "company"}
PRODUCT_LANE_CONCURRENCY = 4
# Fields without which a success body cannot be used; checked so a half-broken answer is a
# typed failure for that call instead of a KeyError somewhere downstream.
REQUIRED_FIELDS: Mapping[str, tuple[str, ...]] = {
    "introspect": ("connection_id", "connection_status"),
    "jobs": ("data",),
    "company": ("id",),
    "connect_sessions": ("session_id", "connect_url"),
    "reauthenticate": ("session_id", "connect_url"),
}
INVALID_TOKEN_NAMES = frozenset({"invalid_token_error", "unauthorized_request_error"})
# Transport errors raised before any byte of a request was written: no connection could be
# made. Under the aiohttp transport httpx's exception type says little (a connection the
# server dropped mid-answer surfaces as `ConnectTimeout`, like a refused one), so aiohttp's
# own exception, the cause, decides there.
NOT_SENT_AIOHTTP_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
NOT_SENT_HTTPX_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
# Finch's rate limiter answers 429 before the request reaches the API, so a 429 did nothing.
NOT_PROCESSED_STATUSES = frozenset({429})

ProgressCallback = Callable[[int, int], None]
T = TypeVar("T")
# Calls started at once by `for_each_completed`: above any concurrency the client is given
# (its semaphore and pacer hold the rest back), far below a fleet's size.
IN_FLIGHT_CALLS = 256


class _Attempt(NamedTuple):
    """One HTTP attempt's result, and whether the request may have reached Finch (and so,
    for a call that is not idempotent, may have taken effect)."""

    result: FinchCallResult
    reached: bool


class _Retryable(Exception):
    """Carries a transient failure through tenacity; never leaves this module."""

    def __init__(self, result: FinchCallResult) -> None:
        super().__init__(result.reason or result.error_name or "transient failure")
        self.result = result


class FinchClient:
    """Talks to Finch (or the sandbox emulator) within its rate limits.

    Every public call returns a `FinchCallResult` rather than raising, so one bad token
    never fails a batch. Only unusable settings or arguments raise, as `FinchConfigError`,
    before anything is sent.

    Args:
        config: validated client settings.
        transport: an httpx transport to use instead of the network, e.g. the emulator's
            in-process ASGI transport.
    """

    def __init__(
        self, config: FinchClientConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._config = config
        limits = httpx.Limits(
            max_connections=config.max_concurrency,
            max_keepalive_connections=config.max_concurrency,
        )
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            # httpcore's pool rescans every connection on each event and collapses past ~20
            # concurrent requests (measured: 102 req/s at 32 against 542 with aiohttp's pool);
            # httpx-aiohttp keeps httpx's API over aiohttp's connection handling.
            transport=transport or AiohttpTransport(limits=limits),
            timeout=httpx.Timeout(config.timeout_seconds),
            limits=limits,
            headers={"Finch-API-Version": config.api_version, "User-Agent": USER_AGENT},
        )
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        # Calls of a rate-limited product (company: 20 a minute) queue in a lane of their
        # own: behind a thousand introspections they would wait out the IP budget holding
        # product slots, then leave in one burst. A few at a time keep up with 20 a minute
        # while an IP permit is taken at most a few product slots early.
        self._product_lane = asyncio.Semaphore(PRODUCT_LANE_CONCURRENCY)
        self._pacer = Pacer(config)
        self.stats = RequestStats()

    def __repr__(self) -> str:
        return f"FinchClient(base_url={self._config.base_url!r}, pacing={self._config.pacing})"

    async def __aenter__(self) -> "FinchClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()
        self._pacer.close()

    async def introspect(self, access_token: str) -> FinchCallResult:
        """`GET /introspect`: the connection behind a token."""
        return await self._call("introspect", "GET", "/introspect", access_token=access_token)

    async def automated_jobs(
        self, access_token: str, *, limit: int = 100, offset: int = 0
    ) -> FinchCallResult:
        """`GET /jobs/automated`, newest first; the scheduled job's `created_at` is when
        the connection was first made."""
        return await self._call(
            "jobs",
            "GET",
            "/jobs/automated",
            access_token=access_token,
            params={"limit": limit, "offset": offset},
        )

    async def company(self, access_token: str) -> FinchCallResult:
        """`GET /employer/company`; needs the `company` product and counts against its
        application-wide budget of 20 per minute."""
        return await self._call("company", "GET", "/employer/company", access_token=access_token)

    async def providers(self) -> FinchCallResult:
        """`GET /providers`: display names and capabilities; no auth needed."""
        return await self._call("providers", "GET", "/providers")

    async def create_connect_session(self, body: Mapping[str, Any]) -> FinchCallResult:
        """`POST /connect/sessions` with the application's Basic credentials.

        Not idempotent: every request Finch processes creates another live link. Retried
        only while the request certainly did not take effect; `UNKNOWN` when it may have.
        """
        return await self._call(
            "connect_sessions",
            "POST",
            "/connect/sessions",
            basic_auth=True,
            json=dict(body),
            idempotent=False,
        )

    async def reauthenticate_session(self, body: Mapping[str, Any]) -> FinchCallResult:
        """`POST /connect/sessions/reauthenticate` with the application's Basic credentials;
        not idempotent, like `create_connect_session`."""
        return await self._call(
            "reauthenticate",
            "POST",
            "/connect/sessions/reauthenticate",
            basic_auth=True,
            json=dict(body),
            idempotent=False,
        )

    async def disconnect(self, access_token: str) -> FinchCallResult:
        """`POST /disconnect`: revokes every token of the token's connection."""
        return await self._call("disconnect", "POST", "/disconnect", access_token=access_token)

    @property
    def in_flight_limit(self) -> int:
        """Calls worth starting at once: enough to keep every connection slot busy."""
        return max(IN_FLIGHT_CALLS, 2 * self._config.max_concurrency)

    def reserve_for_products(self, requests_per_window: int) -> None:
        """See `Pacer.reserve_for_products`: IP budget kept for company calls."""
        self._pacer.reserve_for_products(requests_per_window)

    async def introspect_many(
        self, access_tokens: Sequence[str], on_progress: ProgressCallback | None = None
    ) -> list[FinchCallResult]:
        """Introspect every token concurrently (bounded and paced); results in input order."""
        return await gather_with_progress(
            (self.introspect(token) for token in access_tokens),
            len(access_tokens),
            on_progress,
            self.in_flight_limit,
        )

    async def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        access_token: str | None = None,
        basic_auth: bool = False,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> FinchCallResult:
        """One logical call: paced attempts, retried while that is safe.

        Args:
            idempotent: False for calls that must not be repeated once Finch may have acted
                on them; such a call ends as `UNKNOWN` instead of being retried then.
        """
        headers = self._auth_headers(access_token, basic_auth)
        secrets = self._secrets(access_token, basic_auth)
        attempts = 0
        backoff = self._config.backoff_initial_seconds * self._config.time_scale
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._config.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=backoff,
                max=self._config.backoff_max_seconds * self._config.time_scale,
                jitter=backoff,
            ),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    if attempts > 1:
                        self.stats.retries += 1
                    result, reached = await self._attempt(
                        endpoint, method, path, headers, params, json, secrets
                    )
                    if not idempotent and reached and _unsettled(result):
                        result = _unknown(result)
                    elif result.outcome is CallOutcome.FAILED and result.reason == "transient":
                        raise _Retryable(result)
        except _Retryable as exc:
            result = replace(exc.result, reason=_transient_reason(exc.result))
        result = _scrub(replace(result, attempts=attempts), access_token)
        self.stats.by_outcome[result.outcome.value] += 1
        self._log_outcome(result, access_token)
        return result

    async def _attempt(
        self,
        endpoint: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        params: Mapping[str, Any] | None,
        json: Any,
        secrets: Mapping[str, str],
    ) -> _Attempt:
        # A call of a rate-limited product waits for its slot in its own lane, holding no
        # connection slot, so the other endpoints keep going meanwhile.
        product = ENDPOINT_PRODUCTS.get(endpoint)
        async with self._product_lane if product else self._semaphore:
            if self._pacer.ip_blocked:
                not_sent = FinchCallResult(
                    endpoint=endpoint,
                    outcome=CallOutcome.FAILED,
                    reason="not sent: Finch is blocking this IP (finch_api_ip_rl); more "
                    "requests would only be refused",
                )
                return _Attempt(not_sent, reached=False)
            await self._pacer.acquire(product)
            self.stats.record_sent()
            self.stats.by_endpoint[endpoint] += 1
            try:
                # asyncio.timeout bounds the whole exchange: httpx's timeouts are per phase
                # and do not apply at all to in-process transports.
                async with asyncio.timeout(self._config.timeout_seconds):
                    request = self._http.build_request(
                        method, path, headers=headers, params=params, json=json
                    )
                    response = await self._http.send(request, stream=True)
                    try:
                        content = await read_capped(response)
                    finally:
                        await response.aclose()
            except TimeoutError:
                # The deadline may have passed at any point, the request sent or not.
                self.stats.timeouts += 1
                timed_out = f"timed out after {self._config.timeout_seconds}s"
                return _Attempt(_transient(endpoint, timed_out), reached=True)
            except httpx.TimeoutException as exc:
                # Also raised for a refused connection by the aiohttp transport: say what it was.
                self.stats.timeouts += 1
                message = f"{type(exc).__name__}: {str(exc)[:200]}"
                return _Attempt(_transient(endpoint, message), reached=not _never_sent(exc))
            except httpx.TransportError as exc:
                self.stats.transport_errors += 1
                message = f"connection failed ({type(exc).__name__})"
                return _Attempt(_transient(endpoint, message), reached=not _never_sent(exc))
            finally:
                self.stats.record_ended()
        self.stats.by_status[str(response.status_code)] += 1
        reached = response.status_code not in NOT_PROCESSED_STATUSES
        return _Attempt(self._classify(endpoint, response, content, secrets), reached=reached)

    def _classify(
        self,
        endpoint: str,
        response: httpx.Response,
        content: bytes | Unread,
        secrets: Mapping[str, str],
    ) -> FinchCallResult:
        """What a response came to; `content` is its body, or why it was not read."""
        base = FinchCallResult(
            endpoint=endpoint,
            outcome=CallOutcome.FAILED,
            status_code=response.status_code,
            request_id=response.headers.get("finch-request-id"),
            server_date=response.headers.get("date"),
        )
        status = response.status_code
        if 200 <= status < 300:
            return self._classify_success(base, content, secrets)
        error = _error_fields(content)
        base = replace(base, **error)
        if status == 429:
            self.stats.rate_limited += 1
            self._pacer.record_rate_limited(error.get("finch_code"))
            return replace(base, reason="transient", message=base.message or "rate limited")
        if status >= 500 or status == 408:
            return replace(base, reason="transient")
        if status == 401 and base.error_name in INVALID_TOKEN_NAMES:
            return replace(base, outcome=CallOutcome.INVALID_TOKEN)
        if status == 401 and base.error_name == "authentication_error":
            return replace(base, outcome=CallOutcome.NEEDS_REAUTH)
        if status == 403:
            return replace(base, outcome=CallOutcome.PERMISSION_MISSING)
        return replace(base, reason=f"HTTP {status} {base.error_name or ''}".strip())

    def _classify_success(
        self, base: FinchCallResult, content: bytes | Unread, secrets: Mapping[str, str]
    ) -> FinchCallResult:
        """OK with the body's text, or why the body cannot be used. A body past a decoding
        limit would come back the same, so it is a failure of its own, never retried; only
        one that is not JSON at all (cut short on the way, say) is transient."""
        if isinstance(content, Unread):
            return self._unusable(base, content.reason)
        try:
            # JSON between systems is UTF-8 (RFC 8259), whatever charset a header claims;
            # httpx's `text` would replace what does not decode, and the body load as valid.
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            what = f"not valid UTF-8 (byte {exc.start:,} of {len(content):,})"
            return self._unusable(base, what, excerpt(content, secrets))
        if nested_deeper_than(content, MAX_JSON_DEPTH):
            what = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            return self._unusable(base, what, excerpt(content, secrets))
        try:
            missing = _missing_fields(base.endpoint, text)
        except RecursionError:
            # Only when this thread's stack is already deep: the depth check came first.
            return self._unusable(base, "JSON nested too deep to decode", excerpt(content, secrets))
        except ValueError:
            self.stats.malformed_bodies += 1
            return replace(base, reason="transient", message="malformed JSON body")
        if missing:
            self.stats.malformed_bodies += 1
            return replace(base, reason=f"response lacks required field(s): {', '.join(missing)}")
        self._pacer.record_success()
        return replace(base, outcome=CallOutcome.OK, text=text)

    def _unusable(self, base: FinchCallResult, what: str, start: str = "") -> FinchCallResult:
        self.stats.malformed_bodies += 1
        quoted = f"; it starts {start}" if start else ""
        return replace(base, reason=f"unusable body: {what}{quoted}")

    def _secrets(self, access_token: str | None, basic_auth: bool) -> dict[str, str]:
        """What a quoted body must not show, and what shows instead."""
        secret = self._config.client_secret
        if basic_auth and secret is not None:
            pair = f"{self._config.client_id}:{secret.get_secret_value()}"
            basic = base64.b64encode(pair.encode()).decode("ascii")
            return {secret.get_secret_value(): HIDDEN, basic: HIDDEN}
        return {access_token: token_fingerprint(access_token)} if access_token else {}

    def _auth_headers(self, access_token: str | None, basic_auth: bool) -> dict[str, str]:
        if basic_auth:
            config = self._config
            config.check_app_credentials()
            pair = f"{config.client_id}:{config.client_secret.get_secret_value()}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
        if access_token is None:
            return {}
        _check_token(access_token)
        return {"Authorization": f"Bearer {access_token}"}

    def _log_outcome(self, result: FinchCallResult, access_token: str | None) -> None:
        if result.ok:
            return
        failed = result.outcome in (CallOutcome.FAILED, CallOutcome.UNKNOWN)
        level = logging.WARNING if failed else logging.INFO
        logger.log(
            level,
            "Finch %s for token %s: %s (HTTP %s %s %s, %d attempt(s), Finch-Request-Id %s)",
            result.endpoint,
            token_fingerprint(access_token) if access_token else "-",
            result.outcome.value,
            result.status_code,
            result.error_name or "",
            result.finch_code or "",
            result.attempts,
            result.request_id or "-",
        )


async def gather_with_progress(
    calls: Iterable[Awaitable[FinchCallResult]],
    total: int,
    on_progress: ProgressCallback | None = None,
    limit: int = IN_FLIGHT_CALLS,
) -> list[FinchCallResult]:
    """Await every call, at most `limit` at once, reporting (done, total) as they finish;
    results in the order of `calls`."""
    results: list[FinchCallResult | None] = [None] * total

    def keep(index: int, result: FinchCallResult) -> None:
        results[index] = result

    await for_each_completed(calls, keep, total, on_progress, limit)
    return cast(list[FinchCallResult], results)


async def for_each_completed(
    calls: Iterable[Awaitable[T]],
    on_result: Callable[[int, T], None],
    total: int,
    on_progress: ProgressCallback | None = None,
    limit: int = IN_FLIGHT_CALLS,
) -> None:
    """Await `calls`, at most `limit` at once, handing each (position, result) to
    `on_result` as it finishes and reporting (done, total).

    A call is taken from `calls` only when a worker is free, so a generator of a million
    calls holds `limit` coroutines at a time, not a million: memory follows the
    concurrency, not the fleet. The client's own semaphore and pacer still decide when each
    request leaves; `limit` only has to exceed them to keep them busy.
    """
    pending = iter(enumerate(calls))
    done = 0

    async def worker() -> None:
        nonlocal done
        # One event loop thread: taking the next call never interleaves with another worker.
        for index, call in pending:
            result = await call
            done += 1
            on_result(index, result)
            if on_progress is not None:
                on_progress(done, total)

    # gather, not a TaskGroup: the first error propagates as itself, as it always has.
    await asyncio.gather(*(worker() for _ in range(max(min(limit, total), 1))))


def _check_token(access_token: str) -> None:
    if not access_token or not access_token.strip():
        raise FinchConfigError("access_token is empty")
    if not access_token.isascii() or not access_token.isprintable():
        raise FinchConfigError("access_token contains characters not allowed in an HTTP header")


def _transient(endpoint: str, message: str) -> FinchCallResult:
    return FinchCallResult(
        endpoint=endpoint, outcome=CallOutcome.FAILED, reason="transient", message=message
    )


def _never_sent(exc: httpx.TransportError) -> bool:
    """Whether the request certainly never left this machine (see NOT_SENT_*_ERRORS)."""
    cause = exc.__cause__
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, NOT_SENT_AIOHTTP_ERRORS)
    return isinstance(exc, NOT_SENT_HTTPX_ERRORS)


def _unsettled(result: FinchCallResult) -> bool:
    """A failure that does not tell whether Finch acted: a transient one (5xx, 408, timeout,
    dropped connection, malformed body) or a success status whose body cannot be used."""
    if result.outcome is not CallOutcome.FAILED:
        return False
    status = result.status_code
    return result.reason == "transient" or (status is not None and 200 <= status < 300)


def _unknown(result: FinchCallResult) -> FinchCallResult:
    status = f"HTTP {result.status_code}: " if result.status_code else ""
    reason = result.reason if result.reason != "transient" else None
    detail = result.message or result.error_name or reason or "no usable answer"
    return replace(
        result, outcome=CallOutcome.UNKNOWN, reason=f"{MAY_HAVE_TAKEN_EFFECT}{status}{detail}"
    )


def _transient_reason(result: FinchCallResult) -> str:
    detail = result.message or result.error_name or "transient failure"
    status = f"HTTP {result.status_code}: " if result.status_code else ""
    return f"failed after retries: {status}{detail}"


def _error_fields(content: bytes | Unread) -> dict[str, Any]:
    if isinstance(content, Unread):
        return {}
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(body, dict):
        return {}
    return {
        "error_name": _str_or_none(body.get("name")),
        "finch_code": _str_or_none(body.get("finch_code")),
        "message": _str_or_none(body.get("message")),
    }


def _missing_fields(endpoint: str, text: str) -> list[str]:
    """The required fields `text` lacks (absent or null); raises `ValueError` when it is not
    JSON. Only the required fields are looked at, and none is materialised."""
    shape = _BODY_SHAPES.get(endpoint)
    try:
        checked = shape.decode(text) if shape else msgspec.json.decode(text)
    except msgspec.DecodeError:
        # The wrong shape, or JSON msgspec refuses but Python reads (an unpaired surrogate
        # escape), or not JSON at all (json.loads raises): rare, so decoded in full.
        return _missing_from(endpoint, json.loads(text))
    if shape is None or endpoint == "providers":
        return []
    return [name for name in REQUIRED_FIELDS[endpoint] if getattr(checked, name) == _NULL]


def _missing_from(endpoint: str, data: Any) -> list[str]:
    required = REQUIRED_FIELDS.get(endpoint, ())
    if endpoint == "providers":
        return [] if isinstance(data, list) else ["<a JSON array>"]
    if not isinstance(data, dict):
        return ["<a JSON object>"] if required else []
    return [name for name in required if data.get(name) is None]


_NULL = msgspec.Raw(b"null")
# Per endpoint, a decoder that checks the body's JSON and reads only its required fields,
# each left as raw JSON.
_BODY_SHAPES: Mapping[str, msgspec.json.Decoder] = {
    **{
        endpoint: msgspec.json.Decoder(
            msgspec.defstruct(f"{endpoint}_required", [(name, msgspec.Raw) for name in fields])
        )
        for endpoint, fields in REQUIRED_FIELDS.items()
    },
    "providers": msgspec.json.Decoder(list[msgspec.Raw]),
}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)[:500]


def _scrub(result: FinchCallResult, access_token: str | None) -> FinchCallResult:
    """Replace any echo of the token in server-supplied text with its fingerprint."""
    if not access_token or not result.message:
        return result
    fingerprint = {access_token: token_fingerprint(access_token)}
    return replace(result, message=scrub(result.message, fingerprint))
