"""Sync time against Finch's physical bound, and coverage under a request budget.

bound:    the emulator in its own process with Finch's limits on (time-scaled); daily syncs
          for `--days` virtual days into one DuckDB file: the first sync, steady days, and
          the days when company names fetched earlier expire (`company_ttl` 7 days). Each
          run's time is divided by its physical bound, the larger of
            IP bound       its requests x 0.3 s (1,000 per IP per 5 minutes)
            company bound  (company calls - 20) x 3 s (20 a minute; the first 20 are free)
          both times the time scale. The time compared is the run's time with Finch (from
          its first request sent to its last answer, pacing included); the run's own work
          (reading the source, transform, validation, load) is printed apart, in seconds
          of this machine: it does not shrink with the time scale, so at 0.02 a second of
          it would weigh like fifty against the bound. Runs are a day apart in production;
          here the next run starts once the IP window of the last has passed. Printed per
          run: requests by endpoint, the ratio, the company bound's share (company /
          (company + IP)), 429s and IP blocks (from the emulator's own statistics), and
          company names still pending.
coverage: a fleet synced with a request budget of a third of its tokens (the embedded
          emulator, its limits shrunk until they cost nothing): per run, tokens polled,
          tokens never observed yet, and the oldest observation's age; runs until every
          token has been observed.
plan:     the same polling plan alone on a synthetic fleet of `--tokens` (300,000 by
          default), runs until every token has been observed: the planner at full size.

    python benchmarks/scale_sync.py bound --connections 30000 --days 9
    python benchmarks/scale_sync.py coverage --connections 30000
    python benchmarks/scale_sync.py plan --tokens 300000
"""

import argparse
import datetime as dt
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _sandbox_process import sandbox_process

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.finch.config import FINCH_IP_WINDOW_SECONDS
from connections_pipeline.resources import FinchResource, TokenSourceResource
from connections_pipeline.sync.run import SyncResult, SyncSettings
from connections_pipeline.transform.polling import (
    COMPANY_BURST,
    COMPANY_SECONDS_PER_CALL,
    IP_SECONDS_PER_REQUEST,
    RunBudget,
)
from connections_pipeline.warehouse import Warehouse

TARGET_STEADY_RATIO = 1.10


def _server(base_url: str, path: str, **body: Any) -> dict:
    if body:
        return httpx.post(f"{base_url}{path}", json=body, timeout=120).json()
    return httpx.get(f"{base_url}{path}", timeout=120).json()


def _delta(before: dict, after: dict) -> dict[str, int]:
    totals = {}
    for endpoint, counts in after["by_endpoint"].items():
        delta = sum(counts.values()) - sum(before["by_endpoint"].get(endpoint, {}).values())
        if delta:
            totals[endpoint] = delta
    return totals


def _bound(requests: int, company_calls: int, time_scale: float) -> tuple[float, float]:
    ip = requests * IP_SECONDS_PER_REQUEST * time_scale
    company = max(company_calls - COMPANY_BURST, 0) * COMPANY_SECONDS_PER_CALL * time_scale
    return ip, company


def bound(args: argparse.Namespace) -> None:
    options = (
        "--seed", str(args.seed),
        "--connections", str(args.connections),
        "--time-scale", str(args.time_scale),
    )  # fmt: skip
    settings = SyncSettings(budget=RunBudget(company_share=args.company_share))
    with (
        sandbox_process(*options) as base_url,
        tempfile.TemporaryDirectory(prefix="scale-bench-") as folder,
    ):
        finch = FinchResource(base_url=base_url, time_scale=args.time_scale)
        source = TokenSourceResource(kind="sandbox")
        warehouse = Warehouse(f"duckdb:///{Path(folder) / 'warehouse.duckdb'}")
        print(f"emulator: {' '.join(options)}; company share {args.company_share}")
        print(
            f"{'day':>3} {'tokens':>7} {'requests':>8} {'company':>7} {'finch s':>8} "
            f"{'bound':>7} {'ratio':>6} {'co.share':>8} {'429':>4} {'blocks':>6} "
            f"{'pending':>7} {'local':>6}"
        )
        steady_ratios, shares, rate_limited = [], [], 0
        try:
            for day in range(args.days):
                if day:
                    # Runs are a day apart in production: wait out the IP window, so this
                    # run's fresh pacer does not meet the last run's requests still in it.
                    time.sleep(FINCH_IP_WINDOW_SECONDS * args.time_scale)
                    _server(base_url, "/_sandbox/advance", days=1)
                before = _server(base_url, "/_sandbox/stats")
                started = time.perf_counter()
                result = sync_with_resources(f"day-{day}", finch, source, warehouse, settings)
                elapsed = time.perf_counter() - started
                after = _server(base_url, "/_sandbox/stats")
                ratio, share = _report(day, result, elapsed, before, after, args.time_scale)
                rate_limited += result.request_stats["rate_limited"]
                if day:
                    steady_ratios.append(ratio)
                    shares.append(share)
        finally:
            warehouse.dispose()
    worst = max(steady_ratios, default=0.0)
    verdict = "OK" if worst <= TARGET_STEADY_RATIO and rate_limited == 0 else "MISSED"
    print(
        f"runs after the first: worst time/bound {worst:.3f} (target <= "
        f"{TARGET_STEADY_RATIO}), largest company share {max(shares, default=0.0):.2f} "
        f"(configured {args.company_share}), 429s {rate_limited}: {verdict}"
    )


def _report(
    day: int, result: SyncResult, elapsed: float, before: dict, after: dict, time_scale: float
) -> tuple[float, float]:
    by_endpoint = _delta(before, after)
    requests = after["requests"] - before["requests"]
    company = by_endpoint.get("company", 0)
    ip, company_bound = _bound(requests, company, time_scale)
    physical = max(ip, company_bound)
    with_finch = result.request_stats["finch_seconds"]
    ratio = with_finch / physical if physical else math.inf
    # The share the company limit would take of a run that waited for it after the rest.
    share = company_bound / (company_bound + ip) if company_bound else 0.0
    blocks = after["ip_blocks"] - before["ip_blocks"]
    print(
        f"{day:>3} {result.sync_run['tokens']:>7,} {requests:>8,} {company:>7,} "
        f"{with_finch:>8.2f} {physical:>7.2f} {ratio:>6.3f} {share:>8.2f} "
        f"{result.request_stats['rate_limited']:>4} {blocks:>6} "
        f"{result.sync_run['company_names_pending']:>7,} {elapsed - with_finch:>6.1f}"
    )
    return ratio, share


def coverage(args: argparse.Namespace) -> None:
    # The embedded emulator at a tiny time scale: Finch's limits shrink until they cost
    # nothing, so the runs measure the pipeline and the budget, not the waiting.
    finch = FinchResource(
        sandbox_seed=args.seed, sandbox_connections=args.connections, sandbox_time_scale=1e-3
    )
    sandbox = finch.sandbox()
    fleet = sandbox.tokens()
    tokens = len(fleet)
    connections = len({token["connection_id"] for token in fleet})
    # A third of the fleet's size; the first observation of a connection also costs its
    # job listing, so covering everything takes (tokens + connections) / budget runs at most.
    budget = math.ceil(tokens / 3)
    expected = math.ceil((tokens + connections + 1) / budget)
    print(
        f"fleet: {tokens:,} tokens of {connections:,} connections; budget {budget:,} "
        f"requests a run (a third of the tokens); expected runs to cover it: {expected}"
    )
    source = TokenSourceResource(kind="sandbox")
    settings = SyncSettings(budget=RunBudget(max_requests=budget))
    print(f"{'run':>3} {'polled':>8} {'deferred':>8} {'never seen':>10} {'oldest h':>8} {'s':>7}")
    runs, run = 0, {"tokens_never_observed": tokens}
    with tempfile.TemporaryDirectory(prefix="coverage-bench-") as folder:
        warehouse = Warehouse(f"duckdb:///{Path(folder) / 'warehouse.duckdb'}")
        try:
            for runs in range(1, args.max_runs + 1):
                if runs > 1:
                    sandbox.advance(1)
                started = time.perf_counter()
                result = sync_with_resources(f"run-{runs}", finch, source, warehouse, settings)
                run = result.sync_run
                print(
                    f"{runs:>3} {run['tokens']:>8,} {run['tokens_deferred']:>8,} "
                    f"{run['tokens_never_observed']:>10,} "
                    f"{run['oldest_observation_age_hours']:>8.1f} "
                    f"{time.perf_counter() - started:>7.1f}"
                )
                if run["tokens_never_observed"] == 0:
                    break
        finally:
            warehouse.dispose()
    covered = run["tokens_never_observed"] == 0
    # The emulator's fleet grows between runs (completed sessions, re-auth tokens), and the
    # budget also pays for company names: the expected count is for the first day's fleet.
    print(
        f"every token observed after {runs} runs (expected {expected} for the first day's "
        f"fleet without company names): {'covered' if covered else 'NOT covered'}"
    )


def plan_only(args: argparse.Namespace) -> None:
    """The polling plan alone on a synthetic fleet: no Finch, no warehouse.

    The plan is the same code a sync runs (`polling_order`, `plan_polling`); each simulated
    run marks its polled tokens observed, as the sync's `finch_tokens` would.
    """
    import polars as pl

    from connections_pipeline.transform.polling import plan_polling, polling_order
    from connections_pipeline.transform.token_frame import TOKEN_FRAME_SCHEMA

    tokens = args.tokens
    # About 1.3 tokens per connection, as in the emulator's mix.
    connection = [f"c{n * 10 // 13}" for n in range(tokens)]
    source = pl.DataFrame(
        {"token_fingerprint": [f"t{n}" for n in range(tokens)], "source_connection_id": connection}
    ).with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in TOKEN_FRAME_SCHEMA.items()
        if name not in ("token_fingerprint", "source_connection_id")
    )
    connections = len(set(connection))
    budget = math.ceil(tokens / 3)
    expected = math.ceil((tokens + connections + 1) / budget)
    print(
        f"planner only: {tokens:,} tokens of {connections:,} connections; budget {budget:,} "
        f"requests a run; expected runs to cover it: {expected}"
    )
    seen = pl.DataFrame(
        schema={
            "token_fingerprint": pl.String,
            "connection_id": pl.String,
            "last_seen_at": pl.Datetime("us", "UTC"),
        }
    )
    previous = pl.DataFrame(schema={"connection_id": pl.String, "connection_status": pl.String})
    print(f"{'run':>3} {'polled':>8} {'deferred':>8} {'never seen':>10} {'plan s':>7}")
    runs = 0
    for runs in range(1, args.max_runs + 1):
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=runs)
        started = time.perf_counter()
        order = polling_order(source, previous, seen)
        plan = plan_polling(order, budget - 1)
        elapsed = time.perf_counter() - started
        polled = order.filter(pl.col("token_fingerprint").is_in(plan.polled)).select(
            "token_fingerprint",
            pl.col("group").alias("connection_id"),
            pl.lit(now).alias("last_seen_at"),
        )
        seen = pl.concat(
            [seen.join(polled, on="token_fingerprint", how="anti"), polled.cast(seen.schema)]
        )
        never = tokens - seen.height
        polled_count, deferred_count = len(plan.polled), len(plan.deferred)
        print(f"{runs:>3} {polled_count:>8,} {deferred_count:>8,} {never:>10,} {elapsed:>7.2f}")
        if never == 0:
            break
    verdict = "OK" if runs <= expected else "MISSED"
    print(f"every token observed after {runs} runs (expected at most {expected}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    run_bound = modes.add_parser("bound")
    run_bound.add_argument("--connections", type=int, default=3000)
    run_bound.add_argument("--days", type=int, default=9)
    run_bound.add_argument("--time-scale", type=float, default=0.01)
    run_bound.add_argument("--company-share", type=float, default=RunBudget.company_share)
    run_bound.add_argument("--seed", type=int, default=7)
    run_coverage = modes.add_parser("coverage")
    run_coverage.add_argument("--connections", type=int, default=230_000)
    run_coverage.add_argument("--max-runs", type=int, default=10)
    run_coverage.add_argument("--seed", type=int, default=7)
    run_plan = modes.add_parser("plan")
    run_plan.add_argument("--tokens", type=int, default=300_000)
    run_plan.add_argument("--max-runs", type=int, default=8)
    args = parser.parse_args()
    {"bound": bound, "coverage": coverage, "plan": plan_only}[args.mode](args)


if __name__ == "__main__":
    main()
