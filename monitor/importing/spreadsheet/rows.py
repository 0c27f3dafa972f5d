"""One spreadsheet row into the community file's shape (`shape_row`, for
monitor.importing.validate to check, with `located` naming each problem's row and column),
and back: `spec_cells` writes a resident as its row would read, so a preview can compare
cells and a column the file leaves out keeps what is stored."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.importing.community import ResidentSpec, RoutineSpec, quoted
from monitor.importing.spreadsheet.reading import (
    BY_KEY,
    DEVICE_COLUMNS,
    REQUIRED,
    WINDOW_COLUMNS,
    cell_named,
    format_duration,
)
from monitor.messages import N_, VERBATIM, Message, Problem

TEXT_KEYS = ("unit", "timezone", "phone", "contact", "notes")
# Cells typed on a Chinese keyboard: full-width colon, tilde, plus and digits read as ASCII.
_NFKC = frozenset(["grace", "inactivity_hours", "away"]) | {c.key for c in WINDOW_COLUMNS}

_SPLIT = re.compile(r"[;,；，、\n]+")
_WINDOW = re.compile(
    r"^(?P<start>[^-–—~至到]+?)\s*(?:-|–|—|~|至|到|\bto\b)\s*(?P<end>[^+]+?)"
    r"\s*(?:\+\s*(?P<grace>.+?))?$"
)
_DAY = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?")
_RANGE = re.compile(r"^(?P<first>.+?)\s*(?:\.\.|~|至|到|–|—|\s-\s|\sto\s)\s*(?P<last>.+)$")
_ISO_PAIR = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})-(\d{4}-\d{1,2}-\d{1,2})$")
_HOURS = re.compile(r"^(\d+(?:\.\d+)?)\s*(?:h|小时)?$")
_PATH = re.compile(r"^residents\[0\]\.(\w+)(?:\[(\d+)\])?(\.\w+)?$")
_ITEM = re.compile(r"residents\[0\]\.(devices|routines)\[(\d+)\]")


def _hours_text(hours: float) -> str:
    return str(int(hours)) if float(hours).is_integer() else str(hours)


def _window_text(x: RoutineSpec) -> str:
    assert x.start is not None and x.end is not None
    text = f"{x.start:%H:%M}-{x.end:%H:%M}"
    return f"{text} +{format_duration(x.grace)}" if x.grace else text


def spec_cells(spec: ResidentSpec) -> dict[str, str]:
    """A resident as its spreadsheet row would read, one canonical text per column (grace
    is written in each window, so the grace column stays empty)."""
    cells = {
        "id": spec.id,
        "name": spec.name,
        "building": spec.building,
        "unit": spec.unit,
        "timezone": spec.timezone,
        "phone": spec.phone,
        "contact": spec.contact,
        "notes": spec.notes,
        "grace": "",
    }
    for c in DEVICE_COLUMNS:
        cells[c.key] = ", ".join(sorted(d.id for d in spec.devices if d.kind == c.device))
    for c in WINDOW_COLUMNS:
        windows = sorted((x for x in spec.routines if x.kind == c.routine), key=slot_order)
        cells[c.key] = "; ".join(_window_text(x) for x in windows)
    cells["inactivity_hours"] = "; ".join(
        _hours_text(x.hours) for x in spec.routines if x.kind == "inactivity" and x.hours
    )
    cells["away"] = "; ".join(f"{a}..{b}" for a, b in sorted(spec.away))
    return cells


def slot_order(x: RoutineSpec) -> tuple[str, int, str]:
    kind, _, n = x.slot.partition("#")
    return (kind, int(n) if n.isdigit() else 0, x.slot)


def split_cell(text: str) -> list[str]:
    return [part.strip() for part in _SPLIT.split(text) if part.strip()]


def _duration(text: str) -> str | int:
    """Grace as the file takes it: a bare number is minutes."""
    return int(text) if text.isdigit() else text


def _day(text: str) -> str:
    m = _DAY.fullmatch(text.strip())
    return f"{m[1]}-{int(m[2]):02d}-{int(m[3]):02d}" if m else text.strip()


def _away(part: str) -> dict[str, str]:
    m = _ISO_PAIR.match(part) or _RANGE.match(part)
    if m is None:
        return {"from": _day(part), "to": _day(part)}  # one day
    return {"from": _day(m[1]), "to": _day(m[2])}


@dataclass
class _Row:
    """One spreadsheet row in the community file's shape, remembering which column each
    device and routine came from, so a problem found in the shape names its column."""

    raw: dict[str, Any]
    device_columns: list[str] = field(default_factory=list)
    routine_columns: list[tuple[str, str]] = field(default_factory=list)  # window, its grace
    problems: list[tuple[str, Message]] = field(default_factory=list)  # (column, message)


def shape_row(
    cells: Mapping[str, str],
    present: frozenset[str],
    stored: Mapping[str, str],
    thresholds: Mapping[tuple[str, str], float],
) -> _Row:
    def value(key: str) -> str:
        text = cells.get(key, "") if key in present else stored.get(key, "")
        return unicodedata.normalize("NFKC", text).strip() if key in _NFKC else text.strip()

    row = _Row({k: value(k) for k in REQUIRED})
    for key in TEXT_KEYS:
        if text := value(key):
            row.raw[key] = text
    for key, text in row.raw.items():
        limit = BY_KEY[key].max_len
        if limit and len(text) > limit:
            row.problems.append((key, (N_("is longer than %(n)s characters"), {"n": limit})))

    devices: list[dict[str, Any]] = []
    for c in DEVICE_COLUMNS:
        assert c.device is not None
        for did in split_cell(value(c.key)):
            device: dict[str, Any] = {"id": did, "kind": c.device}
            if (did, c.device) in thresholds:
                device["light_threshold"] = thresholds[(did, c.device)]
            if c.max_len and len(did) > c.max_len:
                row.problems.append(
                    (
                        c.key,
                        (
                            N_("%(value)s is longer than %(n)s characters"),
                            {"value": quoted(did), "n": c.max_len},
                        ),
                    )
                )
            devices.append(device)
            row.device_columns.append(c.key)

    routines: list[dict[str, Any]] = []
    row_grace = value("grace") if "grace" in present else ""
    for c in WINDOW_COLUMNS:
        # The grace column applies to the windows this file gives, not to stored ones
        # (those carry their own grace).
        default = row_grace if c.key in present else ""
        for part in split_cell(value(c.key)):
            m = _WINDOW.match(part)
            if m is None:
                row.problems.append(
                    (
                        c.key,
                        (
                            N_(
                                "%(value)s is not a time window "
                                '(expected like "07:00-09:00" or "07:00-09:00 +15m")'
                            ),
                            {"value": quoted(part)},
                        ),
                    )
                )
                continue
            routine: dict[str, Any] = {"kind": c.routine, "start": m["start"], "end": m["end"]}
            grace = m["grace"] or default
            if grace:
                routine["grace"] = _duration(grace.strip())
            routines.append(routine)
            row.routine_columns.append((c.key, c.key if m["grace"] else "grace"))
    if hours := value("inactivity_hours"):
        m = _HOURS.match(hours)
        # A number goes on as one; anything else as text, for the rules to name.
        number: Any = float(m[1]) if m else hours
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        routines.append({"kind": "inactivity", "hours": number})
        row.routine_columns.append(("inactivity_hours", "inactivity_hours"))

    row.raw["devices"] = devices
    row.raw["routines"] = routines
    row.raw["away"] = [_away(part) for part in split_cell(value("away"))]
    return row


def located(problem: Problem, n: int, row: _Row, headers: Mapping[str, str]) -> Problem:
    """A problem the community rules found (named by its path in the file's shape) as the
    row and column of the spreadsheet."""
    where = problem.where
    m = _PATH.match(str(where[1]["text"])) if where and where[0] == VERBATIM else None
    if m is None:
        return Problem((N_("row %(row)s"), {"row": n}), problem.message())
    name, index, sub = m[1], m[2], m[3]
    column = name
    if name == "devices" and index is not None:
        column = row.device_columns[int(index)]
    elif name == "routines" and index is not None:
        window, grace = row.routine_columns[int(index)]
        column = grace if sub == ".grace" else window

    def named(value: Any) -> Any:
        """A path given in the message ("... is already used by residents[0].devices[0]")
        as the column it came from."""
        found = _ITEM.fullmatch(value) if isinstance(value, str) else None
        if found is None:
            return value
        i = int(found[2])
        key = row.device_columns[i] if found[1] == "devices" else row.routine_columns[i][0]
        return N_("column %(column)s"), {"column": headers.get(key, key)}

    msgid, params = problem.what
    return Problem(
        cell_named(n, column, headers), (msgid, {k: named(v) for k, v in params.items()})
    )
