"""The receiver against a real warehouse (DuckDB file and PostgreSQL): what it stores, what
it refuses, and what it logs."""

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from finch import Finch
from webhook_helpers import OTHER_SECRET, SECRET, account_updated, delivery, make_warehouse

from connections_pipeline.warehouse import Warehouse
from connections_pipeline.webhooks import WEBHOOK_PATH, create_receiver, decode_secret
from connections_pipeline.webhooks.server import receiver_app, serve_in_thread

RECEIVER_LOGGER = "connections_pipeline.webhooks.receiver"


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    postgres_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    store = make_warehouse(request.param, tmp_path, postgres_url, hold_connections=False)
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def client(warehouse: Warehouse) -> Iterator[httpx.Client]:
    """The receiver over loopback HTTP, as Finch reaches it (behind the ingress)."""
    with (
        serve_in_thread(receiver_app(warehouse, SECRET)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as http,
    ):
        yield http


def stored_ids(warehouse: Warehouse) -> list[str]:
    return warehouse.read_table("finch_webhook_events")["event_id"].to_list()


def test_a_valid_delivery_is_stored_with_what_the_event_says(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(account_updated("conn-1", "reauth"), event_id="evt-1")
    answer = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json() == {"status": "stored"}
    row = warehouse.read_table("finch_webhook_events").row(0, named=True)
    assert row["event_id"] == "evt-1"
    assert row["event_type"] == "account.updated"
    assert (row["connection_id"], row["entity_id"], row["status"]) == (
        "conn-1",
        "ent-conn-1",
        "reauth",
    )
    assert int(row["finch_timestamp"].timestamp()) == int(headers["finch-timestamp"])
    assert row["received_at"] is not None
    assert (row["processed_at"], row["processed_by_run"], row["outcome"]) == (None, None, None)


def test_the_official_sdk_accepts_exactly_what_the_receiver_accepts(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    sdk = Finch(access_token="unused", webhook_secret=SECRET)
    body, headers = delivery(account_updated("conn-sdk"), event_id="evt-sdk")
    sdk.webhooks.verify_signature(body, headers)
    event = sdk.webhooks.unwrap(body, headers)
    assert (event.connection_id, event.event_type) == ("conn-sdk", "account.updated")
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200
    tampered = body.replace(b"reauth", b"connected")
    with pytest.raises(ValueError, match="signatures"):
        sdk.webhooks.verify_signature(tampered, headers)
    assert client.post(WEBHOOK_PATH, content=tampered, headers=headers).status_code == 401
    assert stored_ids(warehouse) == ["evt-sdk"]


def test_several_signatures_pass_when_one_matches(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(account_updated("conn-2"), event_id="evt-2")
    _, other = delivery(account_updated("conn-2"), secret=OTHER_SECRET, event_id="evt-2")
    headers["finch-signature"] = f"v2,abc {other['finch-signature']} {headers['finch-signature']}"
    Finch(access_token="unused", webhook_secret=SECRET).webhooks.verify_signature(body, headers)
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200
    assert stored_ids(warehouse) == ["evt-2"]


@pytest.mark.parametrize(
    "case",
    ["tampered body", "other secret", "other event id", "other timestamp", "v0 prefix"],
)
def test_a_signature_that_does_not_match_is_refused_and_nothing_stored(
    case: str, client: httpx.Client, warehouse: Warehouse
) -> None:
    now = int(time.time())
    body, headers = delivery(account_updated("conn-3"), event_id="evt-3", timestamp=now)
    if case == "tampered body":
        body = body.replace(b"conn-3", b"conn-4")
    elif case == "other secret":
        body, headers = delivery(
            account_updated("conn-3"), secret=OTHER_SECRET, event_id="evt-3", timestamp=now
        )
    elif case == "other event id":
        headers["finch-event-id"] = "evt-4"
    elif case == "other timestamp":
        headers["finch-timestamp"] = str(now - 1)
    else:
        headers["finch-signature"] = headers["finch-signature"].replace("v1,", "v0,")
    answer = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert answer.status_code == 401
    assert stored_ids(warehouse) == []


@pytest.mark.parametrize(("offset", "expected"), [(-301, 401), (301, 401), (-240, 200), (240, 200)])
def test_timestamps_count_within_five_minutes_either_way(
    offset: int, expected: int, client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(account_updated("conn-5"), timestamp=int(time.time()) + offset)
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == expected
    assert len(stored_ids(warehouse)) == (1 if expected == 200 else 0)


@pytest.mark.parametrize("header", ["finch-event-id", "finch-timestamp", "finch-signature"])
def test_a_missing_header_is_refused(
    header: str, client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(account_updated("conn-6"))
    del headers[header]
    answer = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert answer.status_code == 400
    assert header in answer.json()["error"]
    assert stored_ids(warehouse) == []


def test_a_timestamp_that_is_not_a_time_is_refused(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(account_updated("conn-7"))
    for text in ("yesterday", "nan", "inf", "1e30"):
        headers["finch-timestamp"] = text
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 400
    assert stored_ids(warehouse) == []


def test_a_replayed_event_id_is_acknowledged_and_stored_once(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(account_updated("conn-8", "reauth"), event_id="evt-8")
    first = client.post(WEBHOOK_PATH, content=body, headers=headers)
    stored = warehouse.read_table("finch_webhook_events")
    # Finch retries with the same event ID; a retry may carry a newer timestamp and body.
    again, retry_headers = delivery(
        account_updated("conn-8", "connected"), event_id="evt-8", timestamp=int(time.time()) + 1
    )
    replays = [
        client.post(WEBHOOK_PATH, content=body, headers=headers),
        client.post(WEBHOOK_PATH, content=again, headers=retry_headers),
    ]
    assert first.json() == {"status": "stored"}
    assert [(r.status_code, r.json()) for r in replays] == [(200, {"status": "duplicate"})] * 2
    assert warehouse.read_table("finch_webhook_events").equals(stored)


def test_an_oversized_body_is_refused_before_it_is_stored(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    payload = account_updated("conn-9", padding="x" * 300_000)
    body, headers = delivery(payload)
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 413
    # Without a Content-Length the body is counted as it streams in.
    chunks = (body[i : i + 65_536] for i in range(0, len(body), 65_536))
    assert client.post(WEBHOOK_PATH, content=chunks, headers=headers).status_code == 413
    assert stored_ids(warehouse) == []


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"connection_id": "c"}', b"\xff\xfe", b'"text"']
)
def test_a_signed_body_that_is_not_a_finch_event_is_refused(
    body: bytes, client: httpx.Client, warehouse: Warehouse
) -> None:
    body, headers = delivery(body)
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 400
    assert stored_ids(warehouse) == []


def test_only_the_connection_id_and_type_are_taken_from_a_hostile_body(
    client: httpx.Client, warehouse: Warehouse
) -> None:
    payload = {
        "event_type": "account.updated",
        "connection_id": "conn-10",
        "entity_id": {"nested": "object"},
        "data": {"status": "x" * 1_000},
    }
    body, headers = delivery(payload, event_id="evt-10")
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200
    row = warehouse.read_table("finch_webhook_events").row(0, named=True)
    assert (row["connection_id"], row["entity_id"], row["status"]) == ("conn-10", None, None)


def test_a_store_that_fails_answers_503_for_finch_to_retry(tmp_path: Path) -> None:
    unreachable = Warehouse("postgresql+psycopg://postgres@127.0.0.1:1/none", schema="finch")

    app = create_receiver(decode_secret(SECRET), unreachable.store_webhook_event)
    with serve_in_thread(app) as base_url:
        body, headers = delivery(account_updated("conn-11"))
        answer = httpx.post(base_url + WEBHOOK_PATH, content=body, headers=headers, timeout=30)
    assert answer.status_code == 503


def test_each_refusal_is_one_log_line_and_no_log_holds_the_secret(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body, headers = delivery(account_updated("conn-12"), event_id="evt-12")
    refusals = [
        {**headers, "finch-signature": headers["finch-signature"][:-4] + "AAA="},
        {**headers, "finch-timestamp": str(int(time.time()) - 3_600)},
        {k: v for k, v in headers.items() if k != "finch-event-id"},
    ]
    for refused in refusals:
        caplog.clear()
        assert client.post(WEBHOOK_PATH, content=body, headers=refused).status_code in (400, 401)
        lines = [r for r in caplog.records if r.name == RECEIVER_LOGGER]
        assert len(lines) == 1
        assert lines[0].levelno == logging.WARNING
    caplog.clear()
    assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name == RECEIVER_LOGGER] != []
    key = decode_secret(SECRET)
    for text in (r.getMessage() + str(r.args) for r in caplog.records):
        assert SECRET not in text
        assert key.hex() not in text
        assert headers["finch-signature"][3:] not in text
