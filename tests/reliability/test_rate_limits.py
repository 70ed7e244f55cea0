"""Finch's published rate limits, time-scaled: a 5,000-token sync is never refused, and a
Finch that answers 429 anyway is waited out without an IP block.

The emulator enforces Finch's windows (per application and product per 60 s, per IP 1,000
per 5 minutes with a 60-minute block) multiplied by TIME_SCALE; the client is told the same
scale, the way it is pointed at a sandbox started with `--time-scale`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import polars as pl
import pytest
from sandbox.sandbox_helpers import cli_server
from sync.sync_helpers import disconnected_keys, make_warehouse, truth_differences

from connections_pipeline.assets.sync import sync_with_resources
from connections_pipeline.resources import FinchResource, TokenSourceResource

pytestmark = pytest.mark.slow

TIME_SCALE = 0.005
TOKENS = 5_000
CONNECTIONS_FOR_5000_TOKENS = 3_900
FORCED_429_RATE = 0.2


def _sync(base_url: str, tmp_path: Path, postgres_url: str, **client: object) -> tuple:
    """Sync the emulator at `base_url` into DuckDB; the result, the current table, the
    emulator's statistics and its ground truth."""
    warehouse = make_warehouse("duckdb", tmp_path, postgres_url)
    finch = FinchResource(base_url=base_url, time_scale=TIME_SCALE, **client)
    result = sync_with_resources("run-1", finch, TokenSourceResource(kind="sandbox"), warehouse)
    current = warehouse.read_current()
    warehouse.dispose()
    stats = httpx.get(f"{base_url}/_sandbox/stats", timeout=30).json()
    truth = httpx.get(f"{base_url}/_sandbox/truth", timeout=30).json()["rows"]
    return result, current, stats, truth


@contextmanager
def emulator_process(*options: str) -> Iterator[str]:
    """The emulator in its own process: its request timing is not skewed by sharing this
    process's interpreter with the client."""
    with cli_server(*options) as (_, base_url):
        yield base_url


def test_5000_token_sync_at_finchs_limits_gets_no_429(tmp_path: Path, postgres_url: str) -> None:
    options = ("--seed", "91", "--connections", str(CONNECTIONS_FOR_5000_TOKENS))
    with emulator_process(*options, "--time-scale", str(TIME_SCALE)) as base_url:
        result, current, stats, truth = _sync(base_url, tmp_path, postgres_url)

    assert stats["by_status"].get("429", 0) == 0, stats
    assert stats["ip_blocks"] == 0
    assert result.sync_run["rate_limited"] == 0
    # The limits were really in play: more requests than one IP window admits, and company
    # lookups far beyond one product window.
    assert stats["requests"] > 2 * 1_000
    assert stats["by_endpoint"]["company"]["200"] > 5 * 20
    # How close to them the client runs is a figure of benchmarks/finch_client.py, not a test.
    assert stats["max_requests_in_product_window"]["company"] <= 20
    assert result.sync_run["tokens"] >= TOKENS
    assert result.token_outcomes.get("failed", 0) == 0
    assert truth_differences(truth, current, disconnected_keys(truth)) == []


def test_forced_429s_are_waited_out_without_an_ip_block(tmp_path: Path, postgres_url: str) -> None:
    options = ("--seed", "93", "--connections", "300", "--time-scale", str(TIME_SCALE))
    with emulator_process(*options, "--rate-limit-rate", str(FORCED_429_RATE)) as base_url:
        result, current, stats, truth = _sync(base_url, tmp_path, postgres_url, max_attempts=10)

    refused = stats["by_status"].get("429", 0)
    forced = stats["faults"].get("rate_limited", 0)
    # Every forced 429 was met and waited out (the client's count is Finch's count).
    assert forced > 0 and refused >= forced
    assert result.sync_run["rate_limited"] == refused
    assert stats["ip_blocks"] == 0 and not stats["ip_blocked"]
    assert result.token_outcomes.get("failed", 0) == 0
    assert truth_differences(truth, current, disconnected_keys(truth)) == []
    assert current.filter(pl.col("last_error").is_not_null()).height == 0
