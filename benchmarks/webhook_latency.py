"""Event-to-warehouse latency of Finch webhooks, on the emulator over real HTTP.

The emulator runs in its own process and posts signed webhooks to the receiver (served in
this process, on loopback). A sensor loop evaluates the real `finch_webhook_events` sensor
every `--sensor-interval` seconds, as the Dagster daemon would, and executes the targeted
sync it asks for (in process, on an ephemeral Dagster instance). Each
round moves `--events` connections to reauth (half of them, rounded down, are disconnected
instead) through the emulator's admin route, then waits until `finch_connections` shows
every change. Each round starts at a random moment of the sensor's interval (seeded), as
events do: on average an event waits half an interval for a tick.

Printed per round: receiver (status set → event stored in the inbox), wait for the tick
(stored → run started), targeted run (started → loaded) and the whole event → warehouse
latency, with the sensor interval it assumed. The interval dominates: an event waits up to
one interval for a tick, half of one on average; the daemon's default is 30 s
(`CONNECTIONS_WEBHOOK_SENSOR_SECONDS`).

    python benchmarks/webhook_latency.py                       # 30 s interval, 3 rounds of 5
    python benchmarks/webhook_latency.py --sensor-interval 5 --rounds 5
    python benchmarks/webhook_latency.py --connections 20 --events 2 --rounds 1 --sensor-interval 1
"""

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
from _sandbox_process import sandbox_process

from connections_pipeline.assets.sync import SYNC_GROUP, sync_finch_connections
from connections_pipeline.definitions import SYNC_JOB_NAME
from connections_pipeline.resources import (
    FinchResource,
    NotifierResource,
    SyncGuardResource,
    TokenSourceResource,
    WarehouseResource,
)
from connections_pipeline.run_log import console
from connections_pipeline.webhook_sensor import WEBHOOK_SENSOR_NAME, webhook_sensor
from connections_pipeline.webhooks import WEBHOOK_PATH
from connections_pipeline.webhooks.server import receiver_app, serve_in_thread

TIME_SCALE = 0.01


@dataclass
class Round:
    events: int
    receiver: float
    tick_wait: float
    run: float
    total: float


class SensorLoop:
    """Ticks the sensor every `interval` seconds and runs what it asks for, like the daemon
    (minus the daemon's own overhead); records when each run started and ended."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, interval: float):
        self.defs, self.instance, self.interval = defs, instance, interval
        self.cursor: str | None = None
        self.runs: list[tuple[float, float]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        sensor = next(s for s in self.defs.sensors or [] if s.name == WEBHOOK_SENSOR_NAME)
        job = self.defs.resolve_job_def(SYNC_JOB_NAME)
        try:
            while not self.stop.wait(self.interval):
                context = dg.build_sensor_context(
                    instance=self.instance,
                    cursor=self.cursor,
                    sensor_name=WEBHOOK_SENSOR_NAME,
                    resources={"warehouse": self.defs.resources["warehouse"]},
                )
                result = sensor(context)
                if isinstance(result, dg.SensorResult):
                    self.cursor = result.cursor
                for request in getattr(result, "run_requests", None) or []:
                    started = time.time()
                    job.execute_in_process(
                        instance=self.instance,
                        run_config=console(request.run_config, verbose=False),
                        tags=request.tags,
                    )
                    self.runs.append((started, time.time()))
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def _definitions(base_url: str, warehouse_url: str) -> dg.Definitions:
    job = dg.define_asset_job(
        SYNC_JOB_NAME,
        selection=dg.AssetSelection.groups(SYNC_GROUP),
        executor_def=dg.in_process_executor,
    )
    return dg.Definitions(
        assets=[sync_finch_connections],
        jobs=[job],
        sensors=[webhook_sensor(SYNC_JOB_NAME)],
        resources={
            "finch": FinchResource(base_url=base_url, time_scale=TIME_SCALE),
            "token_source": TokenSourceResource(kind="sandbox"),
            "warehouse": WarehouseResource(url=warehouse_url),
            "sync_guard": SyncGuardResource(),
            "notifier": NotifierResource(),
        },
    )


def _candidates(admin: httpx.Client) -> list[str]:
    """Connected connections with one token: each costs exactly one /introspect."""
    tokens = admin.get("/_sandbox/tokens").json()["tokens"]
    per_connection = Counter(token["connection_id"] for token in tokens)
    truth = admin.get("/_sandbox/truth").json()["rows"]
    return [
        row["connection_id"]
        for row in truth
        if row["state"] == "live"
        and row["connection_status"] == "connected"
        and per_connection[row["connection_id"]] == 1
    ]


def _wait_for(condition, timeout: float, loop: SensorLoop) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if loop.error is not None:
            raise RuntimeError("the sensor loop failed") from loop.error
        if time.monotonic() > deadline:
            raise TimeoutError("the changes did not reach the warehouse in time")
        time.sleep(0.05)


def _round(admin: httpx.Client, loop: SensorLoop, store, chosen: list[str]) -> Round:
    wanted = {
        connection_id: "disconnected" if index < len(chosen) // 2 else "reauth"
        for index, connection_id in enumerate(chosen)
    }
    runs_before = len(loop.runs)
    started = time.time()
    for connection_id, status in wanted.items():
        answer = admin.post(
            f"/_sandbox/connections/{connection_id}/status", json={"status": status}
        )
        answer.raise_for_status()

    def loaded() -> bool:
        current = store.read_current().filter(pl.col("connection_id").is_in(list(wanted)))
        shown = dict(zip(current["connection_id"], current["connection_status"], strict=True))
        return shown == wanted

    _wait_for(loaded, 600 + 3 * loop.interval, loop)
    done = time.time()
    _wait_for(lambda: len(loop.runs) > runs_before, 60, loop)
    inbox = store.read_table("finch_webhook_events").filter(
        pl.col("connection_id").is_in(list(wanted))
        & (pl.col("received_at") >= datetime.fromtimestamp(started, UTC))
    )
    stored = inbox["received_at"].max().timestamp()
    run_started, run_ended = loop.runs[runs_before]
    return Round(
        events=inbox.height,
        receiver=stored - started,
        tick_wait=run_started - stored,
        run=run_ended - run_started,
        total=done - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--events", type=int, default=5, help="status changes per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sensor-interval", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    options = ("--seed", str(args.seed), "--connections", str(args.connections),
               "--time-scale", str(TIME_SCALE))  # fmt: skip
    with (
        sandbox_process(*options) as base_url,
        tempfile.TemporaryDirectory(prefix="webhook-bench-") as folder,
        httpx.Client(base_url=base_url, timeout=30) as admin,
    ):
        instance = dg.DagsterInstance.ephemeral()
        warehouse_url = f"duckdb:///{Path(folder) / 'warehouse.duckdb'}"
        defs = _definitions(base_url, warehouse_url)
        first = defs.resolve_job_def(SYNC_JOB_NAME).execute_in_process(
            instance=instance, run_config=console({}, verbose=False)
        )
        if not first.success:
            raise SystemExit("the initial full sync failed")
        store = defs.resources["warehouse"].open(hold_connections=False)
        secret = admin.get("/_sandbox/credentials").json()["webhook_secret"]
        candidates = _candidates(admin)
        needed = args.events * args.rounds
        if len(candidates) < needed:
            raise SystemExit(f"only {len(candidates)} single-token connected connections")
        loop = SensorLoop(defs, instance, args.sensor_interval)
        with serve_in_thread(receiver_app(store, secret)) as receiver_url:
            admin.post(
                "/_sandbox/webhooks",
                json={"url": receiver_url + WEBHOOK_PATH, "events": ["account.updated"]},
            ).raise_for_status()
            print(
                f"emulator {' '.join(options)}; DuckDB warehouse; sensor interval "
                f"{args.sensor_interval:g} s assumed (the daemon's default is 30 s)"
            )
            loop.thread.start()
            rounds = []
            phase = random.Random(args.seed)
            try:
                for number in range(args.rounds):
                    time.sleep(phase.uniform(0, args.sensor_interval))
                    chosen = candidates[number * args.events : (number + 1) * args.events]
                    result = _round(admin, loop, store, chosen)
                    rounds.append(result)
                    print(
                        f"round {number + 1}: {result.events} events; receiver "
                        f"{result.receiver * 1000:.0f} ms, wait for tick {result.tick_wait:.1f} s, "
                        f"targeted run {result.run:.1f} s; event -> warehouse {result.total:.1f} s"
                    )
            finally:
                loop.stop.set()
                loop.thread.join(600)
                store.dispose()
    totals = [r.total for r in rounds]
    runs = [r.run for r in rounds]
    print(
        f"event -> warehouse: median {statistics.median(totals):.1f} s, max {max(totals):.1f} s "
        f"with a {args.sensor_interval:g} s sensor interval (targeted run median "
        f"{statistics.median(runs):.1f} s; expect about interval/2 + run on average, "
        f"interval + run at worst)"
    )


if __name__ == "__main__":
    main()
