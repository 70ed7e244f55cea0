"""Running a sync in a child process and killing it, and comparing warehouse tables."""

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sync.sync_helpers import table_contents
from table_checksums import table_checksums

from connections_pipeline.warehouse import Warehouse

WORKER = Path(__file__).with_name("crash_worker.py")


@dataclass(frozen=True)
class WholeRun:
    statements: int
    load_from: int


def worker_command(base_url: str, url: str, schema: str, run_id: str, *extra: str) -> list[str]:
    return [sys.executable, str(WORKER), base_url, url, schema, run_id, *extra]


def run_whole(base_url: str, url: str, schema: str, run_id: str) -> WholeRun:
    """Run one sync to the end in a child process; how many SQL statements it sent."""
    done = subprocess.run(
        worker_command(base_url, url, schema, run_id), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    words = done.stdout.split()
    return WholeRun(statements=int(words[1]), load_from=int(words[3]))


def kill_at_statement(base_url: str, url: str, schema: str, run_id: str, statement: int) -> int:
    """Run a sync that SIGKILLs itself before its `statement`th SQL statement; its exit code."""
    done = subprocess.run(
        worker_command(base_url, url, schema, run_id, str(statement)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode


def kill_after_requests(
    base_url: str, url: str, schema: str, run_id: str, requests_seen: Callable[[], int], after: int
) -> int:
    """Start a sync and SIGKILL it from outside once Finch has answered `after` more requests."""
    start = requests_seen()
    child = subprocess.Popen(
        worker_command(base_url, url, schema, run_id),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while child.poll() is None and requests_seen() - start < after:
            time.sleep(0.002)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    return child.returncode


def checksums(url: str, schema: str) -> dict[str, str]:
    """`table_checksums` of the warehouse, run-effort columns left out.

    Opens and closes its own connection: a DuckDB file admits one writing process at a time.
    """
    with Warehouse(url, schema=schema) as warehouse:
        return table_checksums(warehouse)


def exact_tables(url: str, schema: str) -> dict[str, list[tuple]]:
    """Every row of every warehouse table, nothing left out, in a stable order."""
    with Warehouse(url, schema=schema) as warehouse:
        return table_contents(warehouse)


def draw_points(rng: random.Random, count: int, low: int, high: int) -> list[int]:
    """`count` distinct points in [low, high] when there are that many, spread at random."""
    population = range(low, high + 1)
    return sorted(rng.sample(population, min(count, len(population))))
