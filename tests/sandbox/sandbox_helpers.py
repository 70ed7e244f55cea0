"""Helpers for the emulator's tests: a synchronous in-process client and token/row lookups."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from finch_sandbox import FinchSandbox, SandboxConfig, sandbox_transport

START = datetime(2026, 3, 2, tzinfo=UTC)
VERSION = {"Finch-API-Version": "2020-09-17"}
BASE_URL = "http://finch.sandbox.test"
CLI = [sys.executable, "-m", "finch_sandbox", "serve"]


@contextmanager
def cli_server(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The emulator CLI on a free loopback port, in a process of its own, as Finch is to a
    real client; yields the process and its base URL, and stops it on exit."""
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(
            [*CLI, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            if "listening on" not in line:
                errors.seek(0)
                raise AssertionError(f"the emulator did not start: {line}{errors.read()}")
            yield process, line.strip().rsplit(" ", 1)[-1]
        finally:
            stop(process)


def stop(process: subprocess.Popen[str], grace_seconds: float = 30.0) -> None:
    """SIGTERM `process` and reap it; SIGKILL it if it is still shutting down after the grace.

    A busy machine may take longer than any grace to shut uvicorn down: that is no failure
    of the test that used the server, so the grace ends in SIGKILL rather than an error.
    """
    process.terminate()
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def make_sandbox(**overrides: Any) -> FinchSandbox:
    settings: dict[str, Any] = {"seed": 7, "connections": 200, "start_time": START}
    settings.update(overrides)
    return FinchSandbox(SandboxConfig(**settings))


class Api:
    """An `httpx.AsyncClient` on `sandbox_transport`, driven synchronously from tests."""

    def __init__(self, sandbox: FinchSandbox, *, timeout: float = 10.0) -> None:
        self.sandbox = sandbox
        self.runner = asyncio.Runner()
        self.client = httpx.AsyncClient(
            transport=sandbox_transport(sandbox),
            base_url=BASE_URL,
            headers=VERSION,
            timeout=timeout,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        basic: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if basic:
            headers["Authorization"] = basic_auth(*self.sandbox.credentials)
        return self.runner.run(self.client.request(method, path, headers=headers, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def close(self) -> None:
        self.runner.run(self.client.aclose())
        self.runner.close()


@contextmanager
def api_for(sandbox: FinchSandbox, **kwargs: Any) -> Iterator[Api]:
    api = Api(sandbox, **kwargs)
    try:
        yield api
    finally:
        api.close()


def basic_auth(client_id: str, client_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def current_tokens(sandbox: FinchSandbox) -> dict[str, str]:
    """connection_id -> its newest valid access token (issue order is list order)."""
    newest: dict[str, str] = {}
    for token in sandbox.tokens():
        if not token["revoked"]:
            newest[token["connection_id"]] = token["access_token"]
    return newest


def rows_by_key(sandbox: FinchSandbox) -> dict[str, dict[str, Any]]:
    return {row["connection_key"]: row for row in sandbox.truth()}


def assert_finch_error(
    response: httpx.Response, status: int, name: str, finch_code: str | None = None
) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, response.text
    assert body["code"] == status
    assert body["name"] == name
    assert body["finch_code"] == finch_code
    assert isinstance(body["message"], str) and body["message"]
    return body
