"""How use cases reach Finch without knowing where its settings come from."""

from typing import Protocol

from connections_pipeline.finch.client import FinchClient
from connections_pipeline.finch.config import FinchClientConfig


class FinchAccess(Protocol):
    """Validated client settings, and clients made from them (one per use: a client paces
    only the requests it sends itself). The Dagster resource is one; a test may pass another.
    """

    def client_config(self) -> FinchClientConfig: ...

    def open_client(self) -> FinchClient: ...
