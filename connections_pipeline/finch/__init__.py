"""The Finch HTTP client: auth, pacing under Finch's rate limits, retries, typed outcomes.

Nothing outside this package speaks HTTP to Finch. It has no Dagster imports so it can be
used from assets, the CLI, benchmarks and tests alike.
"""

from connections_pipeline.finch.client import FinchClient
from connections_pipeline.finch.config import FinchClientConfig
from connections_pipeline.finch.errors import FinchConfigError
from connections_pipeline.finch.fingerprint import token_fingerprint
from connections_pipeline.finch.results import CallOutcome, FinchCallResult
from connections_pipeline.finch.stats import RequestStats

__all__ = [
    "CallOutcome",
    "FinchCallResult",
    "FinchClient",
    "FinchClientConfig",
    "FinchConfigError",
    "RequestStats",
    "token_fingerprint",
]
