"""The rules of the community file: `check_community` checks data in the file's shape
(mappings, lists, text: the YAML as monitor.importing.load parses it, or one spreadsheet
row as monitor.importing.spreadsheet.rows builds it) into the specs of
monitor.importing.community. `_Validator` walks it collecting every problem instead of
stopping at the first; a file with any problem is rejected whole (CommunityError), each
problem named by its path, e.g. `residents[2].routines[0].end: "25:00" is not a time`."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.importing.community import (
    DEVICE_KINDS,
    ESCALATION_TARGETS,
    LANGUAGES,
    ROLES,
    ROUTINE_KINDS,
    ROUTINE_MATCH,
    CommunityError,
    CommunitySpec,
    DeviceSpec,
    DutySpell,
    EscalationStep,
    PersonSpec,
    ResidentSpec,
    RoutineSpec,
    Unparsable,
    numbered_slots,
    parse_duration,
    parse_time,
    parse_weekdays,
    quoted,
)
from monitor.messages import N_, VERBATIM, Problem


def check_community(raw: Any) -> CommunitySpec:
    """Validate data already parsed into the file's shape (mappings, lists, text), by the
    very rules of load_community: the spreadsheet reader builds this shape row by row."""
    v = _Validator()
    spec = v.community(raw)
    if v.problems or spec is None:
        raise CommunityError(v.problems or [Problem(None, (N_("the file is empty"), {}))])
    return spec


def _dicts(raw: Any) -> list[dict[str, Any]]:
    """The mappings in a list, quietly (the list itself is checked where it is read)."""
    return [x for x in raw if isinstance(x, dict)] if isinstance(raw, list) else []


class _Validator:
    """Walks the raw YAML, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, where: str, msgid: str, **params: Any) -> None:
        self.problems.append(Problem.at(where, msgid, **params))

    def mapping(self, raw: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.bad(path, N_("expected a mapping, got %(value)s"), value=quoted(raw))
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
            self.bad(path, N_("expected a list, got %(value)s"), value=quoted(raw))
            return []
        return raw

    def text(self, raw: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
        value = raw.get(key)
        if value is None:
            if required:
                self.bad(f"{path}.{key}", N_("is missing"))
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.bad(f"{path}.{key}", N_("%(value)s is not text"), value=quoted(value))
            return None
        text = str(value).strip()
        if not text:
            self.bad(f"{path}.{key}", N_("is empty"))
            return None
        return text

    def zone(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.bad(
                path, N_('%(value)s is not a time zone (like "Asia/Shanghai")'), value=quoted(value)
            )
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            self.bad(
                path,
                N_('%(value)s is not a known time zone (like "Asia/Shanghai")'),
                value=quoted(value),
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
                path, N_('%(value)s is not a date (expected "YYYY-MM-DD")'), value=quoted(value)
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
                self.bad(path, msgid, value=quoted(ident), first=first[ident])
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
        routines = numbered_slots(routines)
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
                value=quoted(kind),
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
                value=quoted(threshold),
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
                value=quoted(kind),
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
                    value=quoted(hours),
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
                value=quoted(x["grace"]),
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
                value=quoted(role),
                choices=", ".join(ROLES),
            )
        language = p.get("language", "zh-CN")
        if language not in LANGUAGES:
            self.bad(
                f"{path}.language",
                N_("%(value)s is not a language (%(choices)s)"),
                value=quoted(language),
                choices=", ".join(LANGUAGES),
            )
        buildings = [str(b) for b in self.items(p.get("buildings"), f"{path}.buildings")]
        notify = self.items(p.get("notify"), f"{path}.notify")
        for i, url in enumerate(notify):
            if not isinstance(url, str) or "://" not in url:
                self.bad(
                    f"{path}.notify[{i}]",
                    N_('%(value)s is not a notification URL (like "ntfy://host/topic")'),
                    value=quoted(url),
                )
        resident = p.get("resident")
        consent = self.day(p["consent"], f"{path}.consent") if p.get("consent") else None
        if role == "family" and resident not in residents:
            self.bad(
                f"{path}.resident",
                N_("%(value)s is not a resident in this file"),
                value=quoted(resident),
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
        days = parse_weekdays(r.get("days", "mon-sun"))
        if days is None:
            self.bad(
                f"{path}.days",
                N_('%(value)s is not a list of weekdays (like [mon, wed] or "mon-fri")'),
                value=quoted(r.get("days")),
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
                value=quoted(target),
                choices=", ".join(ESCALATION_TARGETS),
            )
            return None
        return EscalationStep(after, target) if after is not None else None
