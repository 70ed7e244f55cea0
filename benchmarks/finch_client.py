"""Finch client speed against the emulator over real HTTP on loopback.

paced:   introspect N tokens with Finch's limits on (time-scaled); compare the elapsed time
         with the lower bound the IP limit implies, and read the 429 count from the
         emulator's own statistics.
unpaced: limits off, a fixed latency per call, bounded concurrency; compare requests per
         second with the ideal concurrency / latency.
company: N `/employer/company` calls with Finch's limits on (time-scaled); how full the
         client keeps each 60-second product window (20 allowed, 19 after the margin).

    python benchmarks/finch_client.py paced --tokens 3000 --time-scale 0.01
    python benchmarks/finch_client.py unpaced --requests 6400 --latency-ms 50 --concurrency 32
    python benchmarks/finch_client.py company --calls 100 --time-scale 0.01
"""

import argparse
import asyncio
import time

import httpx
from _sandbox_process import sandbox_process

from connections_pipeline.finch import CallOutcome, FinchClient, FinchClientConfig
from connections_pipeline.finch.config import (
    FINCH_IP_LIMIT,
    FINCH_IP_WINDOW_SECONDS,
    FINCH_PRODUCT_LIMITS,
    FINCH_PRODUCT_WINDOW_SECONDS,
)

SEED = "7"


def _live_tokens(base_url: str, count: int) -> list[str]:
    tokens = httpx.get(f"{base_url}/_sandbox/tokens").json()["tokens"]
    live = [token["access_token"] for token in tokens if not token["revoked"]]
    return (live * (count // len(live) + 1))[:count]


async def _introspect(config: FinchClientConfig, tokens: list[str]) -> tuple[float, dict, int]:
    async with FinchClient(config) as client:
        started = time.perf_counter()
        results = await client.introspect_many(tokens)
        elapsed = time.perf_counter() - started
        failures = sum(result.outcome is not CallOutcome.OK for result in results)
        return elapsed, client.stats.as_dict(), failures


def paced(tokens: int, time_scale: float, concurrency: int) -> None:
    connections = str(max(tokens, 200))
    with sandbox_process(
        "--seed", SEED, "--connections", connections, "--time-scale", str(time_scale)
    ) as base_url:
        batch = _live_tokens(base_url, tokens)
        config = FinchClientConfig(
            base_url=base_url, time_scale=time_scale, max_concurrency=concurrency
        )
        elapsed, stats, failures = asyncio.run(_introspect(config, batch))
        server = httpx.get(f"{base_url}/_sandbox/stats").json()
    # Sustained rate the IP budget allows: 1,000 requests per (scaled) 5 minutes.
    lower_bound = tokens / FINCH_IP_LIMIT * FINCH_IP_WINDOW_SECONDS * time_scale
    print(f"paced: {tokens} introspections, time scale {time_scale}")
    print(f"  elapsed               {elapsed:8.2f} s")
    print(f"  IP-limit lower bound  {lower_bound:8.2f} s")
    print(f"  ratio                 {elapsed / lower_bound:8.3f} (target <= 1.10)")
    print(f"  429 responses         {server['by_status'].get('429', 0):8d} (target 0)")
    print(f"  max in one IP window  {server['max_requests_in_ip_window']:8d} (limit 1000)")
    print(f"  IP blocked            {server['ip_blocked']!s:>8}")
    print(f"  failed calls          {failures:8d}")
    print(f"  client requests       {stats['requests']:8d}")


def unpaced(requests: int, latency_ms: float, concurrency: int) -> None:
    with sandbox_process(
        "--seed", SEED, "--connections", "500", "--no-rate-limits", "--latency-ms", str(latency_ms)
    ) as base_url:
        batch = _live_tokens(base_url, requests)
        config = FinchClientConfig(base_url=base_url, pacing=False, max_concurrency=concurrency)
        asyncio.run(_introspect(config, batch[:concurrency]))  # warm up connections
        elapsed, _, failures = asyncio.run(_introspect(config, batch))
    ideal = concurrency / (latency_ms / 1000)
    rate = requests / elapsed
    print(f"unpaced: {requests} introspections, {latency_ms} ms latency, concurrency {concurrency}")
    print(f"  throughput            {rate:8.1f} req/s")
    print(f"  ideal                 {ideal:8.1f} req/s")
    print(f"  share of ideal        {rate / ideal:8.1%} (target >= 80%)")
    print(f"  failed calls          {failures:8d}")


async def _companies(config: FinchClientConfig, tokens: list[str]) -> tuple[float, int]:
    async with FinchClient(config) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(client.company(token) for token in tokens))
        elapsed = time.perf_counter() - started
        return elapsed, sum(result.outcome is not CallOutcome.OK for result in results)


def company(calls: int, time_scale: float) -> None:
    with sandbox_process("--seed", SEED, "--time-scale", str(time_scale)) as base_url:
        batch = _live_tokens(base_url, calls)
        config = FinchClientConfig(base_url=base_url, time_scale=time_scale, max_concurrency=16)
        elapsed, failures = asyncio.run(_companies(config, batch))
        server = httpx.get(f"{base_url}/_sandbox/stats").json()
    window = FINCH_PRODUCT_WINDOW_SECONDS * time_scale
    bound = calls / FINCH_PRODUCT_LIMITS["company"] * window
    print(f"company: {calls} /employer/company calls, time scale {time_scale}")
    print(f"  elapsed               {elapsed:8.2f} s")
    print(f"  product-limit bound   {bound:8.2f} s")
    fullest = server["max_requests_in_product_window"]["company"]
    print(f"  max in one window     {fullest:8d} (limit 20; paced to 19)")
    print(f"  429 responses         {server['by_status'].get('429', 0):8d} (target 0)")
    print(f"  failed calls          {failures:8d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    paced_mode = modes.add_parser("paced")
    paced_mode.add_argument("--tokens", type=int, default=3000)
    paced_mode.add_argument("--time-scale", type=float, default=0.01)
    paced_mode.add_argument("--concurrency", type=int, default=32)
    unpaced_mode = modes.add_parser("unpaced")
    unpaced_mode.add_argument("--requests", type=int, default=6400)
    unpaced_mode.add_argument("--latency-ms", type=float, default=50.0)
    unpaced_mode.add_argument("--concurrency", type=int, default=32)
    company_mode = modes.add_parser("company")
    company_mode.add_argument("--calls", type=int, default=100)
    company_mode.add_argument("--time-scale", type=float, default=0.01)
    args = parser.parse_args()
    if args.mode == "paced":
        paced(args.tokens, args.time_scale, args.concurrency)
    elif args.mode == "unpaced":
        unpaced(args.requests, args.latency_ms, args.concurrency)
    else:
        company(args.calls, args.time_scale)


if __name__ == "__main__":
    main()
