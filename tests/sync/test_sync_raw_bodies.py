"""Raw bodies as stored: the text Finch sent, byte for byte, decoded once into columns."""

import asyncio
import json

import httpx
import polars as pl
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connections_pipeline.finch import CallOutcome, FinchClient, FinchClientConfig
from connections_pipeline.sync.decoding import IntrospectionDecoder
from connections_pipeline.sync.raw_rows import RAW_SCHEMA, raw_row
from connections_pipeline.transform.parse import parse_introspections

# Spacing, key order, a non-ASCII name and a lone surrogate escape: json.dumps of the
# parsed body would give back none of them as sent.
ODD_BODY = (
    '{ "connection_status" : {"status":"connected"},\n'
    '  "connection_id":"conn-1", "customer_name": "Zoë & Søn — 株式会社 \\ud800",'
    ' "products":["company" , "directory"], "entities": [] }'
)


def _finch_answering(body: str, status: int = 200) -> httpx.AsyncBaseTransport:
    async def introspect(request: Request) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    return httpx.ASGITransport(app=Starlette(routes=[Route("/introspect", introspect)]))


def _introspect(body: str):
    async def scenario():
        config = FinchClientConfig(
            base_url="http://finch.test", max_attempts=1, backoff_initial_seconds=0.01
        )
        async with FinchClient(config, transport=_finch_answering(body)) as client:
            return await client.introspect("token-1")

    return asyncio.run(scenario())


def test_the_stored_body_is_the_text_finch_sent() -> None:
    result = _introspect(ODD_BODY)
    assert result.outcome is CallOutcome.OK
    row = raw_row("run-1", result, "fp-1", "conn-from-source")
    assert row["body"] == ODD_BODY
    frame = pl.DataFrame([row], schema=RAW_SCHEMA)
    assert frame["body"].to_list() == [ODD_BODY]
    [parsed] = parse_introspections(frame)[0].to_dicts()
    assert parsed["connection_id"] == "conn-1"
    assert parsed["customer_name"].startswith("Zoë & Søn — 株式会社")
    assert parsed["products"] == "company,directory"


@pytest.mark.parametrize(
    ("body", "outcome", "reason"),
    [
        ('{"connection_id": "conn-1", "connection_status": {', "failed", "malformed JSON body"),
        ('{"connection_id": "conn-1"}', "failed", "connection_status"),
        ('{"connection_id": null, "connection_status": {}}', "failed", "connection_id"),
        ('["conn-1"]', "failed", "<a JSON object>"),
    ],
)
def test_an_unusable_success_body_is_a_typed_failure_without_a_body(
    body: str, outcome: str, reason: str
) -> None:
    result = _introspect(body)
    assert result.outcome.value == outcome
    assert result.text is None
    assert reason in (result.reason or "")


ROW = {**dict.fromkeys(RAW_SCHEMA), "endpoint": "introspect", "outcome": "ok"}


def test_the_decoder_decodes_in_chunks_as_answers_arrive_and_keeps_every_row() -> None:
    bodies = [
        json.dumps({"connection_id": f"conn-{n}", "connection_status": {"status": "connected"}})
        for n in range(7)
    ] + ["{not json"]

    async def scenario():
        decoder = IntrospectionDecoder(chunk_rows=3)
        for n, body in enumerate(bodies):
            decoder.add({**ROW, "token_fingerprint": f"fp-{n}", "body": body})
        decoder.add({**ROW, "token_fingerprint": "fp-failed", "outcome": "failed"})
        return await decoder.decoded()

    parsed, rejected = asyncio.run(scenario())
    assert parsed["connection_id"].to_list() == [f"conn-{n}" for n in range(7)]
    assert rejected["token_fingerprint"].to_list() == ["fp-7"]
    assert "malformed body" in rejected["reason"][0]
