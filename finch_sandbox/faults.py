"""Fault injection: which failure, if any, a given request meets.

One RNG seeded from the sandbox seed decides for every request in arrival order, and the
number of draws per request depends only on the endpoint's settings, so a fixed request
sequence always meets the same faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random
from typing import Any

from .config import ENDPOINT_NAMES, EndpointFaults, SandboxConfig

ERROR_STATUSES = (500, 502, 503)
EXTRA_FIELD_KEY = "sandbox_unknown_field"
EXTRA_FIELD_VALUE = "ignore me: clients must tolerate fields they do not know"


class SimulatedConnectionDrop(Exception):
    """Raised after the response head is sent so the server aborts the connection mid-body."""


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults one request meets."""

    delay_seconds: float = 0.0
    hang: bool = False
    rate_limited: bool = False
    error_status: int | None = None
    drop: bool = False
    malformed: bool = False
    extra_fields: bool = False
    after_effect: bool = False


class FaultInjector:
    def __init__(self, config: SandboxConfig) -> None:
        self._rng = Random(f"{config.seed}:faults")
        self._settings: dict[str, EndpointFaults] = {
            name: config.faults_for(name) for name in ENDPOINT_NAMES
        }
        self._active = {name: s.active for name, s in self._settings.items()}

    def plan(self, endpoint: str) -> FaultPlan | None:
        """Draw this request's faults; None (no draw at all) when the endpoint has none."""
        if not self._active.get(endpoint):
            return None
        settings = self._settings[endpoint]
        rng = self._rng
        delay = settings.latency_ms / 1000.0
        if settings.latency_jitter_ms:
            delay += rng.uniform(-settings.latency_jitter_ms, settings.latency_jitter_ms) / 1000.0
        delay = max(0.0, delay)
        hang = bool(settings.hang_rate) and rng.random() < settings.hang_rate
        if hang:
            delay += settings.hang_seconds
        rate_limited = bool(settings.rate_limit_rate) and rng.random() < settings.rate_limit_rate
        error_status = None
        if settings.error_rate and rng.random() < settings.error_rate:
            error_status = rng.choice(ERROR_STATUSES)
        drop = bool(settings.drop_rate) and rng.random() < settings.drop_rate
        malformed = bool(settings.malformed_rate) and rng.random() < settings.malformed_rate
        return FaultPlan(
            delay_seconds=delay,
            hang=hang,
            rate_limited=rate_limited,
            error_status=error_status,
            drop=drop,
            malformed=malformed,
            extra_fields=settings.extra_fields,
            after_effect=settings.after_effect,
        )


def with_extra_fields(value: Any) -> Any:
    """A copy of a JSON value with an unknown key added to every object in it."""
    if isinstance(value, dict):
        copy = {k: with_extra_fields(v) for k, v in value.items()}
        copy[EXTRA_FIELD_KEY] = EXTRA_FIELD_VALUE
        return copy
    if isinstance(value, list):
        return [with_extra_fields(v) for v in value]
    return value


def truncate_json(body: bytes) -> bytes:
    """Cut a JSON body so no parser accepts it (half of it, never a complete document)."""
    cut = body[: max(1, len(body) // 2)]
    return cut if cut != body else body[:-1] or b"{"
