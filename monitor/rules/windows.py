"""Routine windows in a resident's own time zone, as UTC instants. Pure functions.

A window belongs to a local date. Wall times that do not exist that day (the clock jumped
forward over them) are read with the offset from before the jump, i.e. shifted forward by
the jump; wall times that happen twice (the clock went back) take the first occurrence.
Because a settlement is keyed by the window's date, a window settles once either way."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo


class Window(NamedTuple):
    day: date
    opens_at: datetime  # UTC
    due_at: datetime  # UTC: end + grace; unsatisfied by then means missed


def wall_time(text: str | None) -> time:
    """A stored "HH:MM" (already validated on import) as a time."""
    assert text is not None, "a stored wall time is always set where it is read"
    h, m = text.split(":")
    return time(int(h), int(m))


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `wall` on `day` in `tz` (see module doc for gaps/folds)."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def window_on(day: date, start: time, end: time, grace: timedelta, tz: ZoneInfo) -> Window:
    """The window of local date `day`; an end at or before the start is on the next day."""
    end_day = day + timedelta(days=1) if end <= start else day
    return Window(day, local_instant(day, start, tz), local_instant(end_day, end, tz) + grace)


def first_window_due_after(
    moment: datetime, start: time, end: time, grace: timedelta, tz: ZoneInfo
) -> Window:
    """The earliest window whose due time is strictly after `moment`."""
    day = moment.astimezone(tz).date() - timedelta(days=2)
    while True:
        w = window_on(day, start, end, grace, tz)
        if w.due_at > moment:
            return w
        day += timedelta(days=1)


def inactivity_due(last_activity: datetime, hours: float) -> datetime:
    """When a resident silent since `last_activity` is overdue: `hours` later, rounded up
    to the whole minute. The scheduler ticks every 30 s, so that delays no alert by more
    than a minute, and a resident moving about (a motion sensor reports every few seconds)
    re-arms the routine once a minute instead of at every event."""
    due = last_activity.astimezone(UTC) + timedelta(hours=hours)  # elapsed time, not wall time
    past = timedelta(seconds=due.second, microseconds=due.microsecond)
    return due - past + timedelta(minutes=1) if past else due


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def next_daily(at: time, tz: ZoneInfo, after: datetime) -> datetime:
    """The first local wall time `at` strictly after `after` (for daily jobs like digests)."""
    day = after.astimezone(tz).date()
    while True:
        moment = datetime.combine(day, at, tz)
        if moment > after:
            return moment
        day += timedelta(days=1)
