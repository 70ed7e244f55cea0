"""Configuration of the Finch sandbox emulator: dataset size and seed, clock, limits, faults.

Everything that makes two emulator runs differ lives here, so that a `SandboxConfig` fully
determines the seeded dataset, the tokens and the Dashboard ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import MappingProxyType

ENDPOINT_NAMES: tuple[str, ...] = (
    "introspect",
    "jobs",
    "company",
    "providers",
    "connect_sessions",
    "reauthenticate",
    "auth_token",
    "disconnect",
    "sandbox_connections",
    "sandbox_accounts",
)
"""Names under which faults are configured and request statistics are reported."""

ALL_ENDPOINTS = "*"
"""Fault key that applies to every endpoint not named explicitly."""


def _check_rate(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _check_non_negative(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class EndpointFaults:
    """Failures injected into one endpoint, to exercise a client's error handling.

    All rates are per-request probabilities drawn from an RNG seeded from the sandbox seed,
    so a given request order always meets the same faults.

    Attributes:
        latency_ms: Added to every answer.
        latency_jitter_ms: Uniform +/- jitter around `latency_ms` (never below zero).
        error_rate: Answer 500/502/503 with a Finch `server_error` body, without side effects.
        hang_rate: Sleep `hang_seconds` before answering, to run past a client's timeout.
        hang_seconds: How long a hang lasts.
        drop_rate: Send the response head, then abort the connection mid-body.
        malformed_rate: Answer 200 with a truncated, unparseable JSON body.
        extra_fields: Add unknown keys to every JSON object of success bodies (forward
            compatibility: Finch may add fields at any time).
        rate_limit_rate: Answer 429 `finch_application_rl` regardless of the real windows.
        after_effect: Let the request take effect first, then delay (latency, hangs) and
            answer 5xx: Finch did the work and its answer came late or was lost, as when a
            gateway times out in front of a slow backend. Off: the delay and the 5xx come
            before the handler, which then never runs. A 429 always comes first (Finch's
            rate limiter refuses unprocessed); drops and malformed bodies always come after.
    """

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 0.0
    drop_rate: float = 0.0
    malformed_rate: float = 0.0
    extra_fields: bool = False
    rate_limit_rate: float = 0.0
    after_effect: bool = False

    def __post_init__(self) -> None:
        for name in ("latency_ms", "latency_jitter_ms", "hang_seconds"):
            _check_non_negative(name, getattr(self, name))
        for name in ("error_rate", "hang_rate", "drop_rate", "malformed_rate", "rate_limit_rate"):
            _check_rate(name, getattr(self, name))
        for name in ("extra_fields", "after_effect"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        """Whether any fault is switched on (lets the request path skip the RNG entirely);
        `after_effect` only says when the others strike."""
        return any(getattr(self, f.name) for f in fields(self) if f.name != "after_effect")


NO_FAULTS = EndpointFaults()


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that determines an emulator instance.

    Attributes:
        seed: Seed of every random choice (dataset, ids, evolution, faults).
        connections: Number of seeded connections (live and disconnected).
        time_scale: Multiplies every rate-limit window and the IP block duration, so tests
            can cross a 60-minute block in seconds.
        rate_limits: Enforce Finch's published limits; when off, windows are still measured
            for the statistics but nothing is refused.
        start_time: The virtual clock's start (UTC); default: wall-clock now floored to the day.
        faults: Fault settings by endpoint name (see `ENDPOINT_NAMES`); `"*"` covers the rest.
    """

    seed: int = 7
    connections: int = 200
    time_scale: float = 1.0
    rate_limits: bool = True
    start_time: datetime | None = None
    faults: Mapping[str, EndpointFaults] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        if not isinstance(self.connections, int) or self.connections < 0:
            raise ValueError(f"connections must be an int >= 0, got {self.connections!r}")
        if not (
            isinstance(self.time_scale, int | float)
            and math.isfinite(self.time_scale)
            and self.time_scale > 0
        ):
            raise ValueError(f"time_scale must be > 0, got {self.time_scale!r}")
        if self.start_time is not None:
            start = self.start_time
            start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
            object.__setattr__(self, "start_time", start.replace(microsecond=0))
        for key, value in self.faults.items():
            if key != ALL_ENDPOINTS and key not in ENDPOINT_NAMES:
                raise ValueError(
                    f"unknown fault endpoint {key!r}; expected one of "
                    f"{', '.join((ALL_ENDPOINTS, *ENDPOINT_NAMES))}"
                )
            if not isinstance(value, EndpointFaults):
                raise ValueError(f"faults[{key!r}] must be an EndpointFaults")
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))

    def faults_for(self, endpoint: str) -> EndpointFaults:
        """The fault settings that apply to `endpoint` (its own, else `"*"`, else none)."""
        return self.faults.get(endpoint) or self.faults.get(ALL_ENDPOINTS) or NO_FAULTS
