"""Request counters the client keeps for run metadata."""

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestStats:
    """Counts of what the client sent and what came back, for one client's lifetime.

    `requests` counts every HTTP attempt (retries included), because that is what Finch's IP
    budget counts.
    """

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    timeouts: int = 0
    transport_errors: int = 0
    malformed_bodies: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    # Monotonic times of the first request sent and the last attempt ended: the span a run
    # spent with Finch, pacing waits included, as apart from its own work.
    first_sent: float | None = None
    last_ended: float | None = None

    def record_sent(self) -> None:
        self.requests += 1
        if self.first_sent is None:
            self.first_sent = time.monotonic()

    def record_ended(self) -> None:
        self.last_ended = time.monotonic()

    @property
    def finch_seconds(self) -> float:
        if self.first_sent is None or self.last_ended is None:
            return 0.0
        return self.last_ended - self.first_sent

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "timeouts": self.timeouts,
            "transport_errors": self.transport_errors,
            "malformed_bodies": self.malformed_bodies,
            "by_status": dict(sorted(self.by_status.items())),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "by_outcome": dict(sorted(self.by_outcome.items())),
            "finch_seconds": round(self.finch_seconds, 3),
        }
