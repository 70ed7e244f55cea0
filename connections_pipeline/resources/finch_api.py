"""Finch API settings as a Dagster resource; the client itself lives in `finch/`."""

import dagster as dg

from connections_pipeline.finch import FinchClient, FinchClientConfig, FinchConfigError
from connections_pipeline.resources.embedded_finch import (
    FinchSandbox,
    embedded_sandbox,
    embedded_transport,
)
from connections_pipeline.resources.redacted_fields import RedactedFields
from connections_pipeline.transform.guards import FINCH_CLIENT_TYPES, Application

EMBEDDED_BASE_URL = "http://finch.sandbox.local"


class FinchResource(RedactedFields, dg.ConfigurableResource):
    """Where Finch is and how hard the client may push it.

    `base_url` unset means the embedded emulator, built from the `sandbox_*` settings.
    `time_scale` shrinks Finch's rate-limit windows to match an emulator started with the
    same `--time-scale`; keep 1 for Finch. `client_type` is the kind of application the
    tokens must belong to (`development`, `production` or `sandbox`); unset checks nothing.
    """

    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    client_type: str | None = None
    time_scale: float = 1.0
    max_concurrency: int = 16
    timeout_seconds: float = 30.0
    max_attempts: int = 5
    safety_margin: float = 0.05
    sandbox_seed: int = 7
    sandbox_connections: int = 200
    sandbox_time_scale: float = 0.01

    def secret_values(self) -> list[str]:
        """The secrets this resource holds, for scrubbing them out of messages."""
        return [self.client_secret] if self.client_secret else []

    @property
    def embedded(self) -> bool:
        return not self.base_url

    def sandbox(self) -> FinchSandbox:
        """The in-process emulator used when `base_url` is unset (one per process)."""
        return embedded_sandbox(
            self.sandbox_seed, self.sandbox_connections, self.sandbox_time_scale
        )

    def client_config(self) -> FinchClientConfig:
        """Validated client settings; raises FinchConfigError naming the bad setting."""
        embedded = self.embedded
        client_id, client_secret = (
            self.sandbox().credentials if embedded else (self.client_id, self.client_secret)
        )
        return FinchClientConfig(
            base_url=EMBEDDED_BASE_URL if embedded else str(self.base_url),
            client_id=client_id,
            client_secret=client_secret,
            time_scale=self.sandbox_time_scale if embedded else self.time_scale,
            max_concurrency=self.max_concurrency,
            timeout_seconds=self.timeout_seconds,
            max_attempts=self.max_attempts,
            safety_margin=self.safety_margin,
        )

    def application(self) -> Application:
        """The application every token must belong to: FINCH_CLIENT_ID (the emulator's own
        when embedded) and CONNECTIONS_FINCH_CLIENT_TYPE; unset parts are not checked."""
        if self.client_type is not None and self.client_type not in FINCH_CLIENT_TYPES:
            raise FinchConfigError(
                f"CONNECTIONS_FINCH_CLIENT_TYPE must be one of {', '.join(FINCH_CLIENT_TYPES)}, "
                f"got {self.client_type!r}"
            )
        return Application(client_id=self.client_config().client_id, client_type=self.client_type)

    def open_client(self) -> FinchClient:
        transport = embedded_transport(self.sandbox()) if self.embedded else None
        return FinchClient(self.client_config(), transport=transport)
