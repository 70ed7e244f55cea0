"""The emulator sends Finch's webhooks: signed so the official SDK accepts them, for every
status change and completed sync, with the faults it is asked for."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from finch import Finch
from finch.types import AccountUpdateEvent, JobCompletionEvent
from sandbox_helpers import CLI, cli_server, make_sandbox
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connections_pipeline.webhooks.server import serve_in_thread as serve_app_in_thread
from finch_sandbox import FinchSandbox, serve_in_thread


@dataclass
class Captured:
    """What a receiver saw: every attempt, and whether the SDK accepted its signature."""

    attempts: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)

    def accepted(self) -> list[tuple[dict[str, str], bytes]]:
        return [(headers, body) for headers, body, ok in self.attempts if ok]


@pytest.fixture
def sandbox() -> FinchSandbox:
    return make_sandbox()


@pytest.fixture
def receiver(sandbox: FinchSandbox) -> Iterator[tuple[str, Captured]]:
    """A receiver that checks each delivery with the official SDK: 200 if it verifies."""
    captured = Captured()
    sdk = Finch(access_token="unused", webhook_secret=sandbox.webhooks.secret)

    async def hook(request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        try:
            sdk.webhooks.verify_signature(body, headers)
            ok = True
        except ValueError:
            ok = False
        captured.attempts.append((headers, body, ok))
        return Response(status_code=200 if ok else 401)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    with serve_app_in_thread(app) as base_url:
        yield f"{base_url}/hook", captured


def events(captured: Captured) -> list[tuple[str, dict[str, Any]]]:
    return [(headers["finch-event-id"], json.loads(body)) for headers, body in captured.accepted()]


def test_a_status_set_through_the_admin_route_sends_a_signed_account_updated(
    sandbox: FinchSandbox, receiver: tuple[str, Captured]
) -> None:
    url, captured = receiver
    connection = next(c for c in sandbox.data.connections.values() if c.status == "connected")
    with serve_in_thread(sandbox) as base_url:
        configured = httpx.post(f"{base_url}/_sandbox/webhooks", json={"url": url})
        assert configured.status_code == 200
        assert "secret" not in json.dumps(configured.json())
        answer = httpx.post(
            f"{base_url}/_sandbox/connections/{connection.connection_id}/status",
            json={"status": "reauth"},
        )
        assert answer.status_code == 200
        assert sandbox.webhooks.wait_until_delivered()
        deliveries = httpx.get(f"{base_url}/_sandbox/webhooks").json()["deliveries"]
    [(event_id, body)] = events(captured)
    event = Finch(access_token="unused", webhook_secret=sandbox.webhooks.secret).webhooks.unwrap(
        captured.accepted()[0][1], captured.accepted()[0][0]
    )
    assert isinstance(event, AccountUpdateEvent)
    assert event.connection_id == connection.connection_id
    assert body["data"]["status"] == "reauth"
    assert [(d["event_id"], d["status_code"]) for d in deliveries] == [(event_id, 200)]


def test_a_disconnection_is_an_account_updated_with_status_disconnected(
    sandbox: FinchSandbox, receiver: tuple[str, Captured]
) -> None:
    url, captured = receiver
    sandbox.webhooks.configure(url)
    connection = next(c for c in sandbox.data.connections.values() if not c.disconnected)
    sandbox.set_connection_status(connection.connection_id, "disconnected")
    assert sandbox.webhooks.wait_until_delivered()
    [(_, body)] = events(captured)
    assert (body["event_type"], body["connection_id"], body["data"]["status"]) == (
        "account.updated",
        connection.connection_id,
        "disconnected",
    )


def test_advancing_the_clock_sends_an_event_per_status_change_and_per_completed_sync(
    sandbox: FinchSandbox, receiver: tuple[str, Captured]
) -> None:
    url, captured = receiver
    sandbox.webhooks.configure(url)
    before = {c.connection_id: (c.disconnected, c.status, c.last_sync) for c in _all(sandbox)}
    result = sandbox.advance(2)
    assert sandbox.webhooks.wait_until_delivered(60)
    after = {c.connection_id: (c.disconnected, c.status, c.last_sync) for c in _all(sandbox)}
    changed = {
        cid
        for cid in after
        if (cid in before and before[cid][:2] != after[cid][:2])
        or (cid not in before and not after[cid][0])
    }
    synced = {
        cid
        for cid, (gone, _, last_sync) in after.items()
        if not gone and last_sync is not None and last_sync != before.get(cid, (0, 0, None))[2]
    }
    received = events(captured)
    sdk = Finch(access_token="unused", webhook_secret=sandbox.webhooks.secret)
    parsed = [sdk.webhooks.unwrap(body, headers) for headers, body in captured.accepted()]
    updated = {e.connection_id for e in parsed if isinstance(e, AccountUpdateEvent)}
    jobs = {e.connection_id for e in parsed if isinstance(e, JobCompletionEvent)}
    assert changed and synced
    assert updated == changed
    assert jobs == synced
    assert len(received) == result["webhooks"] == len(changed) + len(synced)
    assert len({event_id for event_id, _ in received}) == len(received)


def test_faults_duplicate_a_delivery_and_sign_a_first_attempt_wrong(
    sandbox: FinchSandbox, receiver: tuple[str, Captured]
) -> None:
    url, captured = receiver
    with serve_in_thread(sandbox) as base_url:
        faults = {"duplicate_rate": 1.0, "bad_signature_rate": 1.0, "delay_seconds": 0.05}
        configured = httpx.post(
            f"{base_url}/_sandbox/webhooks",
            json={"url": url, "events": ["account.updated"], "faults": faults},
        )
        assert configured.status_code == 200
    connection = next(c for c in _all(sandbox) if c.status == "connected")
    sandbox.set_connection_status(connection.connection_id, "error_permissions")
    assert sandbox.webhooks.wait_until_delivered()
    verified = [ok for _, _, ok in captured.attempts]
    ids = {headers["finch-event-id"] for headers, _, _ in captured.attempts}
    # refused once (wrong signature), retried and accepted, then delivered again
    assert verified == [False, True, True]
    assert len(ids) == 1


def test_only_subscribed_event_types_and_loopback_urls(
    sandbox: FinchSandbox, receiver: tuple[str, Captured]
) -> None:
    url, captured = receiver
    with pytest.raises(ValueError, match="loopback"):
        sandbox.webhooks.configure("https://hooks.example.com/finch")
    with pytest.raises(ValueError, match="unknown event types"):
        sandbox.webhooks.configure(url, events=("directory.created",))
    sandbox.webhooks.configure(url, events=("job.data_sync_all.completed",))
    connection = next(c for c in _all(sandbox) if c.status == "connected")
    sandbox.set_connection_status(connection.connection_id, "reauth")
    assert sandbox.webhooks.wait_until_delivered()
    assert captured.attempts == []


def _all(sandbox: FinchSandbox) -> list[Any]:
    return list(sandbox.data.connections.values())


def test_the_command_line_sends_webhooks_where_it_is_told(
    receiver: tuple[str, Captured],
) -> None:
    url, captured = receiver
    with cli_server("--connections", "20", "--webhook-url", url) as (_, base_url):
        settings = httpx.get(f"{base_url}/_sandbox/webhooks").json()
        secret = httpx.get(f"{base_url}/_sandbox/credentials").json()["webhook_secret"]
        truth = httpx.get(f"{base_url}/_sandbox/truth").json()["rows"]
        live = next(row["connection_id"] for row in truth if row["state"] == "live")
        answer = httpx.post(
            f"{base_url}/_sandbox/connections/{live}/status", json={"status": "disconnected"}
        )
        assert answer.json()["webhooks"] == 1
        deadline = time.monotonic() + 30
        while not captured.attempts and time.monotonic() < deadline:
            time.sleep(0.05)
    assert settings["url"] == url
    [(headers, body)] = captured.accepted()
    event = Finch(access_token="unused", webhook_secret=secret).webhooks.unwrap(body, headers)
    assert (event.connection_id, json.loads(body)["data"]["status"]) == (live, "disconnected")


def test_the_command_line_refuses_a_webhook_url_off_loopback() -> None:
    done = subprocess.run(
        [*CLI, "--port", "0", "--webhook-url", "https://hooks.example.com/finch"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr
