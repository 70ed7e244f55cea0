"""Running a sync in a child process and killing it, and comparing warehouse tables."""

import contextlib
import multiprocessing
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import crash_worker
from sync.sync_helpers import table_contents
from table_checksums import table_checksums

from connections_pipeline.warehouse import Warehouse

# Each sync runs in a process of its own, forked from a server that imported the pipeline
# once: a fresh interpreter per kill spent seconds on imports alone, dozens of times.
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload([__name__])
FINISH_SECONDS = 300.0


@dataclass(frozen=True)
class WholeRun:
    statements: int
    load_from: int


def _sync(answer: Connection, arguments: tuple[str, str, str, str], kill_at: int | None) -> None:
    try:
        answer.send(crash_worker.main(*arguments, kill_at=kill_at))
    except BaseException:
        answer.send(traceback.format_exc())
        raise


def start_sync(
    base_url: str, url: str, schema: str, run_id: str, kill_at: int | None = None
) -> tuple[BaseProcess, Connection]:
    """A sync in a child process (see crash_worker.py), and where its last words arrive."""
    answer, send = FORKS.Pipe(duplex=False)
    child = FORKS.Process(target=_sync, args=(send, (base_url, url, schema, run_id), kill_at))
    child.start()
    send.close()
    return child, answer


def _finish(child: BaseProcess) -> int:
    child.join(FINISH_SECONDS)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise AssertionError(f"the sync did not end within {FINISH_SECONDS:.0f} s")
    return child.exitcode


def run_whole(base_url: str, url: str, schema: str, run_id: str) -> WholeRun:
    """Run one sync to the end in a child process; how many SQL statements it sent."""
    child, answer = start_sync(base_url, url, schema, run_id)
    said = ""
    if answer.poll(FINISH_SECONDS):
        with contextlib.suppress(EOFError):  # it died without a word
            said = answer.recv()
    code = _finish(child)
    assert code == 0 and said.startswith("statements "), said[-3000:]
    words = said.split()
    return WholeRun(statements=int(words[1]), load_from=int(words[3]))


def kill_at_statement(base_url: str, url: str, schema: str, run_id: str, statement: int) -> int:
    """Run a sync that SIGKILLs itself before its `statement`th SQL statement; its exit code."""
    child, _ = start_sync(base_url, url, schema, run_id, kill_at=statement)
    return _finish(child)


def kill_after_requests(
    base_url: str, url: str, schema: str, run_id: str, requests_seen: Callable[[], int], after: int
) -> int:
    """Start a sync and SIGKILL it from outside once Finch has answered `after` more requests."""
    start = requests_seen()
    child, _ = start_sync(base_url, url, schema, run_id)
    try:
        while child.is_alive() and requests_seen() - start < after:
            time.sleep(0.002)
        child.kill()
    finally:
        child.join(60)
    return child.exitcode


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
