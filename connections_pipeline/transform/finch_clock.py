"""Whose clock a snapshot's time is, and when Finch's `Date` headers cannot be trusted.

A snapshot's `as_of` is Finch's clock (the `Date` headers of its answers), not this
machine's: staleness, session expiry and SCD2 validity are all judged on it. But one wrong
header (a proxy's, a misconfigured server's) would date the snapshot years away, and every
file named after it with it. So each answer's date is checked against a reference, and the
answers more than `tolerance` from it are ignored:

- against Finch, the reference is this machine's clock while the answers came in: a run
  whose answers are mostly that far off is held ("Finch's clock is X off this machine's"),
  one wild header among sane ones is ignored;
- against an emulator keeping a simulated clock (legitimately days or years from this
  machine's), the reference is the middle answer's date (the low median), so only answers
  far from the others are ignored and the run is never held for its clock.

`as_of` is the latest trusted date: the moment the snapshot was complete. A missing or
unreadable header is counted and named; when no answer carries a usable one, this
machine's clock stands in, and the reading says so.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CLOCK_TOLERANCE = timedelta(hours=24)
FINCH_CLOCK = "Finch's clock"
MACHINE_CLOCK = "this machine's clock"
_SHOWN_TIME = "%Y-%m-%d %H:%M:%S UTC"


@dataclass(frozen=True)
class ClockRule:
    """How far an answer's `Date` may be from the reference before it is ignored.

    Attributes:
        tolerance: the distance, either way.
        simulated_clock: how the summary names the clock of a Finch emulator that keeps a
            simulated one (e.g. "the embedded Finch sandbox's simulated clock"); None for
            Finch, whose clock must agree with this machine's.
    """

    tolerance: timedelta = CLOCK_TOLERANCE
    simulated_clock: str | None = None


@dataclass(frozen=True)
class HeaderDates:
    """The `Date` headers of a run's answers: the readable ones, and how many were not.

    Attributes:
        dates: each readable header, as a UTC time.
        missing: answers without a `Date` header.
        unreadable: answers whose `Date` header is not an HTTP date.
    """

    dates: tuple[datetime, ...] = ()
    missing: int = 0
    unreadable: int = 0

    @property
    def answers(self) -> int:
        return len(self.dates) + self.missing + self.unreadable


@dataclass(frozen=True)
class ClockReading:
    """The snapshot's time and whose clock it is.

    Attributes:
        as_of: the snapshot's time (UTC).
        clock: whose clock `as_of` is, with the headers that were ignored, missing or
            unreadable, as the run summary and the report say it.
        earliest, latest: the trusted window; a time of the run outside it (an answer's
            `fetched_at`) came from an ignored header or from this machine's clock.
        held: why the run cannot be trusted (Finch's clock and this machine's disagree),
            None when it can.
    """

    as_of: datetime
    clock: str
    earliest: datetime
    latest: datetime
    held: str | None = None


def read_clock(
    headers: HeaderDates, machine: tuple[datetime, datetime], rule: ClockRule
) -> ClockReading:
    """The snapshot's time from the answers' `Date` headers.

    Args:
        headers: the `Date` headers of the answers that tell the snapshot's time.
        machine: this machine's clock when the first call was sent and when the last
            answer came in (UTC).
        rule: the tolerance, and whether the Finch answering keeps a simulated clock.
    """
    started, ended = machine
    tolerance = rule.tolerance
    name = rule.simulated_clock or FINCH_CLOCK
    if not headers.dates:
        return ClockReading(
            as_of=ended,
            clock=f"{MACHINE_CLOCK}: {_no_dates(headers)}",
            earliest=started,
            latest=ended,
        )
    if rule.simulated_clock is not None:
        middle = sorted(headers.dates)[(len(headers.dates) - 1) // 2]
        earliest, latest = middle - tolerance, middle + tolerance
        reference = "the other answers"
    else:
        earliest, latest = started - tolerance, ended + tolerance
        reference = MACHINE_CLOCK
    trusted = [date for date in headers.dates if earliest <= date <= latest]
    ignored = [date for date in headers.dates if not earliest <= date <= latest]
    if len(ignored) * 2 > len(headers.dates):
        offset = _middle_offset(ignored, started, ended)
        reason = (
            f"Finch's clock is {_span(offset)} {'ahead of' if offset > timedelta(0) else 'behind'} "
            f"this machine's ({len(ignored)} of {len(headers.dates)} Date headers more than "
            f"{_span(tolerance)} off, e.g. {_shown(ignored[len(ignored) // 2])}; this "
            f"machine's: {_shown(ended)}): check this machine's clock (NTP) and FINCH_BASE_URL"
        )
        return ClockReading(
            as_of=ended,
            clock=f"{MACHINE_CLOCK}: {reason}",
            earliest=started,
            latest=ended,
            held=reason,
        )
    notes = []
    if ignored:
        shown = ", ".join(_shown(date) for date in sorted(ignored)[:3])
        notes.append(
            f"ignored {len(ignored)} of {len(headers.dates)} Date headers more than "
            f"{_span(tolerance)} from {reference} ({shown})"
        )
    if headers.missing or headers.unreadable:
        notes.append(_no_dates(headers, of=headers.answers))
    return ClockReading(
        as_of=max(trusted),
        clock="; ".join([name, *notes]),
        earliest=earliest,
        latest=latest,
    )


def _no_dates(headers: HeaderDates, of: int | None = None) -> str:
    if not headers.answers:
        return "no call got an answer from Finch"
    parts = []
    if headers.missing:
        parts.append(f"{headers.missing} without a Date header")
    if headers.unreadable:
        parts.append(f"{headers.unreadable} with an unreadable one")
    if of is None:
        return f"no answer carried a readable Date header ({', '.join(parts)})"
    return f"of {of} answers, {' and '.join(parts)}"


def _middle_offset(dates: Sequence[datetime], started: datetime, ended: datetime) -> timedelta:
    """How far the middle of `dates` is from this machine's clock during the run."""
    middle = sorted(dates)[(len(dates) - 1) // 2]
    if middle > ended:
        return middle - ended
    return middle - started


def _span(offset: timedelta) -> str:
    size = abs(offset)
    if size >= timedelta(days=2):
        return f"{size.days:,} days"
    hours = size.total_seconds() / 3600
    return f"{hours:,.0f} h" if hours >= 1 else f"{size.total_seconds():,.0f} s"


def _shown(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_SHOWN_TIME)
