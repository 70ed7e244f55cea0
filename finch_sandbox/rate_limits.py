"""Finch's published rate limits, enforced with sliding-window logs.

* Per application and product, rolling 60 s: company/directory/individual/employment/
  pay-statement-item 20, payment/pay-groups/pay-statement 12. Only admitted requests fill a
  product window (a refused request was never initiated against the product).
* Per client IP, 1,000 requests per rolling 5 minutes; exceeding it blocks the IP for 60
  minutes. Every request counts toward the IP window, refused ones included, so a client that
  keeps hammering during a block stays blocked.

Windows run on real monotonic time (not the virtual clock: a client's pacing happens in real
time), multiplied by `time_scale` so tests can cross an hour-long block in seconds. With
limits disabled the windows are still measured, so statistics show what a client *would* have
triggered.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

APPLICATION_LIMIT = "finch_application_rl"
IP_LIMIT = "finch_api_ip_rl"

PRODUCT_WINDOW_SECONDS = 60.0
PRODUCT_LIMITS: dict[str, int] = {
    "company": 20,
    "directory": 20,
    "individual": 20,
    "employment": 20,
    "pay-statement-item": 20,
    "payment": 12,
    "pay-groups": 12,
    "pay-statement": 12,
}
IP_WINDOW_SECONDS = 300.0
IP_LIMIT_REQUESTS = 1_000
IP_BLOCK_SECONDS = 3_600.0


class SlidingWindowLog:
    """Timestamps of the hits inside the last `window` seconds; O(1) amortised per hit."""

    __slots__ = ("_hits", "window")

    def __init__(self, window: float) -> None:
        self.window = window
        self._hits: deque[float] = deque()

    def _prune(self, now: float) -> None:
        horizon = now - self.window
        hits = self._hits
        while hits and hits[0] <= horizon:
            hits.popleft()

    def count(self, now: float) -> int:
        self._prune(now)
        return len(self._hits)

    def record(self, now: float) -> int:
        """Add a hit; returns the number of hits now in the window."""
        self._prune(now)
        self._hits.append(now)
        return len(self._hits)


class _IpState:
    __slots__ = ("blocked_until", "log")

    def __init__(self, window: float) -> None:
        self.log = SlidingWindowLog(window)
        self.blocked_until = 0.0


class RateLimiter:
    """Decides whether a request is refused and which `finch_code` explains it."""

    def __init__(
        self,
        *,
        enabled: bool,
        time_scale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.clock = clock
        self.product_window = PRODUCT_WINDOW_SECONDS * time_scale
        self.ip_window = IP_WINDOW_SECONDS * time_scale
        self.ip_block = IP_BLOCK_SECONDS * time_scale
        self._ips: dict[str, _IpState] = {}
        self._products: dict[str, SlidingWindowLog] = {
            product: SlidingWindowLog(self.product_window) for product in PRODUCT_LIMITS
        }
        self.ip_blocks = 0
        self.max_ip_window = 0
        self.max_product_window: dict[str, int] = dict.fromkeys(PRODUCT_LIMITS, 0)

    def check_ip(self, ip: str) -> str | None:
        """Count a request from `ip`; returns `IP_LIMIT` if it must be refused."""
        now = self.clock()
        state = self._ips.get(ip)
        if state is None:
            state = self._ips[ip] = _IpState(self.ip_window)
        in_window = state.log.record(now)
        if in_window > self.max_ip_window:
            self.max_ip_window = in_window
        if not self.enabled:
            return None
        if now < state.blocked_until:
            return IP_LIMIT
        if in_window > IP_LIMIT_REQUESTS:
            state.blocked_until = now + self.ip_block
            self.ip_blocks += 1
            return IP_LIMIT
        return None

    def check_product(self, product: str) -> str | None:
        """Admit one request against `product`'s application window, or return the refusal."""
        log = self._products[product]
        now = self.clock()
        if self.enabled and log.count(now) >= PRODUCT_LIMITS[product]:
            return APPLICATION_LIMIT
        in_window = log.record(now)
        if in_window > self.max_product_window[product]:
            self.max_product_window[product] = in_window
        return None

    def any_ip_blocked(self) -> bool:
        now = self.clock()
        return any(now < state.blocked_until for state in self._ips.values())

    def reset_peaks(self) -> None:
        self.ip_blocks = 0
        self.max_ip_window = 0
        self.max_product_window = dict.fromkeys(PRODUCT_LIMITS, 0)
