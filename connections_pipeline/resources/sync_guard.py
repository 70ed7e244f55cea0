"""When a sync is held instead of loaded, and how much of Finch one run may spend, as a
Dagster resource; the judging lives in `transform/guards.py`, the polling plan in
`transform/polling.py`."""

from datetime import timedelta

import dagster as dg

from connections_pipeline.transform.guards import (
    LIVE_DROP_MIN_SETTING,
    LIVE_DROP_SHARE_SETTING,
    TOKEN_FAILURE_SHARE_SETTING,
    HoldThresholds,
)
from connections_pipeline.transform.polling import RunBudget

MAX_REQUESTS_SETTING = "CONNECTIONS_MAX_REQUESTS_PER_RUN"
DEADLINE_SETTING = "CONNECTIONS_RUN_DEADLINE_MINUTES"
COMPANY_SHARE_SETTING = "CONNECTIONS_COMPANY_SHARE"


class SyncGuardError(ValueError):
    """A hold threshold is unusable; names the setting."""


class SyncGuardResource(dg.ConfigurableResource):
    """Thresholds past which a sync's changes are implausible and the run is held.

    Defaults: more than 20% of the live connections leaving Live in one run (once at least
    5 do), or more than 20% of the tokens without a usable answer.

    The run's budget: `max_requests_per_run` and `deadline_minutes` (0: no limit) and the
    largest share of a run's time spent waiting on `/employer/company`; connections that do
    not fit wait for the next run.
    """

    max_live_drop_share: float = HoldThresholds.max_live_drop_share
    min_count: int = HoldThresholds.min_count
    max_token_failure_share: float = HoldThresholds.max_token_failure_share
    max_requests_per_run: int = 0
    deadline_minutes: float = 0.0
    company_share: float = RunBudget.company_share

    def budget(self) -> RunBudget:
        """The run's budget; SyncGuardError naming the setting when one is out of range."""
        if self.max_requests_per_run < 0 or 0 < self.max_requests_per_run < 2:
            raise SyncGuardError(
                f"{MAX_REQUESTS_SETTING} must be 0 (no limit) or at least 2, "
                f"got {self.max_requests_per_run}"
            )
        if self.deadline_minutes < 0:
            raise SyncGuardError(
                f"{DEADLINE_SETTING} must be 0 (none) or more, got {self.deadline_minutes}"
            )
        if not 0 <= self.company_share < 1:
            raise SyncGuardError(
                f"{COMPANY_SHARE_SETTING} must be a share from 0 to below 1, "
                f"got {self.company_share!r}"
            )
        return RunBudget(
            max_requests=self.max_requests_per_run or None,
            deadline=timedelta(minutes=self.deadline_minutes) if self.deadline_minutes else None,
            company_share=self.company_share,
        )

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
