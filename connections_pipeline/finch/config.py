"""Client settings, validated once, before any request."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import httpx
from pydantic import SecretStr

from connections_pipeline.finch.errors import FinchConfigError

FINCH_API_VERSION = "2020-09-17"
DEFAULT_BASE_URL = "https://api.tryfinch.com"

# Finch's published application limits: requests per rolling 60 s, per product, counted
# across every token of the application (not per token since August 2023).
FINCH_PRODUCT_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "company": 20,
        "directory": 20,
        "individual": 20,
        "employment": 20,
        "pay-statement-item": 20,
        "payment": 12,
        "pay-groups": 12,
        "pay-statement": 12,
    }
)
FINCH_PRODUCT_WINDOW_SECONDS = 60.0
# Per client IP: 1,000 requests per rolling 5 minutes; one more blocks the IP for an hour.
FINCH_IP_LIMIT = 1000
FINCH_IP_WINDOW_SECONDS = 300.0


@dataclass(frozen=True)
class FinchClientConfig:
    """Everything the client needs to reach Finch and stay within its limits.

    `time_scale` shrinks every window and backoff by the same factor; it exists so the
    emulator's time-scaled limits can be matched in tests and benchmarks, and is 1 for Finch.
    `safety_margin` keeps the client under each published limit by that fraction, so clock
    skew and latency jitter between client and server cannot push a window over.
    """

    base_url: str = DEFAULT_BASE_URL
    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_version: str = FINCH_API_VERSION
    timeout_seconds: float = 30.0
    max_concurrency: int = 16
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    pacing: bool = True
    ip_limit: int = FINCH_IP_LIMIT
    ip_window_seconds: float = FINCH_IP_WINDOW_SECONDS
    product_limits: Mapping[str, int] = field(default_factory=lambda: dict(FINCH_PRODUCT_LIMITS))
    product_window_seconds: float = FINCH_PRODUCT_WINDOW_SECONDS
    safety_margin: float = 0.05
    time_scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.client_secret, str):
            object.__setattr__(self, "client_secret", SecretStr(self.client_secret))
        _check_base_url(self.base_url)
        _check_positive("timeout_seconds", self.timeout_seconds)
        _check_positive("max_concurrency", self.max_concurrency)
        _check_positive("max_attempts", self.max_attempts)
        _check_positive("backoff_initial_seconds", self.backoff_initial_seconds)
        _check_positive("backoff_max_seconds", self.backoff_max_seconds)
        _check_positive("ip_limit", self.ip_limit)
        _check_positive("ip_window_seconds", self.ip_window_seconds)
        _check_positive("product_window_seconds", self.product_window_seconds)
        _check_positive("time_scale", self.time_scale)
        if not 0 <= self.safety_margin < 1:
            raise FinchConfigError(f"safety_margin must be in [0, 1), got {self.safety_margin!r}")
        for product, limit in self.product_limits.items():
            _check_positive(f"product_limits[{product!r}]", limit)
        if not self.api_version:
            raise FinchConfigError("api_version must not be empty")

    def check_app_credentials(self) -> None:
        """Raise FinchConfigError unless the application's Basic credentials are set; the
        Connect-session calls need them."""
        if not self.client_id or self.client_secret is None:
            raise FinchConfigError(
                "client_id and client_secret (FINCH_CLIENT_ID, FINCH_CLIENT_SECRET) are "
                "required for Connect sessions"
            )

    @property
    def paced_ip_limit(self) -> int:
        """Requests the client allows itself per IP window, after the safety margin."""
        return _with_margin(self.ip_limit, self.safety_margin)

    def paced_product_limit(self, product: str) -> int | None:
        limit = self.product_limits.get(product)
        return None if limit is None else _with_margin(limit, self.safety_margin)

    @property
    def scaled_ip_window(self) -> float:
        return self.ip_window_seconds * self.time_scale

    @property
    def scaled_product_window(self) -> float:
        return self.product_window_seconds * self.time_scale


def _with_margin(limit: int, margin: float) -> int:
    return max(1, math.floor(limit * (1 - margin)))


def _check_positive(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise FinchConfigError(f"{name} must be a positive number, got {value!r}")


def _check_base_url(base_url: str) -> None:
    problem = None
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        problem = str(exc)
    else:
        if url.scheme not in ("http", "https"):
            problem = "scheme must be http or https"
        elif not url.host:
            problem = "no host"
        elif url.query or url.fragment:
            problem = "must not carry a query or fragment"
    if problem:
        raise FinchConfigError(f"base_url (FINCH_BASE_URL) is not a usable URL: {problem}")
