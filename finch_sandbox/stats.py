"""Request statistics of the Finch surface, so tests and benchmarks can see what a client did.

Only Finch-surface requests are counted (including the ones refused with 429); the emulator's
own `/_sandbox/` routes are not.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from .rate_limits import RateLimiter


class RequestStats:
    def __init__(self) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.faults: Counter[str] = Counter()

    def record(self, endpoint: str, status: int, faults: Iterable[str] = ()) -> None:
        key = str(status)
        self.faults.update(faults)
        self.requests += 1
        self.by_status[key] += 1
        self.by_endpoint[endpoint][key] += 1

    def reset(self) -> None:
        self.requests = 0
        self.by_status.clear()
        self.by_endpoint.clear()
        self.faults.clear()

    def snapshot(self, limiter: RateLimiter) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "by_endpoint": {name: dict(counts) for name, counts in self.by_endpoint.items()},
            "faults": dict(self.faults),
            "ip_blocked": limiter.any_ip_blocked(),
            "ip_blocks": limiter.ip_blocks,
            "max_requests_in_ip_window": limiter.max_ip_window,
            "max_requests_in_product_window": {"company": limiter.max_product_window["company"]},
        }
