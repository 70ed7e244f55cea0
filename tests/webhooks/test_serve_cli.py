"""`connections-pipeline webhooks serve` as its own process, as production runs it."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import pytest
from webhook_helpers import SECRET, account_updated, delivery

from connections_pipeline.warehouse import Warehouse
from connections_pipeline.webhooks import WEBHOOK_PATH

pytestmark = pytest.mark.slow
COMMAND = [sys.executable, "-m", "connections_pipeline.cli", "webhooks", "serve"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def receiver(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [*COMMAND, "--host", "127.0.0.1", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(f"{url}/healthz", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield url + WEBHOOK_PATH
    finally:
        process.terminate()
        process.wait(timeout=30)


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CONNECTIONS_", "FINCH_"))
    }
    return {
        **env,
        "CONNECTIONS_WAREHOUSE_URL": f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        **settings,
    }


def test_the_receiver_process_stores_valid_events_and_logs_refusals_without_the_secret(
    tmp_path: Path,
) -> None:
    log = tmp_path / "receiver.log"
    env = environment(tmp_path, FINCH_WEBHOOK_SECRET=SECRET)
    body, headers = delivery(account_updated("conn-1"), event_id="evt-cli-1")
    tampered = body.replace(b"conn-1", b"conn-2")
    with receiver(env, log) as url:
        assert httpx.post(url, content=body, headers=headers).status_code == 200
        assert httpx.post(url, content=tampered, headers=headers).status_code == 401
        # While another process holds the DuckDB file (a sync run), the delivery is not
        # stored and Finch is told to retry; once the file is free, the retry is stored.
        second, second_headers = delivery(account_updated("conn-3"), event_id="evt-cli-2")
        holder = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        try:
            assert httpx.post(url, content=second, headers=second_headers).status_code == 503
        finally:
            holder.close()
        assert httpx.post(url, content=second, headers=second_headers).status_code == 200
    text = log.read_text()
    assert SECRET not in text
    assert headers["finch-signature"][3:] not in text
    assert text.count("Webhook delivery refused (401)") == 1
    assert text.count("not stored, answered 503") == 1
    store = Warehouse(env["CONNECTIONS_WAREHOUSE_URL"])
    assert store.read_table("finch_webhook_events")["event_id"].to_list() == [
        "evt-cli-1",
        "evt-cli-2",
    ]
    store.dispose()


@pytest.mark.parametrize(
    ("secret", "message"),
    [(None, "FINCH_WEBHOOK_SECRET is not set"), ("not base64!", "FINCH_WEBHOOK_SECRET is not")],
)
def test_without_a_usable_secret_the_receiver_refuses_to_start(
    secret: str | None, message: str, tmp_path: Path
) -> None:
    settings = {} if secret is None else {"FINCH_WEBHOOK_SECRET": secret}
    done = subprocess.run(
        [*COMMAND, "--port", str(free_port())],
        env=environment(tmp_path, **settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    if secret:
        assert secret not in done.stderr
