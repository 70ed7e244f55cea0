"""Proactive pacing under Finch's rolling-window limits, and a shared cooldown after 429s.

Finch blocks an IP for an hour after 1,000 requests in 5 minutes, so retrying after a 429 is
not enough: the client must never send the 1,001st request. Each budget is a sliding-window
log (pyrate-limiter), which matches how Finch counts; a permit is taken per HTTP attempt,
retries included, immediately before the request is sent.
"""

import asyncio
import logging
import random
import time

from pyrate_limiter import InMemoryBucket, Limiter, Rate

from connections_pipeline.finch.config import FinchClientConfig

logger = logging.getLogger(__name__)

IP_RATE_LIMIT_CODE = "finch_api_ip_rl"
# Consecutive per-IP 429s after which the IP is taken to be blocked (Finch blocks for an hour):
# further requests would only be refused, so the client stops sending them.
IP_BLOCK_THRESHOLD = 3


class Pacer:
    """Hands out permission to send, within the IP budget and each product's budget.

    A 429 means the server counted more than we did (another process on the same IP, a
    clock offset, or a limit lower than published). The answer is to slow everything down,
    not to retry that one request sooner: a 429 closes a gate that every caller waits on, for
    a backoff that grows with consecutive 429s and resets after a success.
    """

    def __init__(self, config: FinchClientConfig) -> None:
        self._config = config
        self._limiters: dict[str, Limiter] = {}
        self._retired: list[Limiter] = []
        if config.pacing:
            self._limiters["ip"] = _sliding_window(config.paced_ip_limit, config.scaled_ip_window)
            for product in config.product_limits:
                limit = config.paced_product_limit(product)
                assert limit is not None
                self._limiters[product] = _evenly_spaced(limit, config.scaled_product_window)
        self._gate_open_at = 0.0
        self._consecutive_rate_limits = 0
        self._consecutive_ip_limits = 0
        self._rng = random.Random()

    def reserve_for_products(self, requests_per_window: int) -> None:
        """Keep `requests_per_window` of each IP window for calls of a rate-limited product.

        Introspections alone would take a whole IP window's budget in its first seconds and
        then wait out the window; company calls, paced at 20 a minute, would wait with them
        and the two limits would add up instead of overlapping. With a reserve, calls
        without a product stay within the rest of the budget. 0 removes the reserve.
        """
        retired = self._limiters.pop("unreserved", None)
        if retired is not None:
            # A call may still be waiting on it; it is closed with the others.
            self._retired.append(retired)
        if requests_per_window > 0 and "ip" in self._limiters:
            config = self._config
            share = max(config.paced_ip_limit - requests_per_window, 1)
            self._limiters["unreserved"] = _sliding_window(share, config.scaled_ip_window)

    async def acquire(self, product: str | None) -> None:
        """Wait until a request for `product` (None for endpoints without one) may be sent."""
        await self._wait_for_gate()
        unreserved = None if product else self._limiters.get("unreserved")
        if unreserved is not None:
            await unreserved.try_acquire_async("unreserved")
        # The product slot is taken last, right before sending: a slot taken and then held
        # while waiting for the IP budget would let requests bunch up past a product window
        # whose margin is a single request (19 of 20). Bunching on the IP side is bounded by
        # the concurrency, well inside its margin of 50.
        ip_limiter = self._limiters.get("ip")
        if ip_limiter is not None:
            await ip_limiter.try_acquire_async("ip")
        await self._wait_for_gate()
        product_limiter = self._limiters.get(product) if product else None
        if product_limiter is not None:
            await product_limiter.try_acquire_async(product or "")

    @property
    def ip_blocked(self) -> bool:
        """True once Finch has refused this IP several times in a row."""
        return self._consecutive_ip_limits >= IP_BLOCK_THRESHOLD

    def record_success(self) -> None:
        self._consecutive_rate_limits = 0
        self._consecutive_ip_limits = 0

    def record_rate_limited(self, finch_code: str | None) -> float:
        """Close the gate for everyone after a 429; returns the cooldown in seconds."""
        self._consecutive_rate_limits += 1
        if finch_code == IP_RATE_LIMIT_CODE:
            self._consecutive_ip_limits += 1
        config = self._config
        ceiling = (
            config.scaled_ip_window
            if finch_code == IP_RATE_LIMIT_CODE
            else config.scaled_product_window
        )
        base = config.backoff_initial_seconds * config.time_scale
        backoff = min(ceiling, base * 2 ** (self._consecutive_rate_limits - 1))
        cooldown = backoff * (0.5 + self._rng.random() / 2)
        self._gate_open_at = max(self._gate_open_at, time.monotonic() + cooldown)
        logger.warning(
            "Finch answered 429 (%s); pausing all requests for %.2fs",
            finch_code or "no finch_code",
            cooldown,
        )
        return cooldown

    def close(self) -> None:
        for limiter in [*self._limiters.values(), *self._retired]:
            limiter.close()

    async def _wait_for_gate(self) -> None:
        while (remaining := self._gate_open_at - time.monotonic()) > 0:
            await asyncio.sleep(remaining)


def _sliding_window(limit: int, window_seconds: float) -> Limiter:
    window_ms = max(1, round(window_seconds * 1000))
    return Limiter(InMemoryBucket([Rate(limit, window_ms)]), buffer_ms=10)


def _evenly_spaced(limit: int, window_seconds: float) -> Limiter:
    """A sliding window that also spaces requests `window / limit` apart.

    Product budgets are small (12 or 20 a minute, paced to 11 or 19), so a margin of one
    request is all there is. Sent in bursts, a window's requests reach Finch spread out by
    queueing and the next burst's early ones land inside the same server-side window; spaced
    evenly, the same rate never crowds a window edge.
    """
    window_ms = max(1, round(window_seconds * 1000))
    spacing_ms = max(1, window_ms // limit)
    rates = [Rate(1, spacing_ms), Rate(limit, window_ms)]
    return Limiter(InMemoryBucket(rates), buffer_ms=1)
