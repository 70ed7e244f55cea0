"""Requests per token of a steady-state sync, against the emulator over real HTTP.

The emulator runs in its own process (`--time-scale 0.01 --connections 1000` by default);
`sync_with_resources` runs against one DuckDB file in a temporary folder, with nothing
changed in the emulator in between, until no company name is pending, then once more. The
first runs pay for the follow-ups (`/jobs/automated` once per connection ever,
`/employer/company` for missing names, spread over runs by the company share); the last
should cost about one `/introspect` per token.

For each run it prints the client's request count (`request_stats["requests"]`, retries
included) per token (`sync_run["tokens"]`), and the emulator's own count of Finch-surface
requests from `GET /_sandbox/stats` (difference before/after the run), by endpoint.
Target: the last run <= 1.05 requests per token.

    python benchmarks/sync_requests.py
    python benchmarks/sync_requests.py --connections 3000
"""

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from _sandbox_process import sandbox_process

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.finch.config import FINCH_IP_WINDOW_SECONDS
from connections_pipeline.resources import FinchResource, TokenSourceResource
from connections_pipeline.warehouse import Warehouse

TARGET_SECOND_RUN = 1.05
MAX_RUNS = 12


def _server_stats(base_url: str) -> dict:
    return httpx.get(f"{base_url}/_sandbox/stats", timeout=30).json()


def _endpoint_delta(before: dict, after: dict) -> dict[str, int]:
    totals = {}
    for endpoint, counts in after["by_endpoint"].items():
        earlier = before["by_endpoint"].get(endpoint, {})
        delta = sum(counts.values()) - sum(earlier.values())
        if delta:
            totals[endpoint] = delta
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    options = (
        "--seed", str(args.seed),
        "--connections", str(args.connections),
        "--time-scale", str(args.time_scale),
    )  # fmt: skip
    with (
        sandbox_process(*options) as base_url,
        tempfile.TemporaryDirectory(prefix="sync-bench-") as folder,
    ):
        finch = FinchResource(base_url=base_url, time_scale=args.time_scale)
        source = TokenSourceResource(kind="sandbox")
        warehouse = Warehouse(f"duckdb:///{Path(folder) / 'warehouse.duckdb'}")
        print(f"emulator {base_url}: {' '.join(options)}")
        ratios = []
        settled = False
        try:
            # Runs until no company name is pending (they fill over runs within the company
            # share), then one more: the steady state, nothing changed in the emulator.
            for number in range(1, MAX_RUNS + 1):
                if number > 1:
                    # Runs are hours apart in production: let the last run's requests leave
                    # the IP window before this run's fresh pacer starts counting.
                    time.sleep(FINCH_IP_WINDOW_SECONDS * args.time_scale)
                before = _server_stats(base_url)
                started = time.perf_counter()
                result = sync_with_resources(f"bench-run-{number}", finch, source, warehouse)
                elapsed = time.perf_counter() - started
                after = _server_stats(base_url)
                tokens = result.sync_run["tokens"]
                requests = result.request_stats["requests"]
                served = after["requests"] - before["requests"]
                ratio = requests / tokens
                ratios.append(ratio)
                states = result.state_counts
                print(f"run {number}: {tokens:,} tokens, {elapsed:.1f} s, states {states}")
                print(f"  client requests   {requests:8,}   per token {ratio:6.3f}   "
                      f"(retries {result.request_stats.get('retries', 0)}, "
                      f"rate limited {result.request_stats.get('rate_limited', 0)})")  # fmt: skip
                print(f"  emulator requests {served:8,}   per token {served / tokens:6.3f}   "
                      f"by endpoint {_endpoint_delta(before, after)}")  # fmt: skip
                pending = result.sync_run["company_names_pending"]
                print(f"  company names pending {pending:,}")
                if settled:
                    break
                settled = pending == 0
        finally:
            warehouse.dispose()
        final = _server_stats(base_url)
        print(f"emulator total (GET /_sandbox/stats): {final['requests']:,} requests, "
              f"by status {final['by_status']}, ip_blocked {final['ip_blocked']}")  # fmt: skip
    verdict = "OK" if ratios[-1] <= TARGET_SECOND_RUN else "MISSED"
    print(
        f"steady run (run {len(ratios)}, every name filled): {ratios[-1]:.3f} requests per "
        f"token (target <= {TARGET_SECOND_RUN}: {verdict})"
    )


if __name__ == "__main__":
    main()
