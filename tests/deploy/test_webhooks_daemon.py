"""Webhooks in the production shape: the emulator posts to `connections-pipeline webhooks
serve`, the daemon's sensor launches the targeted sync through the run queue, in the Finch
pool, and the exports follow it like any sync."""

import collections
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from deploy_helpers import (
    SCHEMA,
    deployment,
    export_runs,
    exported_syncs,
    finished,
    sync_runs,
)

from connections_pipeline.warehouse import Warehouse
from connections_pipeline.webhook_sensor import TRIGGER_TAG, WEBHOOK_TRIGGER
from connections_pipeline.webhooks import WEBHOOK_PATH

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_daemon_turns_a_webhook_into_a_targeted_sync_followed_by_the_exports(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    sandbox = ("--seed", "7", "--connections", "40")
    with deployment(postgres_admin_url, tmp_path, sandbox=sandbox) as deployed:
        secret = deployed.finch("/_sandbox/credentials")["webhook_secret"]
        deployed.env.update(
            {"FINCH_WEBHOOK_SECRET": secret, "CONNECTIONS_WEBHOOK_SENSOR_SECONDS": "5"}
        )
        instance = deployed.instance()
        deployed.start_daemon()
        deployed.launch_sync()
        [full] = deployed.wait_for(
            "the full sync",
            lambda: [r for r in sync_runs(instance) if finished(r)] or None,
        )
        assert full.dagster_run.status.value == "SUCCESS", deployed.tail()

        port = free_port()
        receiver = subprocess.Popen(
            [sys.executable, "-m", "connections_pipeline.cli", "webhooks", "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            env=deployed.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deployed.groups.append(receiver.pid)
        receiver_url = f"http://127.0.0.1:{port}"
        deployed.wait_for(
            "the receiver",
            lambda: _answers(f"{receiver_url}/healthz"),
            timeout=60,
            every=0.2,
        )
        tokens = collections.Counter(
            t["connection_id"] for t in deployed.finch("/_sandbox/tokens")["tokens"]
        )
        truth = deployed.finch("/_sandbox/truth")["rows"]
        changed = next(
            row["connection_id"]
            for row in truth
            if row["state"] == "live"
            and row["connection_status"] == "connected"
            and tokens[row["connection_id"]] == 1
        )
        admin = httpx.Client(base_url=deployed.finch_url, timeout=30)
        admin.post("/_sandbox/webhooks", json={"url": receiver_url + WEBHOOK_PATH})
        admin.post("/_sandbox/stats/reset")
        sent = time.time()
        admin.post(f"/_sandbox/connections/{changed}/status", json={"status": "reauth"})

        targeted = deployed.wait_for(
            "the targeted sync",
            lambda: (
                [
                    r
                    for r in sync_runs(instance)
                    if r.dagster_run.tags.get(TRIGGER_TAG) == WEBHOOK_TRIGGER and finished(r)
                ]
                or None
            ),
        )[0]
        assert targeted.dagster_run.status.value == "SUCCESS", deployed.tail()
        assert targeted.dagster_run.tags.get("dagster/sensor_name") == "finch_webhook_events"
        stats = admin.get("/_sandbox/stats").json()
        # The export of the targeted sync's snapshot (it may start before that run has ended).
        targeted_id = targeted.dagster_run.run_id
        follower = deployed.wait_for(
            "an export run after the targeted sync",
            lambda: (
                [
                    r
                    for r in export_runs(instance)
                    if finished(r) and targeted_id in exported_syncs(instance, r.dagster_run.run_id)
                ]
                or None
            ),
        )[0]
        assert follower.dagster_run.status.value == "SUCCESS", deployed.tail()
        admin.close()

        with Warehouse(deployed.warehouse_url, schema=SCHEMA) as warehouse:
            row = (
                warehouse.read_current()
                .filter(warehouse.read_current()["connection_id"] == changed)
                .row(0, named=True)
            )
            [event] = warehouse.read_table("finch_webhook_events").iter_rows(named=True)
        assert (row["connection_status"], row["run_id"]) == ("reauth", targeted.dagster_run.run_id)
        assert (event["outcome"], event["processed_by_run"]) == (
            "synced",
            targeted.dagster_run.run_id,
        )
        assert event["received_at"].timestamp() >= sent - 1
        assert sum(stats["by_endpoint"]["introspect"].values()) == 1
        assert len(sync_runs(instance)) == 2


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).is_success
    except httpx.HTTPError:
        return False
