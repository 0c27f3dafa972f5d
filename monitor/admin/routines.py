"""Editing a resident's routines and away periods by hand (the dashboard's forms).

Input is what a person typed; every problem comes back as a `Problem` naming the field,
with a code the web layer turns into a sentence in the reader's language (and an English
`message` for everyone else). Nothing is written unless the whole edit is valid.

A changed routine is rescheduled by the importer's own rule (`schedule_routine`), so a
hand edit and a re-import agree on the next window: it is the first window that has not
closed yet, and never a day already settled (settlements are unique per routine and due
time, so a window settled today is not reopened by moving it). Each change writes an
AuditEntry: who, what, old -> new.

A re-import of the community file replaces these edits (routines and away periods come
from the file); the page says so."""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as default
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.audit import record
from monitor.importing.apply import schedule_routine
from monitor.importing.community import WINDOW_KINDS, RoutineSpec, parse_duration, parse_time
from monitor.models import AwayPeriod, Resident, Routine
from monitor.rules.windows import local_date

MAX_HOURS = 168.0
MAX_AWAY_DAYS = 366
# "Clearly overnight": an end before the start is read as past midnight only from an
# afternoon or evening start to a morning end; 09:00-08:00 is far likelier a typo than a
# 23-hour window.
NOON = time(12, 0)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an edit. `field` is the form field it belongs to; `code` says
    what is wrong; `params` fill the sentence (value typed, dates of a clash...)."""

    field: str
    code: str
    message: str
    params: dict[str, str] = default(default_factory=dict)


@dataclass
class EditResult:
    problems: list[Problem] = default(default_factory=list)
    changes: list[str] = default(default_factory=list)  # "start 07:00 → 08:00", for audit and flash

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RoutineForm:
    """What the routine form sent. None = field not on the form (kept as it is)."""

    start: str | None = None
    end: str | None = None
    grace: str | None = None
    hours: str | None = None
    active: bool | None = None


def format_duration(seconds: int) -> str:
    """A grace in the form's own notation: 0m, 15m, 1h, 1h30m, 90s."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return text or "0m"


def editable(kind: str) -> bool:
    """Help is immediate and always on while a help device exists: nothing to edit."""
    return kind in WINDOW_KINDS or kind == "inactivity"


def edit_routine(
    session: Session,
    resident_id: str,
    routine_id: int,
    form: RoutineForm,
    actor: str,
    now: datetime,
) -> EditResult:
    """Validate `form`, apply it to the routine and reschedule it; audit what changed."""
    routine = session.scalar(
        select(Routine).where(Routine.id == routine_id, Routine.resident_id == resident_id)
    )
    if routine is None:
        return EditResult([Problem("routine", "not_found", "There is no such routine.")])
    if not editable(routine.kind):
        return EditResult(
            [Problem("routine", "not_editable", f"A {routine.kind} routine has nothing to edit.")]
        )

    problems: list[Problem] = []
    start = end = None
    grace = timedelta(seconds=routine.grace_s)
    hours = routine.hours
    if routine.kind == "inactivity":
        hours = _hours(form.hours if form.hours is not None else str(routine.hours), problems)
    else:
        start = _time("start", form.start if form.start is not None else routine.start, problems)
        end = _time("end", form.end if form.end is not None else routine.end, problems)
        if form.grace is not None:
            grace = _grace(form.grace, problems)
        if start is not None and end is not None:
            _check_window(start, end, problems)
    if problems:
        return EditResult(problems)
    active = routine.active if form.active is None else form.active

    old = {
        "start": routine.start,
        "end": routine.end,
        "grace": format_duration(routine.grace_s),
        "hours": _show_hours(routine.hours),
        "active": _on_off(routine.active),
    }
    new = {
        "start": f"{start:%H:%M}" if start else None,
        "end": f"{end:%H:%M}" if end else None,
        "grace": format_duration(int(grace.total_seconds())),
        "hours": _show_hours(hours),
        "active": _on_off(active),
    }
    changes = [f"{k} {old[k] or '-'} → {new[k] or '-'}" for k in old if old[k] != new[k]]
    if not changes:
        return EditResult()

    before_due = routine.next_due_at
    spec = RoutineSpec(routine.kind, start, end, grace, hours, slot=routine.slot)
    schedule_routine(session, routine, spec, routine.timezone, now)
    if not active:
        # Paused like a routine that left the file: never due, so never settled.
        routine.pause()
    session.flush()
    if before_due != routine.next_due_at:
        changes.append(f"next due {_iso(before_due)} → {_iso(routine.next_due_at)}")
    record(session, actor, "routine.edit", f"{resident_id} {routine.slot}", "; ".join(changes), now)
    return EditResult(changes=changes)


def add_away(
    session: Session, resident_id: str, first: str, last: str, actor: str, now: datetime
) -> EditResult:
    """Add an away period (local dates, both days included). Windows whose date falls in
    it settle `away` when the engine reaches them; nothing needs rescheduling."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        return EditResult([Problem("away", "not_found", "There is no such resident.")])
    problems: list[Problem] = []
    first_day = _day("first_day", first, problems)
    last_day = _day("last_day", last, problems)
    if first_day is None or last_day is None:
        return EditResult(problems)
    today = local_date(now, ZoneInfo(resident.timezone))
    if last_day < first_day:
        problems.append(Problem("last_day", "away_order", "The last day is before the first day."))
    elif last_day < today:
        problems.append(Problem("last_day", "away_past", "This period is already over."))
    elif (last_day - first_day).days >= MAX_AWAY_DAYS:
        problems.append(Problem("last_day", "away_long", "An away period can last at most a year."))
    else:
        clash = session.scalar(
            select(AwayPeriod)
            .where(
                AwayPeriod.resident_id == resident_id,
                AwayPeriod.first_day <= last_day,
                AwayPeriod.last_day >= first_day,
            )
            .order_by(AwayPeriod.first_day)
            .limit(1)
        )
        if clash is not None:
            a, b = clash.first_day.isoformat(), clash.last_day.isoformat()
            problems.append(
                Problem(
                    "first_day",
                    "away_overlap",
                    f"It overlaps the away period {a} to {b}.",
                    {"first": a, "last": b},
                )
            )
    if problems:
        return EditResult(problems)
    session.add(AwayPeriod(resident_id=resident_id, first_day=first_day, last_day=last_day))
    change = f"away {first_day.isoformat()} to {last_day.isoformat()}"
    record(session, actor, "away.add", resident_id, change, now)
    return EditResult(changes=[change])


def remove_away(
    session: Session, resident_id: str, away_id: int, actor: str, now: datetime
) -> EditResult:
    """Remove an away period. Windows it already settled as `away` stay settled."""
    away = session.scalar(
        select(AwayPeriod).where(AwayPeriod.id == away_id, AwayPeriod.resident_id == resident_id)
    )
    if away is None:
        return EditResult([Problem("away", "not_found", "There is no such away period.")])
    change = f"away {away.first_day.isoformat()} to {away.last_day.isoformat()} removed"
    session.delete(away)
    record(session, actor, "away.remove", resident_id, change, now)
    return EditResult(changes=[change])


# -- parsing -------------------------------------------------------------------------------


def _time(name: str, raw: str | None, problems: list[Problem]) -> time | None:
    text = (raw or "").strip()
    if not text:
        problems.append(Problem(name, "required", "Enter a time like 07:30."))
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        problems.append(Problem(name, "time", str(exc), {"value": text}))
        return None


def _grace(raw: str, problems: list[Problem]) -> timedelta:
    text = raw.strip()
    if not text:
        return timedelta(0)
    try:
        # A bare number is minutes, as in the community file.
        return parse_duration(int(text) if text.isdigit() else text)
    except ValueError as exc:
        code = "duration_long" if "longer than" in str(exc) else "duration"
        problems.append(Problem("grace", code, str(exc), {"value": text}))
        return timedelta(0)


def _hours(raw: str | None, problems: list[Problem]) -> float | None:
    text = (raw or "").strip()
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or not 0 < hours <= MAX_HOURS:
        problems.append(
            Problem(
                "hours",
                "hours",
                f'"{text}" is not a number of hours (more than 0, at most 168)',
                {"value": text},
            )
        )
        return None
    return hours


def _day(name: str, raw: str, problems: list[Problem]) -> date | None:
    text = (raw or "").strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(
            Problem(name, "date", f'"{text}" is not a date (expected YYYY-MM-DD)', {"value": text})
        )
        return None


def _check_window(start: time, end: time, problems: list[Problem]) -> None:
    if start == end:
        problems.append(Problem("end", "window_empty", "The window must end after it starts."))
    elif end < start and not (start >= NOON and end <= NOON):
        problems.append(
            Problem(
                "end",
                "window_backwards",
                "The window ends before it starts. A window can run past midnight only "
                "from a start at 12:00 or later to an end at 12:00 or earlier.",
            )
        )


def _show_hours(hours: float | None) -> str | None:
    return None if hours is None else f"{hours:g}h"


def _on_off(active: bool) -> str:
    return "on" if active else "off"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "-"
