"""The community file (YAML contract in docs/contracts.md): parse and validate it into plain
specs. A file with any problem is rejected whole, with every problem named by its path,
e.g. `residents[2].routines[0].end: "25:00" is not a time`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from monitor.messages import N_, VERBATIM, MessageError, Problem

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


class _Loader(yaml.SafeLoader):
    """SafeLoader that leaves dates as text: YAML's own date reader fails without saying
    where (an unquoted 2026-02-30), so dates are checked here, with their path."""


_Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_community(text: str) -> CommunitySpec:
    """Parse YAML text into a CommunitySpec, or raise CommunityError naming every problem."""
    if not text.strip():
        raise CommunityError([Problem(None, (N_("the file is empty"), {}))])
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = (
            (
                N_("line %(line)s, column %(column)s"),
                {"line": mark.line + 1, "column": mark.column + 1},
            )
            if mark
            else None
        )
        problem = getattr(exc, "problem", None) or str(exc)
        if "\\t" in problem or "\t" in problem:
            what = N_("not valid YAML (%(problem)s; indent with spaces, not tabs)")
        else:
            what = N_("not valid YAML (%(problem)s)")
        raise CommunityError([Problem(where, (what, {"problem": problem}))]) from None
    return check_community(raw)


def check_community(raw: Any) -> CommunitySpec:
    """Validate data already parsed into the file's shape (mappings, lists, text), by the
    very rules of load_community: the spreadsheet reader builds this shape row by row."""
    v = _Validator()
    spec = v.community(raw)
    if v.problems or spec is None:
        raise CommunityError(v.problems or [Problem(None, (N_("the file is empty"), {}))])
    return spec


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
            N_('%(value)s is not a time (expected "HH:MM", in quotes)'), value=_show(value)
        )
    m = _TIME.match(value.strip())
    if not m:
        raise Unparsable(
            N_('%(value)s is not a time (expected "HH:MM", 00:00 to 23:59)'), value=_show(value)
        )
    return time(int(m.group(1)), int(m.group(2)))


def parse_duration(value: Any) -> timedelta:
    """'15m', '1h30m', '90s' or a number of minutes -> timedelta (at most a week). Raises
    Unparsable with a message fit for a person."""
    bad = Unparsable(
        N_('%(value)s is not a duration (expected like "15m" or "1h")'), value=_show(value)
    )
    too_long = Unparsable(N_("%(value)s is longer than a week"), value=_show(value))
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


def _dicts(raw: Any) -> list[dict[str, Any]]:
    """The mappings in a list, quietly (the list itself is checked where it is read)."""
    return [x for x in raw if isinstance(x, dict)] if isinstance(raw, list) else []


def _numbered(routines: list[RoutineSpec]) -> list[RoutineSpec]:
    seen: dict[str, int] = {}
    numbered = []
    for x in routines:
        n = seen.get(x.kind, 0)
        seen[x.kind] = n + 1
        numbered.append(replace(x, slot=f"{x.kind}#{n}"))
    return numbered


def _weekdays(raw: Any) -> tuple[int, ...] | None:
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


def _show(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


class _Validator:
    """Walks the raw YAML, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, where: str, msgid: str, **params: Any) -> None:
        self.problems.append(Problem.at(where, msgid, **params))

    def mapping(self, raw: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.bad(path, N_("expected a mapping, got %(value)s"), value=_show(raw))
            return None
        for key in raw:
            if key not in allowed:
                self.bad(
                    f"{path}.{key}",
                    N_("unknown field (allowed: %(allowed)s)"),
                    allowed=", ".join(allowed),
                )
        return raw

    def items(self, raw: Any, path: str) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.bad(path, N_("expected a list, got %(value)s"), value=_show(raw))
            return []
        return raw

    def text(self, raw: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.bad(f"{path}.{key}", N_("is missing"))
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.bad(f"{path}.{key}", N_("%(value)s is not text"), value=_show(value))
            return None
        text = str(value).strip()
        if not text:
            self.bad(f"{path}.{key}", N_("is empty"))
            return None
        return text

    def zone(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.bad(
                path, N_('%(value)s is not a time zone (like "Asia/Shanghai")'), value=_show(value)
            )
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.bad(
                path,
                N_('%(value)s is not a known time zone (like "Asia/Shanghai")'),
                value=_show(value),
            )
            return None
        return value

    def day(self, value: Any, path: str) -> date | None:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.bad(
                path, N_('%(value)s is not a date (expected "YYYY-MM-DD")'), value=_show(value)
            )
            return None

    def community(self, raw: Any) -> CommunitySpec | None:
        top = self.mapping(raw, "(file)", ("timezone", "residents", "people", "escalation"))
        if top is None:
            return None
        tz = self.zone(top["timezone"], "timezone") if "timezone" in top else None
        if "timezone" not in top:
            self.bad(
                "timezone", N_('is missing (the community\'s time zone, like "Asia/Shanghai")')
            )
        residents = [
            r
            for i, item in enumerate(self.items(top.get("residents"), "residents"))
            if (r := self.resident(item, f"residents[{i}]", tz or "UTC")) is not None
        ]
        raw_residents = _dicts(top.get("residents"))
        self.unique(
            [(f"residents[{i}]", str(x.get("id"))) for i, x in enumerate(raw_residents)],
            N_("resident id %(value)s is already used by %(first)s"),
        )
        self.unique(
            [
                (f"residents[{i}].devices[{j}]", str(d.get("id")))
                for i, x in enumerate(raw_residents)
                for j, d in enumerate(_dicts(x.get("devices")))
            ],
            N_("device id %(value)s is already used by %(first)s"),
        )
        # Family members are checked against every resident named in the file, valid or not,
        # so a problem in a resident is not blamed on their family too.
        named = {str(x.get("id")) for x in raw_residents}
        raw_people = self.items(top.get("people"), "people")
        people = [
            p
            for i, item in enumerate(raw_people)
            if (p := self.person(item, f"people[{i}]", named)) is not None
        ]
        self.unique(
            [
                (f"people[{i}]", str(x.get("id")))
                for i, x in enumerate(raw_people)
                if isinstance(x, dict)
            ],
            N_("person id %(value)s is already used by %(first)s"),
        )
        escalation = [
            s
            for i, item in enumerate(self.items(top.get("escalation"), "escalation"))
            if (s := self.step(item, f"escalation[{i}]")) is not None
        ]
        if tz is None:
            return None
        return CommunitySpec(tz, residents, people, escalation)

    def unique(self, places: list[tuple[str, str]], msgid: str) -> None:
        """`msgid` says "%(value)s is already used by %(first)s" of the thing named."""
        first: dict[str, str] = {}
        for path, ident in places:
            if ident == "None":
                continue  # reported as missing already
            if ident in first:
                self.bad(path, msgid, value=_show(ident), first=first[ident])
            else:
                first[ident] = path

    def resident(self, raw: Any, path: str, default_tz: str) -> ResidentSpec | None:
        fields = (
            "id",
            "name",
            "building",
            "unit",
            "timezone",
            "devices",
            "routines",
            "away",
            "phone",
            "contact",
            "notes",
        )
        r = self.mapping(raw, path, fields)
        if r is None:
            return None
        before = len(self.problems)
        rid = self.text(r, "id", path)
        name = self.text(r, "name", path) or rid
        building = self.text(r, "building", path)
        unit = self.text(r, "unit", path, required=False) or ""
        phone, contact, notes = (
            self.text(r, key, path, required=False) or "" for key in ("phone", "contact", "notes")
        )
        tz = self.zone(r["timezone"], f"{path}.timezone") if "timezone" in r else default_tz
        devices = [
            d
            for i, item in enumerate(self.items(r.get("devices"), f"{path}.devices"))
            if (d := self.device(item, f"{path}.devices[{i}]")) is not None
        ]
        raw_kinds = {d.get("kind") for d in _dicts(r.get("devices"))}
        routines = [
            x
            for i, item in enumerate(self.items(r.get("routines"), f"{path}.routines"))
            if (x := self.routine(item, f"{path}.routines[{i}]", raw_kinds)) is not None
        ]
        self.unique(
            [(f"{path}.routines[{i}]", x.label) for i, x in enumerate(routines)],
            N_("routine %(value)s is already used by %(first)s"),
        )
        routines = _numbered(routines)
        if any(d.kind == "help" for d in devices) and not any(x.kind == "help" for x in routines):
            routines.append(RoutineSpec("help", slot="help#0"))  # on by default with a card
        away = [
            a
            for i, item in enumerate(self.items(r.get("away"), f"{path}.away"))
            if (a := self.away(item, f"{path}.away[{i}]")) is not None
        ]
        if len(self.problems) > before or rid is None or building is None or tz is None:
            return None
        return ResidentSpec(
            rid, name or rid, building, unit, tz, devices, routines, away, phone, contact, notes
        )

    def device(self, raw: Any, path: str) -> DeviceSpec | None:
        d = self.mapping(raw, path, ("id", "kind", "light_threshold"))
        if d is None:
            return None
        did = self.text(d, "id", path)
        kind = d.get("kind")
        if kind is None:
            self.bad(
                f"{path}.kind", N_("is missing (%(choices)s)"), choices=", ".join(DEVICE_KINDS)
            )
            return None
        if kind not in DEVICE_KINDS:
            self.bad(
                f"{path}.kind",
                N_("%(value)s is not a device kind (%(choices)s)"),
                value=_show(kind),
                choices=", ".join(DEVICE_KINDS),
            )
            return None
        threshold = d.get("light_threshold", 30.0)
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not math.isfinite(threshold)
            or threshold < 0
        ):
            self.bad(
                f"{path}.light_threshold",
                N_("%(value)s is not a number of lux"),
                value=_show(threshold),
            )
            return None
        return DeviceSpec(did, kind, float(threshold)) if did else None

    def routine(self, raw: Any, path: str, device_kinds: set[Any]) -> RoutineSpec | None:
        x = self.mapping(raw, path, ("kind", "start", "end", "grace", "hours"))
        if x is None:
            return None
        kind = x.get("kind")
        if kind is None:
            self.bad(
                f"{path}.kind", N_("is missing (%(choices)s)"), choices=", ".join(ROUTINE_KINDS)
            )
            return None
        if kind not in ROUTINE_KINDS:
            self.bad(
                f"{path}.kind",
                N_("%(value)s is not a routine kind (%(choices)s)"),
                value=_show(kind),
                choices=", ".join(ROUTINE_KINDS),
            )
            return None
        needed = ROUTINE_MATCH[kind][0]
        if (needed and needed not in device_kinds) or not device_kinds:
            if needed:
                msgid = N_("routine %(kind)s needs a %(device)s device, and this resident has none")
            else:
                msgid = N_("routine %(kind)s needs at least one device, and this resident has none")
            self.bad(f"{path}.kind", msgid, kind=kind, device=needed)
        if kind == "inactivity":
            hours = x.get("hours")
            if hours is None:
                self.bad(f"{path}.hours", N_("is missing (how many hours without activity)"))
                return None
            if (
                isinstance(hours, bool)
                or not isinstance(hours, int | float)
                or not 0 < hours <= 168
            ):
                self.bad(
                    f"{path}.hours",
                    N_("%(value)s is not a number of hours (more than 0, at most 168)"),
                    value=_show(hours),
                )
                return None
            return RoutineSpec(kind, hours=float(hours))
        if kind == "help":
            return RoutineSpec(kind)
        start = self.field(x, "start", path, parse_time)
        end = self.field(x, "end", path, parse_time)
        grace = self.field(x, "grace", path, parse_duration, default=timedelta(0))
        if start is None or end is None or grace is None:
            return None
        if start == end:
            self.bad(
                f"{path}.end",
                N_("the window %(start)s–%(end)s is empty"),
                start=f"{start:%H:%M}",
                end=f"{end:%H:%M}",
            )
            return None
        if grace > timedelta(hours=12):
            self.bad(
                f"{path}.grace",
                N_("%(value)s is longer than the 12 hours grace allows"),
                value=_show(x["grace"]),
            )
            return None
        return RoutineSpec(kind, start, end, grace)

    def field(
        self, raw: dict[str, Any], key: str, path: str, parse: Any, default: Any = None
    ) -> Any:
        if key not in raw:
            if default is None:
                self.bad(f"{path}.{key}", N_("is missing"))
            return default
        try:
            return parse(raw[key])
        except Unparsable as exc:
            msgid, params = exc.what
            self.bad(f"{path}.{key}", msgid, **params)
            return None
        except (ValueError, OverflowError) as exc:  # a parser's own limit: said as it is
            self.bad(f"{path}.{key}", VERBATIM, text=str(exc))
            return None

    def away(self, raw: Any, path: str) -> tuple[date, date] | None:
        a = self.mapping(raw, path, ("from", "to"))
        if a is None:
            return None
        if "from" not in a or "to" not in a:
            self.bad(path, N_("needs both from and to dates"))
            return None
        first, last = self.day(a["from"], f"{path}.from"), self.day(a["to"], f"{path}.to")
        if first and last and last < first:
            self.bad(
                f"{path}.to", N_("%(last)s is before %(first)s"), last=str(last), first=str(first)
            )
            return None
        return (first, last) if first and last else None

    def person(self, raw: Any, path: str, residents: set[str]) -> PersonSpec | None:
        fields = (
            "id",
            "name",
            "role",
            "language",
            "buildings",
            "resident",
            "consent",
            "notify",
            "rota",
            "quiet_hours",
            "digest",
        )
        p = self.mapping(raw, path, fields)
        if p is None:
            return None
        before = len(self.problems)
        pid, name = self.text(p, "id", path), self.text(p, "name", path)
        role = p.get("role")
        if role is None:
            self.bad(f"{path}.role", N_("is missing (%(choices)s)"), choices=", ".join(ROLES))
        elif role not in ROLES:
            self.bad(
                f"{path}.role",
                N_("%(value)s is not a role (%(choices)s)"),
                value=_show(role),
                choices=", ".join(ROLES),
            )
        language = p.get("language", "zh-CN")
        if language not in LANGUAGES:
            self.bad(
                f"{path}.language",
                N_("%(value)s is not a language (%(choices)s)"),
                value=_show(language),
                choices=", ".join(LANGUAGES),
            )
        buildings = [str(b) for b in self.items(p.get("buildings"), f"{path}.buildings")]
        notify = self.items(p.get("notify"), f"{path}.notify")
        for i, url in enumerate(notify):
            if not isinstance(url, str) or "://" not in url:
                self.bad(
                    f"{path}.notify[{i}]",
                    N_('%(value)s is not a notification URL (like "ntfy://host/topic")'),
                    value=_show(url),
                )
        resident = p.get("resident")
        consent = self.day(p["consent"], f"{path}.consent") if p.get("consent") else None
        if role == "family" and resident not in residents:
            self.bad(
                f"{path}.resident",
                N_("%(value)s is not a resident in this file"),
                value=_show(resident),
            )
        if role == "volunteer" and not buildings:
            self.bad(f"{path}.buildings", N_("a volunteer needs the buildings they cover"))
        rota = [
            spell
            for i, item in enumerate(self.items(p.get("rota"), f"{path}.rota"))
            if (spell := self.spell(item, f"{path}.rota[{i}]")) is not None
        ]
        quiet = None
        if p.get("quiet_hours") is not None:
            q = self.mapping(p["quiet_hours"], f"{path}.quiet_hours", ("from", "to"))
            if q is not None:
                qs = self.field(q, "from", f"{path}.quiet_hours", parse_time)
                qe = self.field(q, "to", f"{path}.quiet_hours", parse_time)
                quiet = (qs, qe) if qs is not None and qe is not None else None
        digest = self.field(p, "digest", path, parse_time) if "digest" in p else None
        if digest is not None and role != "family":
            self.bad(f"{path}.digest", N_("only family members receive a daily digest"))
        if len(self.problems) > before or pid is None or name is None:
            return None
        return PersonSpec(
            pid,
            name,
            str(role),
            str(language),
            buildings,
            str(resident) if resident else None,
            consent,
            [str(u) for u in notify],
            rota,
            quiet,
            digest,
        )

    def spell(self, raw: Any, path: str) -> DutySpell | None:
        r = self.mapping(raw, path, ("days", "from", "to"))
        if r is None:
            return None
        days = _weekdays(r.get("days", "mon-sun"))
        if days is None:
            self.bad(
                f"{path}.days",
                N_('%(value)s is not a list of weekdays (like [mon, wed] or "mon-fri")'),
                value=_show(r.get("days")),
            )
        start = self.field(r, "from", path, parse_time)
        end = self.field(r, "to", path, parse_time)
        if days is None or start is None or end is None:
            return None
        return DutySpell(days, start, end)

    def step(self, raw: Any, path: str) -> EscalationStep | None:
        s = self.mapping(raw, path, ("after", "notify"))
        if s is None:
            return None
        after = self.field(s, "after", path, parse_duration)
        target = s.get("notify")
        if target not in ESCALATION_TARGETS:
            self.bad(
                f"{path}.notify",
                N_("%(value)s is not one of %(choices)s"),
                value=_show(target),
                choices=", ".join(ESCALATION_TARGETS),
            )
            return None
        return EscalationStep(after, target) if after is not None else None
