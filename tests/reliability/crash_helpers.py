"""Running a sync in a child process and killing it, and comparing warehouse tables."""

import contextlib
import multiprocessing
import random
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import crash_worker
import sqlalchemy as sa
from sync.sync_helpers import table_contents
from table_checksums import table_checksums

from connections_pipeline.warehouse import Warehouse

# Each sync runs in a process of its own, forked from a server that imported the pipeline
# once: a fresh interpreter per kill spent seconds on imports alone, dozens of times.
FORKS = multiprocessing.get_context("forkserver")
FORKS.set_forkserver_preload([__name__])
FINISH_SECONDS = 300.0


@dataclass(frozen=True)
class Target:
    """A warehouse the sync writes to: its URL, schema and (Snowflake) connect args JSON."""

    url: str
    schema: str
    connect_args: str | None = None

    def open(self) -> Warehouse:
        return Warehouse(self.url, schema=self.schema, connect_args=self.connect_args)


@dataclass(frozen=True)
class WholeRun:
    statements: int
    load_from: int


def _sync(
    answer: Connection, base_url: str, target: Target, run_id: str, kill_at: int | None
) -> None:
    try:
        said = crash_worker.main(
            base_url,
            target.url,
            target.schema,
            run_id,
            kill_at=kill_at,
            connect_args=target.connect_args,
        )
        answer.send(said)
    except BaseException:
        answer.send(traceback.format_exc())
        raise


def start_sync(
    base_url: str, target: Target, run_id: str, kill_at: int | None = None
) -> tuple[BaseProcess, Connection]:
    """A sync in a child process (see crash_worker.py), and where its last words arrive."""
    answer, send = FORKS.Pipe(duplex=False)
    child = FORKS.Process(target=_sync, args=(send, base_url, target, run_id, kill_at))
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


def run_whole(base_url: str, target: Target, run_id: str) -> WholeRun:
    """Run one sync to the end in a child process; how many SQL statements it sent."""
    child, answer = start_sync(base_url, target, run_id)
    said = ""
    if answer.poll(FINISH_SECONDS):
        with contextlib.suppress(EOFError):  # it died without a word
            said = answer.recv()
    code = _finish(child)
    assert code == 0 and said.startswith("statements "), said[-3000:]
    words = said.split()
    return WholeRun(statements=int(words[1]), load_from=int(words[3]))


@contextlib.contextmanager
def detached_transactions_aborted(target: Target) -> Iterator[None]:
    """On Snowflake, abort what a killed sync left open once it is dead.

    A client that dies leaves its session's transaction detached on the server, holding its
    locks; Snowflake aborts and rolls it back once it has blocked another transaction's lock
    for 5 minutes (docs.snowflake.com/en/sql-reference/transactions#aborting-transactions).
    The emulator never does: the next run's DELETE meets DuckDB's "Conflict on tuple
    deletion", answered as HTTP 500, which the connector retries for minutes. So the sessions
    the child opened are closed here (closing rolls back), as Snowflake would abort them,
    without the wait. The emulator runs in this process (tests/snowflake_emulator.py)."""
    if sa.make_url(target.url).get_backend_name() != "snowflake":
        yield
        return
    from fakesnow import server  # the emulator's sessions, by login token

    before = set(server.sessions)
    try:
        yield
    finally:
        for token in set(server.sessions) - before:
            server.sessions.pop(token).close()


def kill_at_statement(base_url: str, target: Target, run_id: str, statement: int) -> int:
    """Run a sync that SIGKILLs itself before its `statement`th SQL statement; its exit code."""
    with detached_transactions_aborted(target):
        child, _ = start_sync(base_url, target, run_id, kill_at=statement)
        return _finish(child)


def kill_after_requests(
    base_url: str, target: Target, run_id: str, requests_seen: Callable[[], int], after: int
) -> int:
    """Start a sync and SIGKILL it from outside once Finch has answered `after` more requests."""
    start = requests_seen()
    with detached_transactions_aborted(target):
        child, _ = start_sync(base_url, target, run_id)
        try:
            while child.is_alive() and requests_seen() - start < after:
                time.sleep(0.002)
            child.kill()
        finally:
            child.join(60)
    return child.exitcode


def checksums(target: Target) -> dict[str, str]:
    """`table_checksums` of the warehouse, run-effort columns left out.

    Opens and closes its own connection: a DuckDB file admits one writing process at a time.
    """
    with target.open() as warehouse:
        return table_checksums(warehouse)


def exact_tables(target: Target) -> dict[str, list[tuple]]:
    """Every row of every warehouse table, nothing left out, in a stable order."""
    with target.open() as warehouse:
        return table_contents(warehouse)


def draw_points(rng: random.Random, count: int, low: int, high: int) -> list[int]:
    """`count` distinct points in [low, high] when there are that many, spread at random."""
    population = range(low, high + 1)
    return sorted(rng.sample(population, min(count, len(population))))
