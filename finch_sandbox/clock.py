"""The emulator's virtual clock and the one timestamp format it speaks.

Finch data (connection times, syncs, session expiry) lives on a virtual clock that only moves
when the dataset is advanced, so a test can freeze "now", jump 30 days, and compare against a
ground truth computed for exactly that instant. Rate-limit windows deliberately do NOT use this
clock (see `rate_limits`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime


def floor_to_day(moment: datetime) -> datetime:
    """Midnight UTC of `moment`'s day: the default start keeps a whole day's runs identical."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def iso_z(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with seconds precision and a `Z` suffix, the only format the emulator emits."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def http_date(moment: datetime) -> str:
    """RFC 9110 HTTP-date, for the `Date` response header."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


class VirtualClock:
    """A UTC clock frozen between explicit advances."""

    __slots__ = ("_date_header", "_now", "start")

    def __init__(self, start: datetime) -> None:
        self.start = start.astimezone(UTC).replace(microsecond=0)
        self._now = self.start
        self._date_header = http_date(self._now)

    @property
    def now(self) -> datetime:
        return self._now

    @property
    def date_header(self) -> str:
        """`now` as an HTTP-date, cached because every response carries it."""
        return self._date_header

    def advance_to(self, moment: datetime) -> None:
        if moment < self._now:
            raise ValueError("the virtual clock never moves backwards")
        self._now = moment.replace(microsecond=0)
        self._date_header = http_date(self._now)

    def advance(self, delta: timedelta) -> None:
        self.advance_to(self._now + delta)
