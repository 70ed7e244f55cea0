"""Peak memory of one sync against a large fleet, measured the way it runs.

The emulator runs in its own process with Finch's limits off (`--no-rate-limits`), so the
run measures the pipeline, not the waiting. The sync runs in a process of its own too
(`sync_with_resources`, as the Dagster asset and `connections-pipeline run` call it), and
its peak resident set size is read from the kernel when it exits (`wait4`'s `ru_maxrss`):
no sampling, nothing missed between samples. One first sync, into a fresh warehouse.

Printed: the fleet (tokens, connections), the warehouse, the requests, the sync's peak RSS,
its time, and the rows it loaded into `finch_connections`.

    python benchmarks/fleet_memory.py --tokens 300000
    python benchmarks/fleet_memory.py --tokens 300000 --warehouse postgres
    python benchmarks/fleet_memory.py --tokens 1000000 --budget 250000
    python benchmarks/fleet_memory.py --tokens 20000 --profile 15

`--profile N` also prints the N source lines holding the most memory (tracemalloc) when the
last `/introspect` answer has arrived: the point where a run holds every token's answer.
Targets (issue "a million tokens on one machine"): <= 2.5 GiB for 300,000 tokens polled in
one run, <= 3 GiB for a 1,000,000-token fleet under a request budget of 250,000.
"""

import argparse
import inspect
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from _sandbox_process import sandbox_process
from _scratch_database import scratch_database

GIB = 1024**3
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# The emulator's fleet has about this many tokens per connection (re-issued tokens, several
# tokens of one employer); the count printed is the emulator's own.
TOKENS_PER_CONNECTION = 1.3
SCHEMA = "finch"
# The client paces itself to Finch's limits; shrunk this far, its pacing costs nothing and the
# emulator (limits off) answers as fast as it can.
CLIENT_TIME_SCALE = 1e-3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(dest="command")
    child = subcommands.add_parser("sync", help="(internal) the measured sync process")
    child.add_argument("--finch", required=True)
    child.add_argument("--warehouse-url", required=True)
    child.add_argument("--budget", type=int)
    child.add_argument("--profile", type=int, default=0)
    child.add_argument("--tokens-url")
    parser.add_argument("--tokens", type=int, default=300_000)
    parser.add_argument("--budget", type=int, help="request budget of the run (default: none)")
    parser.add_argument("--warehouse", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--postgres-url", default=LOCAL_POSTGRES)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument(
        "--source",
        choices=("sql", "sandbox"),
        default="sql",
        help="sql: the tokens in a database table, read by CONNECTIONS_TOKENS_QUERY as a "
        "customer's would be (default); sandbox: the emulator's own token listing",
    )
    args = parser.parse_args()
    if args.command == "sync":
        _measured_sync(args)
    else:
        _benchmark(args)


def _benchmark(args: argparse.Namespace) -> None:
    connections = max(round(args.tokens / TOKENS_PER_CONNECTION), 1)
    options = ("--seed", str(args.seed), "--connections", str(connections), "--no-rate-limits")
    with (
        sandbox_process(*options) as base_url,
        tempfile.TemporaryDirectory(prefix="fleet-memory-") as folder,
        _warehouse(args, Path(folder)) as warehouse_url,
    ):
        fleet = httpx.get(f"{base_url}/_sandbox/tokens", timeout=600).json()["tokens"]
        print(
            f"fleet: {len(fleet):,} tokens of {connections:,} connections; warehouse "
            f"{args.warehouse}; token source {args.source}; request budget "
            f"{args.budget or 'none'}",
            flush=True,
        )
        command = [
            sys.executable, __file__, "sync",
            "--finch", base_url, "--warehouse-url", warehouse_url,
            "--profile", str(args.profile),
        ]  # fmt: skip
        if args.source == "sql":
            command += ["--tokens-url", _token_table(fleet, Path(folder) / "tokens.sqlite")]
        del fleet
        if args.budget:
            command += ["--budget", str(args.budget)]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        output = process.stdout.read() if process.stdout else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the sync failed:\n{output[-3000:]}")
        *profile, last = output.strip().splitlines()
        said = json.loads(last)
    for line in profile:
        print(line)
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    print(
        f"sync: {said['tokens']:,} tokens polled ({said['deferred']:,} deferred), "
        f"{said['requests']:,} requests, {said['rows']:,} rows loaded, status {said['status']}"
    )
    print(f"peak RSS {peak / GIB:.2f} GiB; time {elapsed:.1f} s")


TOKEN_COLUMNS = (
    "access_token", "connection_id", "revoked", "issued_at",
    "customer_id", "customer_name", "provider_id", "company_id",
)  # fmt: skip
TOKENS_QUERY = f"SELECT {', '.join(TOKEN_COLUMNS)} FROM finch_tokens ORDER BY rowid"


def _token_table(fleet: list[dict[str, object]], path: Path) -> str:
    """The fleet as an application keeps it: one row per token `/auth/token` returned."""
    with sqlite3.connect(path) as database:
        database.execute(f"CREATE TABLE finch_tokens ({', '.join(TOKEN_COLUMNS)})")
        database.executemany(
            f"INSERT INTO finch_tokens VALUES ({', '.join('?' * len(TOKEN_COLUMNS))})",
            ([token.get(name) for name in TOKEN_COLUMNS] for token in fleet),
        )
    return f"sqlite:///{path}"


@contextmanager
def _warehouse(args: argparse.Namespace, folder: Path) -> Iterator[str]:
    """A fresh warehouse: a DuckDB file, or a database of its own on the PostgreSQL server."""
    if args.warehouse == "duckdb":
        yield f"duckdb:///{folder / 'warehouse.duckdb'}"
        return
    with scratch_database(args.postgres_url, "fleet_memory") as url:
        yield url


def _measured_sync(args: argparse.Namespace) -> None:
    """The sync, in this process; its figures as one JSON line, last."""
    from connections_pipeline.assets.sync import sync_with_resources
    from connections_pipeline.resources import FinchResource, TokenSourceResource
    from connections_pipeline.sync.run import SyncSettings
    from connections_pipeline.transform.finch_clock import ClockRule
    from connections_pipeline.transform.polling import RunBudget
    from connections_pipeline.warehouse import Warehouse

    if args.profile:
        tracemalloc.start(8)
    _report_phases()
    # The emulator keeps a simulated clock whatever source lists its tokens.
    clock = ClockRule(simulated_clock="the served emulator's simulated clock")
    settings = SyncSettings(budget=RunBudget(max_requests=args.budget), clock=clock)
    finch = FinchResource(base_url=args.finch, time_scale=CLIENT_TIME_SCALE)
    source = (
        TokenSourceResource(kind="sql", tokens_url=args.tokens_url, tokens_query=TOKENS_QUERY)
        if args.tokens_url
        else TokenSourceResource(kind="sandbox")
    )
    with Warehouse(args.warehouse_url, schema=SCHEMA) as warehouse:
        result = sync_with_resources(
            "fleet-memory",
            finch,
            source,
            warehouse,
            settings,
            progress=_profile_at_the_last_answer(args.profile),
        )
    run = result.sync_run
    figures = {
        # finch_sync_runs.tokens counts the tokens introspected this run.
        "tokens": run["tokens"],
        "deferred": run["tokens_deferred"],
        "requests": run["requests"],
        "rows": result.connections.height,
        "status": run["status"],
    }
    print(json.dumps(figures), flush=True)


STARTED = time.perf_counter()
# The sync's phases, as `sync.run` calls them: the memory after each says where the peak is.
PHASES = ("extract", "build_snapshot", "split_valid", "trust_figures")


def _report_phases() -> None:
    """Print the resident set (now, and the peak so far) after each phase of the sync."""
    import connections_pipeline.sync.run as run
    from connections_pipeline.warehouse import Warehouse

    def after(name: str, function: Callable) -> Callable:
        def phase(*args: object, **kwargs: object) -> object:
            value = function(*args, **kwargs)
            print(f"  after {name:<16} {_memory()}", flush=True)
            return value

        async def async_phase(*args: object, **kwargs: object) -> object:
            value = await function(*args, **kwargs)
            print(f"  after {name:<16} {_memory()}", flush=True)
            return value

        return async_phase if inspect.iscoroutinefunction(function) else phase

    for name in PHASES:
        setattr(run, name, after(name, getattr(run, name)))
    Warehouse.load_run = after("load_run", Warehouse.load_run)
    Warehouse.read_current = after("read_current", Warehouse.read_current)


def _memory() -> str:
    """Seconds since the sync process started, and its resident set now and its peak so far
    (/proc/self/status)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    now, peak = (int(fields[key].split()[0]) * 1024 / GIB for key in ("VmRSS", "VmHWM"))
    return f"{time.perf_counter() - STARTED:7.1f} s  RSS {now:.2f} GiB, peak {peak:.2f} GiB"


def _profile_at_the_last_answer(top: int) -> Callable[[str, int, int], None]:
    def report(endpoint: str, done: int, total: int) -> None:
        if not top or endpoint != "introspect" or done != total:
            return
        snapshot = tracemalloc.take_snapshot()
        current, _ = tracemalloc.get_traced_memory()
        print(f"tracemalloc at the last /introspect answer: {current / GIB:.2f} GiB traced")
        for stat in snapshot.statistics("lineno")[:top]:
            frame = stat.traceback[0]
            print(f"  {stat.size / 2**20:8.1f} MiB {stat.count:>9,} blocks  {frame}")

    return report


if __name__ == "__main__":
    main()
