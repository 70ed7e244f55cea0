"""Bodies past the decoding limits: the call's typed failure with its reason, never an
exception, never retried, quoted by no more than a short excerpt.

Regression: a 2 KB `/introspect` body nested 1,000 levels deep raised RecursionError in the
required-field check (msgspec, and the stdlib fallback) and failed the whole sync; invalid
UTF-8 was replaced by httpx's `text` and loaded as a success.
"""

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from documentation import doc_section
from hypothesis import given, settings
from hypothesis import strategies as st
from reliability.hostile_server import serve_hostile
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from connections_pipeline.decoding_limits import (
    EXCERPT_CHARS,
    MAX_BODY_BYTES,
    MAX_ENTITIES_PER_CONNECTION,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_TEXT_CHARS,
)
from connections_pipeline.finch import (
    CallOutcome,
    FinchCallResult,
    FinchClient,
    FinchClientConfig,
    token_fingerprint,
)
from connections_pipeline.finch.bodies import nested_deeper_than
from finch_sandbox import FinchSandbox, SandboxConfig

TOKEN = "tok_hostile_body_0123456789abcdef"
INTROSPECTION = {"connection_id": "conn-1", "connection_status": {"status": "connected"}}


def _nested(depth: int, fields: dict[str, Any] = INTROSPECTION) -> bytes:
    """`fields` plus an unknown field whose value nests `depth - 1` arrays (depth in all)."""
    inner = depth - 1
    return (json.dumps(fields)[:-1] + f', "deep": {"[" * inner}{"]" * inner}}}').encode()


def _finch(content: bytes, *, status: int = 200, headers: dict[str, str] | None = None):
    """A stand-in Finch answering every path with `content`."""

    async def answer(request: Request) -> Response:
        return Response(content, status_code=status, headers=headers, media_type=None)

    routes = [Route(path, answer, methods=["GET", "POST"]) for path in _PATHS]
    return httpx.ASGITransport(app=Starlette(routes=routes))


_PATHS = ("/introspect", "/employer/company", "/jobs/automated", "/connect/sessions")


def _config(**overrides: Any) -> FinchClientConfig:
    settings: dict[str, Any] = {
        "base_url": "http://finch.test",
        "max_attempts": 3,
        "backoff_initial_seconds": 0.01,
        "client_id": "client-1",
        "client_secret": "secret-not-to-be-shown",
    }
    settings.update(overrides)
    return FinchClientConfig(**settings)


def _call(
    transport: httpx.AsyncBaseTransport,
    call: Callable[[FinchClient], Awaitable[FinchCallResult]],
    **config: Any,
) -> tuple[FinchCallResult, dict[str, Any]]:
    async def scenario() -> tuple[FinchCallResult, dict[str, Any]]:
        async with FinchClient(_config(**config), transport=transport) as client:
            result = await call(client)
            return result, client.stats.as_dict()

    return asyncio.run(scenario())


def _introspect(client: FinchClient) -> Awaitable[FinchCallResult]:
    return client.introspect(TOKEN)


def _assert_refused(result: FinchCallResult, stats: dict[str, Any], fragment: str) -> None:
    assert result.outcome is CallOutcome.FAILED
    assert result.text is None
    assert fragment in (result.reason or ""), result.reason
    assert result.reason.startswith("unusable body: ")
    # The same body would come back: one request, no retry.
    assert result.attempts == 1
    assert stats["requests"] == 1


@pytest.mark.parametrize("endpoint", ["introspect", "company"])
def test_a_body_nested_a_thousand_levels_deep_is_that_calls_failure(endpoint: str) -> None:
    body = _nested(1_000, INTROSPECTION if endpoint == "introspect" else {"id": "company-1"})
    assert len(body) < 2_200

    def call(client: FinchClient) -> Awaitable[FinchCallResult]:
        return client.introspect(TOKEN) if endpoint == "introspect" else client.company(TOKEN)

    result, stats = _call(_finch(body), call)
    _assert_refused(result, stats, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    # A bounded excerpt of the body, no more.
    assert len(result.reason) < 120 + 4 * EXCERPT_CHARS


def test_nesting_up_to_the_limit_is_accepted_and_one_level_more_is_refused() -> None:
    at_limit, _ = _call(_finch(_nested(MAX_JSON_DEPTH)), _introspect)
    assert at_limit.outcome is CallOutcome.OK
    assert json.loads(at_limit.text)["connection_id"] == "conn-1"
    past, stats = _call(_finch(_nested(MAX_JSON_DEPTH + 1)), _introspect)
    _assert_refused(past, stats, "nested deeper than")


def test_brackets_inside_strings_are_not_nesting() -> None:
    fields = {**INTROSPECTION, "customer_name": "[{" * 500 + '\\"[' * 100}
    result, _ = _call(_finch(json.dumps(fields).encode()), _introspect)
    assert result.outcome is CallOutcome.OK


def test_a_deep_error_body_is_read_as_an_error_without_its_fields() -> None:
    result, _ = _call(_finch(_nested(5_000), status=401), _introspect)
    assert result.outcome is CallOutcome.FAILED
    assert result.reason == "HTTP 401"


def test_invalid_utf8_is_refused_not_replaced() -> None:
    body = b'{"connection_id": "conn-1", "connection_status": {}, "customer_name": "Caf\xe9"}'
    result, stats = _call(_finch(body, headers={"content-type": "application/json"}), _introspect)
    bad_byte = body.index(b"\xe9")
    _assert_refused(result, stats, f"not valid UTF-8 (byte {bad_byte} of {len(body)})")
    assert "\ufffd" not in result.reason


def test_a_body_past_the_size_limit_is_refused_whether_its_length_is_declared_or_not() -> None:
    padding = " " * (MAX_BODY_BYTES + 1 - len(json.dumps(INTROSPECTION)))
    body = (json.dumps(INTROSPECTION)[:-1] + padding + "}").encode()
    assert len(body) == MAX_BODY_BYTES + 1
    declared, stats = _call(_finch(body), _introspect)
    _assert_refused(declared, stats, f"body larger than {MAX_BODY_BYTES:,} bytes")

    async def chunks(request: Request) -> StreamingResponse:
        async def produce():
            for start in range(0, len(body), 1 << 20):
                yield body[start : start + (1 << 20)]

        return StreamingResponse(produce(), media_type="application/json")

    streamed = httpx.ASGITransport(app=Starlette(routes=[Route("/introspect", chunks)]))
    result, stats = _call(streamed, _introspect)
    _assert_refused(result, stats, "body larger than")
    # A body exactly at the limit is read.
    at_limit = body[:-2] + b"}"
    ok, _ = _call(_finch(at_limit), _introspect)
    assert ok.outcome is CallOutcome.OK


def test_a_body_whose_compression_hides_its_size_is_refused() -> None:
    # 9 MiB of JSON in a few kB of gzip: the limit counts what it decodes to.
    padding = " " * (MAX_BODY_BYTES + (1 << 20))
    body = gzip.compress((json.dumps(INTROSPECTION)[:-1] + padding + "}").encode())
    result, stats = _call(_finch(body, headers={"content-encoding": "gzip"}), _introspect)
    _assert_refused(result, stats, "body larger than")


def test_a_body_that_does_not_decode_as_its_content_encoding_is_refused() -> None:
    result, stats = _call(
        _finch(b"this is not gzip", headers={"content-encoding": "gzip"}), _introspect
    )
    _assert_refused(result, stats, "does not decode as its content-encoding 'gzip'")


def test_the_excerpt_of_a_refused_body_never_shows_the_token() -> None:
    echoed = json.dumps({"echo": TOKEN, "deep": [[[[[[[[]]]]]]]]})
    body = (echoed[:-1] + ', "x": ' + "[" * 100 + "]" * 100 + "}").encode()
    result, _ = _call(_finch(body), _introspect)
    assert result.outcome is CallOutcome.FAILED
    assert TOKEN not in repr(result)
    assert TOKEN[:12] not in repr(result)
    assert token_fingerprint(TOKEN) in result.reason


def test_a_connect_session_answered_with_a_deep_body_may_have_taken_effect() -> None:
    body = _nested(1_000, {"session_id": "s-1", "connect_url": "https://connect.test"})

    def create(client: FinchClient) -> Awaitable[FinchCallResult]:
        return client.create_connect_session({"customer_id": "c", "customer_name": "C"})

    result, stats = _call(_finch(body), create)
    assert result.outcome is CallOutcome.UNKNOWN
    assert "nested deeper than" in result.reason
    assert stats["requests"] == 1
    assert "secret-not-to-be-shown" not in repr(result)


def test_limits_hold_over_real_http_with_the_default_transport() -> None:
    """The aiohttp transport the client uses against Finch, on loopback: a deep body, an
    oversized one and invalid UTF-8 for three tokens, the emulator's answer for the rest."""
    sandbox = FinchSandbox(SandboxConfig(seed=3, connections=6, time_scale=0.01))
    tokens = [token["access_token"] for token in sandbox.tokens() if not token["revoked"]]
    deep, large, latin1, good = tokens[:4]
    oversized = json.dumps(INTROSPECTION)[:-1] + " " * MAX_BODY_BYTES + "}"
    answers = {
        ("/introspect", deep): _nested(1_000),
        ("/introspect", large): oversized.encode(),
        ("/introspect", latin1): json.dumps(INTROSPECTION).encode("utf-8")[:-1] + b',"n":"\xff"}',
    }
    with serve_hostile(sandbox, answers) as base_url:

        async def scenario() -> list[FinchCallResult]:
            config = _config(base_url=base_url, time_scale=0.01, timeout_seconds=10.0)
            async with FinchClient(config) as client:
                return await client.introspect_many([deep, large, latin1, good])

        results = asyncio.run(scenario())
    reasons = [result.reason or "" for result in results]
    assert "nested deeper than" in reasons[0]
    assert "body larger than" in reasons[1]
    assert "not valid UTF-8" in reasons[2]
    assert results[3].outcome is CallOutcome.OK
    assert [result.attempts for result in results[:3]] == [1, 1, 1]


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_tricky_text = st.text(alphabet='[]{}"\\\u00e9\U0001f680ab', max_size=8)
_json = st.recursive(
    st.one_of(st.none(), st.integers(), _tricky_text),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_tricky_text, children, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=_json, limit=st.integers(1, 12), ascii_only=st.booleans())
def test_the_depth_check_agrees_with_the_parsed_depth(
    value: Any, limit: int, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nested_deeper_than(body, limit) == (_depth(value) > limit)


def test_the_readme_states_each_decoding_limit_as_declared() -> None:
    section = doc_section("Decoding limits")
    rows = {
        line.split("|")[1].strip(): line.split("|")[2]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| limit")
    }
    shown = {
        "body size": f"{MAX_BODY_BYTES // (1 << 20)} MiB (`MAX_BODY_BYTES`)",
        "JSON nesting": f"{MAX_JSON_DEPTH} levels of arrays and objects (`MAX_JSON_DEPTH`)",
        "id length": f"{MAX_ID_CHARS} characters (`MAX_ID_CHARS`)",
        "text length": f"{MAX_TEXT_CHARS:,} characters (`MAX_TEXT_CHARS`)",
        "entities": f"{MAX_ENTITIES_PER_CONNECTION:,} per connection",
    }
    for limit, text in shown.items():
        assert text in rows[limit], (limit, rows[limit])
    assert f"first {EXCERPT_CHARS} characters" in section
