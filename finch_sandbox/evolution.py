"""Moving the dataset forward in virtual time, the way a real Finch account drifts.

`advance(days)` walks in steps of at most one day. Each step draws, from the evolution RNG,
what happens to every connection and every pending Connect session in a fixed order, so the
outcome depends only on the seed and the sequence of advances (and of API calls in between).
Daily probabilities are converted to a step of length f days as `1 - (1 - p) ** f`.

Daily probabilities (per live connection or pending session):

* connected -> reauth 2%, -> error_permissions 0.5%, -> error_no_account_setup 0.3%,
  -> disconnected 0.4%; a connected connection's syncs stall 1% (stalled ones resume 30%).
* reauth / error_* -> connected 20% (a reauth recovery re-issues a token 70% of the time,
  other recoveries 20%); -> disconnected 3%.
* pending -> connected (first sync) 60%; processing -> connected 50%.
* a pending Connect session (seeded or created through the API) completes 50% per day, at a
  random moment of the step, unless it expires first; a reauthenticate session completes
  likewise and brings its connection back to connected with a new token.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from random import Random

from .lifecycle import Lifecycle, SessionNotCompletable
from .records import (
    CONNECTED,
    ERROR_NO_ACCOUNT_SETUP,
    ERROR_PERMISSIONS,
    NEEDS_ACTION_STATUSES,
    PENDING,
    PROCESSING,
    REAUTH,
    SESSION_EXPIRED,
    SESSION_PENDING,
)

DAILY_TO_REAUTH = 0.02
DAILY_TO_ERROR_PERMISSIONS = 0.005
DAILY_TO_ERROR_NO_ACCOUNT_SETUP = 0.003
DAILY_DISCONNECT_HEALTHY = 0.004
DAILY_STALL = 0.01
DAILY_UNSTALL = 0.30
DAILY_RECOVER = 0.20
DAILY_DISCONNECT_BROKEN = 0.03
REAUTH_RECOVERY_NEW_TOKEN = 0.70
OTHER_RECOVERY_NEW_TOKEN = 0.20
DAILY_FIRST_SYNC = 0.60
DAILY_PROCESSING_DONE = 0.50
DAILY_SESSION_COMPLETION = 0.50
"""Daily completion probability of a pending Connect session (documented so tests can rely
on a created session completing within a few advanced days)."""

CHANGE_KINDS = (
    "to_reauth",
    "to_error",
    "recovered",
    "tokens_issued",
    "disconnected",
    "sessions_completed",
    "connections_created",
    "reauth_sessions_completed",
    "sessions_expired",
    "first_syncs",
    "syncs",
    "syncs_stalled",
    "syncs_resumed",
)


def _per_step(daily: float, fraction: float) -> float:
    return 1.0 - (1.0 - daily) ** fraction


def step_instant(start: datetime, length: timedelta, fraction: float) -> datetime:
    """A moment inside an evolution step, at seconds precision."""
    return (start + length * fraction).replace(microsecond=0)


class Evolution:
    """Drives `Lifecycle` transitions from a dedicated, seeded random stream."""

    def __init__(self, lifecycle: Lifecycle, rng: Random) -> None:
        self.lifecycle = lifecycle
        self.rng = rng

    def advance(self, start: datetime, days: float) -> tuple[datetime, dict[str, int]]:
        """Evolve from `start` over `days`; returns the new instant and counts per change."""
        changes: Counter[str] = Counter(dict.fromkeys(CHANGE_KINDS, 0))
        now = start
        remaining = days
        while remaining > 1e-9:
            fraction = min(1.0, remaining)
            end = (now + timedelta(days=fraction)).replace(microsecond=0)
            self._step(now, end, fraction, changes)
            now = end
            remaining -= fraction
        return now, dict(changes)

    def _step(self, start: datetime, end: datetime, fraction: float, changes: Counter[str]) -> None:
        self._step_connections(start, end, fraction, changes)
        self._step_sessions(start, end, fraction, changes)

    def _step_connections(
        self,
        start: datetime,
        end: datetime,
        fraction: float,
        changes: Counter[str],
    ) -> None:
        rng, life = self.rng, self.lifecycle
        length = end - start
        p_reauth = _per_step(DAILY_TO_REAUTH, fraction)
        p_perm = p_reauth + _per_step(DAILY_TO_ERROR_PERMISSIONS, fraction)
        p_setup = p_perm + _per_step(DAILY_TO_ERROR_NO_ACCOUNT_SETUP, fraction)
        p_gone = p_setup + _per_step(DAILY_DISCONNECT_HEALTHY, fraction)
        p_recover = _per_step(DAILY_RECOVER, fraction)
        p_broken_gone = p_recover + _per_step(DAILY_DISCONNECT_BROKEN, fraction)
        p_first = _per_step(DAILY_FIRST_SYNC, fraction)
        p_processed = _per_step(DAILY_PROCESSING_DONE, fraction)
        p_stall = _per_step(DAILY_STALL, fraction)
        p_unstall = _per_step(DAILY_UNSTALL, fraction)
        for connection in list(life.data.connections.values()):
            if connection.disconnected:
                continue
            draw = rng.random()
            when = step_instant(start, length, rng.random())
            status = connection.status
            if status == CONNECTED:
                if draw < p_reauth:
                    life.set_status(connection, REAUTH)
                    changes["to_reauth"] += 1
                elif draw < p_perm:
                    life.set_status(connection, ERROR_PERMISSIONS)
                    changes["to_error"] += 1
                elif draw < p_setup:
                    life.set_status(connection, ERROR_NO_ACCOUNT_SETUP)
                    changes["to_error"] += 1
                elif draw < p_gone:
                    life.disconnect(connection, when)
                    changes["disconnected"] += 1
                    continue
                elif connection.sync_stalled:
                    if rng.random() < p_unstall:
                        connection.sync_stalled = False
                        changes["syncs_resumed"] += 1
                elif rng.random() < p_stall:
                    connection.sync_stalled = True
                    changes["syncs_stalled"] += 1
            elif status in NEEDS_ACTION_STATUSES:
                if draw < p_recover:
                    reissue = (
                        REAUTH_RECOVERY_NEW_TOKEN if status == REAUTH else OTHER_RECOVERY_NEW_TOKEN
                    )
                    if rng.random() < reissue:
                        life.reconnect(connection, when)
                        changes["tokens_issued"] += 1
                    else:
                        life.set_status(connection, CONNECTED)
                        connection.sync_stalled = False
                    changes["recovered"] += 1
                elif draw < p_broken_gone:
                    life.disconnect(connection, when)
                    changes["disconnected"] += 1
                    continue
            elif draw < {PENDING: p_first, PROCESSING: p_processed}.get(status, 0.0):
                life.first_sync(connection, when)
                changes["first_syncs"] += 1
            changes["syncs"] += life.catch_up_syncs(connection, end)

    def _step_sessions(
        self,
        start: datetime,
        end: datetime,
        fraction: float,
        changes: Counter[str],
    ) -> None:
        rng, life = self.rng, self.lifecycle
        length = end - start
        p_complete = _per_step(DAILY_SESSION_COMPLETION, fraction)
        pending = [s for s in life.data.sessions.values() if s.status == SESSION_PENDING]
        for session in pending:
            completes = rng.random() < p_complete
            when = max(step_instant(start, length, rng.random()), session.created_at)
            if completes and when < session.expires_at:
                try:
                    _, _ = life.complete_session(session, when)
                except SessionNotCompletable:
                    pass
                else:
                    changes["tokens_issued"] += 1
                    if session.kind == "connect":
                        changes["sessions_completed"] += 1
                        changes["connections_created"] += 1
                    else:
                        changes["reauth_sessions_completed"] += 1
                    continue
            if session.expires_at <= end:
                session.status = SESSION_EXPIRED
                changes["sessions_expired"] += 1
