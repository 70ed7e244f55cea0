"""When a sync is held instead of loaded, as a Dagster resource; the judging lives in
`transform/guards.py`."""

import dagster as dg

from connections_pipeline.transform.guards import (
    LIVE_DROP_MIN_SETTING,
    LIVE_DROP_SHARE_SETTING,
    TOKEN_FAILURE_SHARE_SETTING,
    HoldThresholds,
)


class SyncGuardError(ValueError):
    """A hold threshold is unusable; names the setting."""


class SyncGuardResource(dg.ConfigurableResource):
    """Thresholds past which a sync's changes are implausible and the run is held.

    Defaults: more than 20% of the live connections leaving Live in one run (once at least
    5 do), or more than 20% of the tokens without a usable answer.
    """

    max_live_drop_share: float = HoldThresholds.max_live_drop_share
    min_count: int = HoldThresholds.min_count
    max_token_failure_share: float = HoldThresholds.max_token_failure_share

    def thresholds(self) -> HoldThresholds:
        """The thresholds; SyncGuardError naming the setting when one is out of range."""
        for name, value in (
            (LIVE_DROP_SHARE_SETTING, self.max_live_drop_share),
            (TOKEN_FAILURE_SHARE_SETTING, self.max_token_failure_share),
        ):
            if not 0 <= value <= 1:
                raise SyncGuardError(f"{name} must be a share from 0 to 1, got {value!r}")
        if self.min_count < 0:
            raise SyncGuardError(f"{LIVE_DROP_MIN_SETTING} must be 0 or more, got {self.min_count}")
        return HoldThresholds(
            max_live_drop_share=self.max_live_drop_share,
            min_count=self.min_count,
            max_token_failure_share=self.max_token_failure_share,
        )
