"""What a community is, as the community file says it (YAML contract in docs/contracts.md):
the plain specs an import writes (CommunitySpec and the resident, device, routine, person
and escalation specs in it), the vocabulary (device and routine kinds, roles, languages,
weekdays), CommunityError, and the parsers of times, durations and weekdays that the file,
the spreadsheet and the dashboard's forms share. A file is read into these specs by
monitor.importing.load and checked by monitor.importing.validate."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from typing import Any

from monitor.messages import N_, MessageError, Problem

DEVICE_KINDS = ("curtain", "door", "light", "help", "motion", "contact", "power", "water")
WINDOW_KINDS = ("curtain_open", "curtain_close", "light_on", "door", "activity")
ROUTINE_KINDS = (*WINDOW_KINDS, "inactivity", "help")
ROLES = ("volunteer", "staff", "family")
LANGUAGES = ("zh-CN", "en")
ESCALATION_TARGETS = ("volunteers", "staff", "family")

# Which event satisfies a routine: (device kind, value); None = any.
ROUTINE_MATCH: dict[str, tuple[str | None, str | None]] = {
    "curtain_open": ("curtain", "open"),
    "curtain_close": ("curtain", "closed"),
    "light_on": ("light", "on"),
    "door": ("door", "open"),
    "activity": (None, None),
    "inactivity": (None, None),
    "help": ("help", "help"),
}

MAX_DURATION_MIN = 7 * 24 * 60
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class CommunityError(ValueError):
    """The file was rejected; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("community file rejected:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class DeviceSpec:
    id: str
    kind: str
    light_threshold: float = 30.0


@dataclass(frozen=True)
class RoutineSpec:
    kind: str
    start: time | None = None
    end: time | None = None
    grace: timedelta = timedelta(0)
    hours: float | None = None
    # What identifies this routine of a resident across imports: its kind and its place
    # among routines of that kind, so editing a window's times updates it in place.
    slot: str = ""

    @property
    def label(self) -> str:
        if self.start is None or self.end is None:
            return self.kind
        return f"{self.kind} {self.start:%H:%M}–{self.end:%H:%M}"


@dataclass(frozen=True)
class ResidentSpec:
    id: str
    name: str
    building: str
    unit: str
    timezone: str
    devices: list[DeviceSpec] = field(default_factory=list)
    routines: list[RoutineSpec] = field(default_factory=list)
    away: list[tuple[date, date]] = field(default_factory=list)
    # Optional, for staff: how to reach the resident and whom to call.
    phone: str = ""
    contact: str = ""
    notes: str = ""


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class DutySpell:
    """On duty on these weekdays (0 = Monday) from `start` to `end` local time; an end at
    or before the start runs past midnight."""

    days: tuple[int, ...]
    start: time
    end: time


@dataclass(frozen=True)
class PersonSpec:
    id: str
    name: str
    role: str
    language: str = "zh-CN"
    buildings: list[str] = field(default_factory=list)
    resident: str | None = None
    consent: date | None = None
    notify: list[str] = field(default_factory=list)
    rota: list[DutySpell] = field(default_factory=list)
    quiet_hours: tuple[time, time] | None = None
    digest: time | None = None  # family: daily digest at this local time


@dataclass(frozen=True)
class EscalationStep:
    after: timedelta
    notify: str


@dataclass(frozen=True)
class CommunitySpec:
    timezone: str
    residents: list[ResidentSpec]
    people: list[PersonSpec] = field(default_factory=list)
    escalation: list[EscalationStep] = field(default_factory=list)


class Unparsable(MessageError):
    """A value that is not what it should be; `what` says so as a Message, its English
    text is the exception's."""


def parse_time(value: Any) -> time:
    """'07:30' -> time(7, 30). Raises Unparsable with a message fit for a person."""
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 7:30 as the base-60 number 450.
        hint = f"{value // 60:02d}:{value % 60:02d}"
        raise Unparsable(
            N_('%(value)s is not a time; write times in quotes, like "%(hint)s"'),
            value=value,
            hint=hint,
        )
    if not isinstance(value, str):
        raise Unparsable(
            N_('%(value)s is not a time (expected "HH:MM", in quotes)'), value=quoted(value)
        )
    m = _TIME.match(value.strip())
    if not m:
        raise Unparsable(
            N_('%(value)s is not a time (expected "HH:MM", 00:00 to 23:59)'), value=quoted(value)
        )
    return time(int(m.group(1)), int(m.group(2)))


def parse_duration(value: Any) -> timedelta:
    """'15m', '1h30m', '90s' or a number of minutes -> timedelta (at most a week). Raises
    Unparsable with a message fit for a person."""
    bad = Unparsable(
        N_('%(value)s is not a duration (expected like "15m" or "1h")'), value=quoted(value)
    )
    too_long = Unparsable(N_("%(value)s is longer than a week"), value=quoted(value))
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int) and value >= 0:
        minutes = value
        if minutes > MAX_DURATION_MIN:
            raise too_long
        return timedelta(minutes=minutes)
    m = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if not m or not any(m.groups()):
        raise bad
    try:
        h, mi, s = (int(g) if g else 0 for g in m.groups())
    except ValueError:  # more digits than Python turns into an int
        raise too_long from None
    # Whole seconds: a float of a 400-digit number overflows.
    if h * 3600 + mi * 60 + s > MAX_DURATION_MIN * 60:
        raise too_long
    return timedelta(hours=h, minutes=mi, seconds=s)


def numbered_slots(routines: list[RoutineSpec]) -> list[RoutineSpec]:
    seen: dict[str, int] = {}
    numbered = []
    for x in routines:
        n = seen.get(x.kind, 0)
        seen[x.kind] = n + 1
        numbered.append(replace(x, slot=f"{x.kind}#{n}"))
    return numbered


def parse_weekdays(raw: Any) -> tuple[int, ...] | None:
    """[mon, wed], "mon-fri" or "sat" -> weekday numbers (Monday = 0)."""
    items = raw if isinstance(raw, list) else [raw]
    days: list[int] = []
    for item in items:
        if not isinstance(item, str):
            return None
        first, _, last = item.strip().lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            return None
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return tuple(sorted(set(days))) or None


def quoted(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)
