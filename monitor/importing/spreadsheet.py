"""Residents spreadsheets (CSV or XLSX, one row per resident) and the preview of an import,
for spreadsheets and the community file alike.

A spreadsheet is read into text cells, each row turned into the community file's shape and
checked by `monitor.importing.community.check_community`: the rules are the file's own, and every
problem names the row (as the spreadsheet shows it, the header is row 1) and the column:
`row 7, column curtain_open: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)`.

A spreadsheet updates the residents it lists and leaves everything else as it is: the
community's time zone, people, escalation and the residents not in the file (unless the
import retires them). A column the file leaves out keeps what is stored for residents that
exist; an empty cell means "none". Window cells hold one or more windows ("07:00-09:00;
18:00-20:00"), each with its own grace if wanted ("07:00-09:00 +15m", else the row's grace
column); device cells one or more ids; `away` one or more date ranges
("2026-12-01..2026-12-07; 2027-01-10..2027-01-12").

`plan_sheet` and `plan_community` compare a file with the database and say, per resident,
what an import would create or change, and every problem; nothing is written. `apply_plan`
writes a plan that has no problems. `Plan.digest()` fingerprints what a preview showed, so
an import can refuse to write anything else."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from monitor.importing.apply import FILE_CONSENT, apply_community, apply_residents
from monitor.importing.community import (
    CommunityError,
    CommunitySpec,
    DeviceSpec,
    PersonSpec,
    ResidentSpec,
    RoutineSpec,
    check_community,
    load_community,
)
from monitor.messages import N_, VERBATIM, Message, Problem
from monitor.models import (
    AppSetting,
    AuditEntry,
    AwayPeriod,
    Community,
    Device,
    Person,
    Resident,
    Routine,
)

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
MAX_COLUMNS = 64
# When no community file was ever imported (the web shows the same zone then).
DEFAULT_TIMEZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Column:
    """One column of the residents spreadsheet. `aliases` are the other headers accepted
    for it (the first is its Chinese name)."""

    key: str
    aliases: tuple[str, ...]
    example: str = ""
    required: bool = False
    device: str | None = None  # the device kind listed in this column
    routine: str | None = None  # the routine kind of the windows in this column
    max_len: int | None = None


COLUMNS: tuple[Column, ...] = (
    Column("id", ("编号", "居民编号", "resident_id"), "r-101", True, max_len=64),
    Column("name", ("姓名", "名字", "居民姓名"), "王淑兰", True, max_len=200),
    Column("building", ("楼栋", "楼号", "楼"), "1", True, max_len=64),
    Column("unit", ("单元", "房号", "单元/房号", "门牌号", "房间号"), "101", max_len=64),
    Column("timezone", ("时区", "tz"), "", max_len=64),
    Column("phone", ("电话", "手机", "联系电话"), "138 0000 0101", max_len=64),
    Column("contact", ("联系人", "紧急联系人"), "王军（儿子）139 0000 1111"),
    Column("notes", ("备注",), "耳背，请用力敲门"),
    Column("curtain", ("窗帘",), "curtain-101", device="curtain", max_len=200),
    Column("door", ("门", "入户门", "门磁"), "door-101", device="door", max_len=200),
    Column("light", ("灯",), "light-101", device="light", max_len=200),
    Column("help", ("求助卡", "求助", "求助按钮"), "card-101", device="help", max_len=200),
    Column("motion", ("人体感应", "人体传感器"), device="motion", max_len=200),
    Column("contact_sensor", ("其他门磁", "接触传感器"), device="contact", max_len=200),
    Column("power", ("插座", "用电"), device="power", max_len=200),
    Column("water", ("水表", "用水"), device="water", max_len=200),
    Column("curtain_open", ("开窗帘", "拉开窗帘"), "07:00-09:00", routine="curtain_open"),
    Column("curtain_close", ("关窗帘", "拉上窗帘"), "18:00-22:30", routine="curtain_close"),
    Column("light_on", ("开灯",), "17:30-21:00", routine="light_on"),
    Column("door_window", ("开门", "出入门"), "06:00-22:00", routine="door"),
    Column("activity", ("活动",), routine="activity"),
    Column("grace", ("宽限", "宽限时间"), "15m"),
    Column("inactivity_hours", ("无活动小时", "无活动时长", "inactivity"), "12"),
    Column("away", ("外出", "离家", "不在家"), "2026-12-01..2026-12-07"),
)
BY_KEY = {c.key: c for c in COLUMNS}
REQUIRED = tuple(c.key for c in COLUMNS if c.required)
DEVICE_COLUMNS = tuple(c for c in COLUMNS if c.device)
WINDOW_COLUMNS = tuple(c for c in COLUMNS if c.routine)
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


def _norm(header: str) -> str:
    """How a header is matched: width, case, spaces, "(notes)" and a "*" do not matter."""
    text = unicodedata.normalize("NFKC", header).strip().lower()
    text = re.sub(r"\(.*?\)", "", text).strip(" *")
    return re.sub(r"[\s\-]+", "_", text)


ALIASES = {_norm(name): c.key for c in COLUMNS for name in (c.key, *c.aliases)}


def _show(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how spreadsheets name columns."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# -- reading ------------------------------------------------------------------------------


@dataclass
class Sheet:
    """A spreadsheet read into text: the column keys in the file, then each non-blank row
    as (its row number as the spreadsheet shows it, {key: cell text}), and the problems
    with the file as a whole."""

    columns: list[str] = field(default_factory=list)
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # column key -> its name in row 1


def _file(msgid: str, **params: Any) -> Problem:
    """A problem with the file as a whole."""
    return Problem(None, (msgid, params))


def _cell(row: int, column: str, headers: Mapping[str, str]) -> Message:
    """Row `row`'s cell in the column with key `column`, named as row 1 names it."""
    return N_("row %(row)s, column %(column)s"), {"row": row, "column": headers.get(column, column)}


NOT_A_SPREADSHEET = N_("the file is not a spreadsheet (CSV or XLSX)")


class _Unreadable(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem)
        self.problem = problem


def read_sheet(data: bytes) -> Sheet:
    """CSV (UTF-8 with or without BOM, GB18030, UTF-16 as Excel's "Unicode text") or XLSX
    (the first worksheet) into a Sheet; never raises on what a person uploads."""
    if len(data) > MAX_BYTES:
        return Sheet(
            problems=[
                _file(N_("the file is larger than %(mb)s MB; split it"), mb=MAX_BYTES // 2**20)
            ]
        )
    if not data.removeprefix(b"\xef\xbb\xbf").strip() or data in (b"\xff\xfe", b"\xfe\xff"):
        return Sheet(problems=[_file(N_("the file is empty"))])
    try:
        if data.startswith(b"\xd0\xcf\x11\xe0"):
            raise _Unreadable(
                _file(
                    N_(
                        "this is an old Excel .xls file; save it as .xlsx (Excel workbook) or "
                        "as CSV UTF-8, then upload that"
                    )
                )
            )
        raw = _xlsx_rows(data) if data.startswith(b"PK\x03\x04") else _csv_rows(data)
    except _Unreadable as exc:
        return Sheet(problems=[exc.problem])
    return _table(raw)


def _csv_rows(data: bytes) -> list[list[str]]:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if first.strip() else ","
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            rows.append([cell.strip() for cell in row])
            if len(rows) > 2 * MAX_ROWS + 1:
                break
    except csv.Error as exc:
        raise _Unreadable(
            Problem(
                (N_("row %(row)s"), {"row": len(rows) + 1}),
                (N_("not valid CSV (%(error)s)"), {"error": str(exc)}),
            )
        ) from None
    return rows


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise _Unreadable(_file(NOT_A_SPREADSHEET)) from None
    if b"\x00" in data:
        raise _Unreadable(_file(NOT_A_SPREADSHEET))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
            break  # control characters: some binary file, not text
        return text
    raise _Unreadable(
        _file(
            N_("the file is not a spreadsheet (CSV in UTF-8 or GB18030, or XLSX) that can be read")
        )
    )


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    rows: list[list[str]] = []
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a damaged file
        raise _Unreadable(
            _file(
                N_(
                    "the file could not be read as an XLSX workbook (save it from Excel or WPS "
                    "as .xlsx, or as CSV): %(error)s"
                ),
                error=type(exc).__name__,
            )
        ) from None
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(max_col=MAX_COLUMNS + 1, values_only=True):
            rows.append([_cell_text(v) for v in values])
            if len(rows) > 2 * MAX_ROWS + 1:
                break
    except Exception as exc:  # noqa: BLE001 - any damage in a workbook is a problem to show
        raise _Unreadable(
            _file(
                N_("row %(row)s of the workbook could not be read (%(error)s)"),
                row=len(rows) + 1,
                error=type(exc).__name__,
            )
        ) from None
    finally:
        book.close()
    return rows


def _cell_text(value: Any) -> str:
    """A workbook cell as the text a person sees (numbers without ".0", dates ISO)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, timedelta):
        return format_duration(value)
    return str(value).strip()


def _table(raw: list[list[str]]) -> Sheet:
    sheet = Sheet()
    if not raw or not any(raw[0]):
        sheet.problems.append(
            _file(
                N_("row 1 is empty: the first row must name the columns (%(required)s, …)"),
                required=", ".join(REQUIRED),
            )
        )
        return sheet
    header, body = raw[0], raw[1:]
    if len(header) > MAX_COLUMNS and any(header[MAX_COLUMNS:]):
        sheet.problems.append(_file(N_("the file has more than %(n)s columns"), n=MAX_COLUMNS))
    keys: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header[:MAX_COLUMNS]):
        letter = column_letter(i)
        if not name:
            if any(i < len(row) and row[i] for row in body):
                sheet.problems.append(
                    _file(N_("column %(column)s has values but no name in row 1"), column=letter)
                )
            continue
        key = ALIASES.get(_norm(name))
        where = N_("column %(column)s %(name)s"), {"column": letter, "name": _show(name)}
        if key is None:
            known = ", ".join(c.key for c in COLUMNS)
            sheet.problems.append(
                Problem(where, (N_("unknown column (known: %(known)s)"), {"known": known}))
            )
        elif key in seen:
            sheet.problems.append(
                Problem(
                    where,
                    (
                        N_("the column %(key)s is already column %(first)s"),
                        {"key": key, "first": column_letter(seen[key])},
                    ),
                )
            )
        else:
            seen[key] = i
            keys.append((i, key))
            sheet.headers[key] = name
    sheet.columns = [key for _, key in keys]
    missing = [k for k in REQUIRED if k not in seen]
    for key in missing:
        sheet.problems.append(
            _file(
                N_(
                    "the column %(key)s is missing (row 1 must name the columns; needed: "
                    "%(required)s)"
                ),
                key=key,
                required=", ".join(REQUIRED),
            )
        )
    for n, row in enumerate(body, start=2):
        if not any(row):
            continue
        sheet.rows.append((n, {key: row[i] if i < len(row) else "" for i, key in keys}))
    if len(sheet.rows) > MAX_ROWS or len(body) > 2 * MAX_ROWS:
        sheet.problems.append(
            _file(
                N_(
                    "the file has more than %(n)s rows of residents (blank rows count too); "
                    "split it into smaller files"
                ),
                n=f"{MAX_ROWS:,}",
            )
        )
        sheet.rows = []
    elif not sheet.rows and not missing:
        sheet.problems.append(_file(N_("the file has a header row but no residents")))
    if missing:
        sheet.rows = []
    return sheet


# -- one row into the community file's shape -----------------------------------------------


def format_duration(value: timedelta) -> str:
    """timedelta(minutes=90) -> "1h30m": how grace is written back."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds else "") if seconds or text else "0m"


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
        windows = sorted((x for x in spec.routines if x.kind == c.routine), key=_slot_order)
        cells[c.key] = "; ".join(_window_text(x) for x in windows)
    cells["inactivity_hours"] = "; ".join(
        _hours_text(x.hours) for x in spec.routines if x.kind == "inactivity" and x.hours
    )
    cells["away"] = "; ".join(f"{a}..{b}" for a, b in sorted(spec.away))
    return cells


def _slot_order(x: RoutineSpec) -> tuple[str, int, str]:
    kind, _, n = x.slot.partition("#")
    return (kind, int(n) if n.isdigit() else 0, x.slot)


def _split(text: str) -> list[str]:
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


def _shape(
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
        for did in _split(value(c.key)):
            device: dict[str, Any] = {"id": did, "kind": c.device}
            if (did, c.device) in thresholds:
                device["light_threshold"] = thresholds[(did, c.device)]
            if c.max_len and len(did) > c.max_len:
                row.problems.append(
                    (
                        c.key,
                        (
                            N_("%(value)s is longer than %(n)s characters"),
                            {"value": _show(did), "n": c.max_len},
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
        for part in _split(value(c.key)):
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
                            {"value": _show(part)},
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
    row.raw["away"] = [_away(part) for part in _split(value("away"))]
    return row


def _located(problem: Problem, n: int, row: _Row, headers: Mapping[str, str]) -> Problem:
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
    return Problem(_cell(n, column, headers), (msgid, {k: named(v) for k, v in params.items()}))


# -- what is stored ------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    spec: ResidentSpec
    active: bool


def _chunks(ids: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])


def stored_residents(session: Session, ids: Sequence[str] | None = None) -> dict[str, Stored]:
    """Residents as stored, in the shape of the file (active routines only): these `ids`,
    or all. A few queries per 500 residents, never one per resident."""
    groups: Iterable[list[str] | None] = [None] if ids is None else _chunks(sorted(set(ids)))
    found: dict[str, Stored] = {}
    for chunk in groups:

        def where(column: Any, chunk: list[str] | None = chunk) -> Any:
            return column.in_(chunk) if chunk is not None else column.is_not(None)

        devices: dict[str, list[DeviceSpec]] = {}
        for d in session.execute(
            select(Device.id, Device.resident_id, Device.kind, Device.light_threshold).where(
                where(Device.resident_id)
            )
        ):
            devices.setdefault(d.resident_id, []).append(
                DeviceSpec(d.id, d.kind, float(d.light_threshold))
            )
        routines: dict[str, list[RoutineSpec]] = {}
        for x in session.scalars(
            select(Routine).where(where(Routine.resident_id), Routine.active.is_(True))
        ):
            routines.setdefault(x.resident_id, []).append(
                RoutineSpec(
                    x.kind,
                    time.fromisoformat(x.start) if x.start else None,
                    time.fromisoformat(x.end) if x.end else None,
                    timedelta(seconds=x.grace_s or 0),
                    x.hours,
                    x.slot,
                )
            )
        away: dict[str, list[tuple[date, date]]] = {}
        for a in session.scalars(select(AwayPeriod).where(where(AwayPeriod.resident_id))):
            away.setdefault(a.resident_id, []).append((a.first_day, a.last_day))
        for r in session.scalars(select(Resident).where(where(Resident.id))):
            spec = ResidentSpec(
                r.id,
                r.name,
                r.building,
                r.unit,
                r.timezone,
                devices.get(r.id, []),
                sorted(routines.get(r.id, []), key=_slot_order),
                away.get(r.id, []),
                r.phone or "",
                r.contact or "",
                r.notes or "",
            )
            found[r.id] = Stored(spec, bool(r.active))
    return found


def _same(a: ResidentSpec, b: ResidentSpec) -> bool:
    def key(s: ResidentSpec) -> tuple[Any, ...]:
        return (
            s.name,
            s.building,
            s.unit,
            s.timezone,
            s.phone,
            s.contact,
            s.notes,
            sorted((d.kind, d.id, d.light_threshold) for d in s.devices),
            sorted(
                (x.slot, x.kind, str(x.start), str(x.end), x.grace, x.hours) for x in s.routines
            ),
            sorted(s.away),
        )

    return key(a) == key(b)


@dataclass(frozen=True)
class _Owner:
    resident_id: str
    name: str
    active: bool
    kind: str
    light_threshold: float


def _device_owners(session: Session, ids: Sequence[str]) -> dict[str, _Owner]:
    owners: dict[str, _Owner] = {}
    for chunk in _chunks(sorted(set(ids))):
        for d in session.execute(
            select(
                Device.id,
                Device.resident_id,
                Device.kind,
                Device.light_threshold,
                Resident.name,
                Resident.active,
            )
            .join(Resident, Resident.id == Device.resident_id)
            .where(Device.id.in_(chunk))
        ):
            owners[d.id] = _Owner(
                d.resident_id, d.name, bool(d.active), d.kind, float(d.light_threshold)
            )
    return owners


# -- the plan an import previews -----------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One column of a resident that an import changes ("" = none)."""

    column: str
    before: str
    after: str


@dataclass
class RowPlan:
    where: str  # "row 7" (spreadsheet) or "residents[6]" (community file)
    number: int  # the row number, or the place in the file counting from 1
    resident_id: str
    name: str
    status: str  # new | changed | unchanged | invalid
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    reactivated: bool = False  # no longer watched until now
    spec: ResidentSpec | None = None


@dataclass(frozen=True)
class PersonChange:
    id: str
    name: str
    status: str  # new | changed | removed
    fields: tuple[str, ...] = ()


@dataclass
class Plan:
    """What an import would do; `ok` when it may be applied (no problem anywhere)."""

    kind: str  # "sheet" | "community"
    timezone: str = DEFAULT_TIMEZONE
    community_exists: bool = True
    rows: list[RowPlan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # about the file as a whole
    retire: list[tuple[str, str]] = field(default_factory=list)  # (id, name) no longer watched
    people: list[PersonChange] = field(default_factory=list)
    settings: list[Change] = field(default_factory=list)  # community time zone, escalation
    retire_missing: bool = False
    community: CommunitySpec | None = None

    @property
    def problem_count(self) -> int:
        return len(self.problems) + sum(len(r.problems) for r in self.rows)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0 and bool(self.rows)

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    def counts(self) -> dict[str, int]:
        counts = {s: self.count(s) for s in ("new", "changed", "unchanged", "invalid")}
        counts["retired"] = len(self.retire)
        if self.kind == "community":
            for s in ("new", "changed", "removed"):
                counts[f"people_{s}"] = sum(1 for p in self.people if p.status == s)
        return counts

    def digest(self) -> str:
        """A fingerprint of everything the preview shows and everything apply would write."""
        shown = {
            "kind": self.kind,
            "timezone": self.timezone,
            "retire_missing": self.retire_missing,
            "problems": self.problems,
            "rows": [
                [r.where, r.resident_id, r.status, r.reactivated, r.problems]
                + [[c.column, c.before, c.after] for c in r.changes]
                for r in self.rows
            ],
            "retire": self.retire,
            "people": [[p.id, p.status, list(p.fields)] for p in self.people],
            "settings": [[c.column, c.before, c.after] for c in self.settings],
        }
        h = hashlib.sha256(json.dumps(shown, ensure_ascii=False, sort_keys=True).encode())
        for r in self.rows:
            h.update(repr(r.spec).encode())
        h.update(repr(self.community).encode())
        return h.hexdigest()


def _changes(before: ResidentSpec | None, after: ResidentSpec, zone: str) -> list[Change]:
    # A new resident in the community's own time zone need not say so.
    old = spec_cells(before) if before else {"timezone": zone}
    new = spec_cells(after)
    return [
        Change(c.key, old.get(c.key, ""), new[c.key])
        for c in COLUMNS
        if c.key not in ("id", "grace") and old.get(c.key, "") != new[c.key]
    ]


def _row_plan(
    where: str, number: int, spec: ResidentSpec, stored: Stored | None, zone: str
) -> RowPlan:
    plan = RowPlan(where, number, spec.id, spec.name, "unchanged", spec=spec)
    if stored is None:
        plan.status = "new"
    elif not stored.active or not _same(stored.spec, spec):
        plan.status = "changed"
        plan.reactivated = not stored.active
    if plan.status != "unchanged":
        plan.changes = _changes(stored.spec if stored else None, spec, zone)
    return plan


def community_timezone(session: Session) -> tuple[str, bool]:
    """The community's time zone, and whether a community file was ever imported."""
    zone = session.scalar(select(Community.timezone).where(Community.id == 1))
    return (zone, True) if zone else (DEFAULT_TIMEZONE, False)


def plan_sheet(session: Session, data: bytes, retire_missing: bool = False) -> Plan:
    """Compare a residents spreadsheet with the database; writes nothing."""
    zone, exists = community_timezone(session)
    sheet = read_sheet(data)
    plan = Plan("sheet", zone, exists, problems=list(sheet.problems), retire_missing=retire_missing)
    if not sheet.rows:
        return plan
    present = frozenset(sheet.columns)
    ids = [cells.get("id", "").strip() for _, cells in sheet.rows]
    in_file = set(ids)
    stored = stored_residents(session, [i for i in ids if i])
    named = [
        did
        for _, cells in sheet.rows
        for c in DEVICE_COLUMNS
        if c.key in present
        for did in _split(cells.get(c.key, ""))
    ]
    owners = _device_owners(session, named)
    # The sheet has no column for a light's threshold: a device keeps the one it has.
    thresholds = {(did, o.kind): o.light_threshold for did, o in owners.items()}
    for s in stored.values():
        thresholds.update(((d.id, d.kind), d.light_threshold) for d in s.spec.devices)
    first_id: dict[str, int] = {}
    first_device: dict[str, tuple[int, str]] = {}

    for (n, cells), rid in zip(sheet.rows, ids, strict=True):
        old = stored.get(rid)
        row = _shape(cells, present, spec_cells(old.spec) if old else {}, thresholds)
        problems = [Problem(_cell(n, col, sheet.headers), message) for col, message in row.problems]
        spec: ResidentSpec | None = None
        try:
            spec = check_community({"timezone": zone, "residents": [row.raw]}).residents[0]
        except CommunityError as exc:
            problems += [_located(p, n, row, sheet.headers) for p in exc.problems]
        if rid in first_id:
            problems.append(
                Problem(
                    _cell(n, "id", sheet.headers),
                    (
                        N_("resident id %(value)s is already used by row %(row)s"),
                        {"value": _show(rid), "row": first_id[rid]},
                    ),
                )
            )
        elif rid:
            first_id[rid] = n
        for column, d in zip(row.device_columns, row.raw["devices"], strict=True):
            if first_id.get(rid) != n:
                break  # a second row for the same resident: said once, above
            did = d["id"]
            first = first_device.setdefault(did, (n, column))
            if first[0] != n:
                problems.append(
                    Problem(
                        _cell(n, column, sheet.headers),
                        (
                            N_(
                                "device id %(value)s is already used by row %(row)s "
                                "(column %(column)s)"
                            ),
                            {"value": _show(did), "row": first[0], "column": first[1]},
                        ),
                    )
                )
            owner = owners.get(did)
            if (
                owner is not None
                and owner.active
                and owner.resident_id not in in_file
                and not retire_missing
            ):
                problems.append(
                    Problem(
                        _cell(n, column, sheet.headers),
                        (
                            N_(
                                "device %(value)s belongs to %(owner)s (%(name)s), who is not in "
                                "this file; remove it there first, or add that resident's row"
                            ),
                            {"value": _show(did), "owner": owner.resident_id, "name": owner.name},
                        ),
                    )
                )
        problems = list(dict.fromkeys(problems))  # a bad grace column is said once
        if problems or spec is None:
            name = row.raw.get("name") or ""
            plan.rows.append(RowPlan(f"row {n}", n, rid, name, "invalid", problems=problems))
        else:
            plan.rows.append(_row_plan(f"row {n}", n, spec, old, zone))
    if retire_missing:
        plan.retire = [
            (r.id, r.name)
            for r in session.execute(
                select(Resident.id, Resident.name).where(Resident.active.is_(True))
            )
            if r.id not in in_file
        ]
        plan.retire.sort()
    return plan


# -- the community file ----------------------------------------------------------------------


def _escalation_text(steps: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"{format_duration(timedelta(seconds=s))} {who}" for s, who in steps)


def _person_shape(p: PersonSpec) -> dict[str, Any]:
    return {
        "name": p.name,
        "role": p.role,
        "language": p.language,
        "buildings": list(p.buildings),
        "resident": p.resident,
        "consent": p.consent,
        "notify": list(p.notify),
        "rota": [
            {"days": list(r.days), "from": f"{r.start:%H:%M}", "to": f"{r.end:%H:%M}"}
            for r in p.rota
        ],
        "quiet_hours": (
            {"from": f"{p.quiet_hours[0]:%H:%M}", "to": f"{p.quiet_hours[1]:%H:%M}"}
            if p.quiet_hours
            else None
        ),
        "digest": f"{p.digest:%H:%M}" if p.digest else None,
    }


def _stored_person_shape(p: Person) -> dict[str, Any]:
    return {
        "name": p.name,
        "role": p.role,
        "language": p.language,
        "buildings": list(p.buildings or []),
        "resident": p.resident_id,
        "consent": p.consent,
        "notify": list(p.notify or []),
        "rota": list(p.rota or []),
        "quiet_hours": p.quiet_hours or None,
        "digest": p.digest_at,
    }


def plan_community(session: Session, data: bytes) -> Plan:
    """Compare a community file with the database (as `apply_community` would write it:
    residents not in the file stop being watched, people not in it go); writes nothing."""
    zone, exists = community_timezone(session)
    plan = Plan("community", zone, exists)
    if len(data) > MAX_BYTES:
        plan.problems = [_file(N_("the file is larger than %(mb)s MB"), mb=MAX_BYTES // 2**20)]
        return plan
    try:
        spec = load_community(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        plan.problems = [
            _file(N_("the file is not UTF-8 text; save it as UTF-8 and upload it again"))
        ]
        return plan
    except CommunityError as exc:
        plan.problems = list(exc.problems)
        return plan
    plan.community, plan.timezone = spec, spec.timezone
    stored = stored_residents(session)
    plan.rows = [
        _row_plan(f"residents[{i}]", i + 1, r, stored.get(r.id), spec.timezone)
        for i, r in enumerate(spec.residents)
    ]
    in_file = {r.id for r in spec.residents}
    plan.retire = sorted(
        (rid, s.spec.name) for rid, s in stored.items() if s.active and rid not in in_file
    )

    people = {p.id: p for p in session.scalars(select(Person))}
    for p in spec.people:
        row = people.get(p.id)
        if row is None:
            plan.people.append(PersonChange(p.id, p.name, "new"))
            continue
        new, old = _person_shape(p), _stored_person_shape(row)
        changed = tuple(k for k in new if new[k] != old[k])
        if changed:
            plan.people.append(PersonChange(p.id, p.name, "changed", changed))
    listed = {p.id for p in spec.people}
    plan.people += [
        PersonChange(row.id, row.name, "removed")
        for row in sorted(people.values(), key=lambda r: r.id)
        if row.id not in listed and row.consent_version in (None, FILE_CONSENT)
    ]

    community = session.get(Community, 1)
    if community is None or community.timezone != spec.timezone:
        plan.settings.append(
            Change("timezone", community.timezone if community else "", spec.timezone)
        )
    before = _escalation_text(
        (int(s.get("after_s", 0)), str(s.get("notify")))
        for s in (community.escalation if community else [])
    )
    after = _escalation_text((int(s.after.total_seconds()), s.notify) for s in spec.escalation)
    if before != after:
        plan.settings.append(Change("escalation", before, after))
    return plan


# -- writing ---------------------------------------------------------------------------------


def apply_plan(
    session: Session, plan: Plan, now: datetime, actor: str, filename: str
) -> dict[str, int]:
    """Write a plan that has no problems, in the caller's transaction, with an AuditEntry
    naming the file and the counts; returns the counts."""
    if not plan.ok:
        raise ValueError("an import with problems cannot be applied")
    if plan.kind == "community":
        assert plan.community is not None
        apply_community(session, plan.community, now)
    else:
        if session.get(Community, 1) is None:
            session.add(Community(id=1, timezone=plan.timezone, escalation=[], imported_at=now))
        apply_residents(
            session,
            [r.spec for r in plan.rows if r.status in ("new", "changed") and r.spec is not None],
            now,
            retire=[rid for rid, _ in plan.retire],
        )
    counts = plan.counts()
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="import.community" if plan.kind == "community" else "import.spreadsheet",
            target=filename[:200],
            detail=json.dumps({"file": filename, **counts}, ensure_ascii=False),
        )
    )
    return counts


# -- uploads kept between the preview and the import -------------------------------------------
# An upload waits in app_settings (shared by every instance, unlike a temp file) under
# "import:<expiry, epoch seconds>-<random>", so expired ones are found by key alone. The
# import reads the very bytes the preview read and claims the row with a conditional
# delete, so a double click imports once.

UPLOAD_PREFIX = "import:"
UPLOAD_KEEP = timedelta(hours=1)
_UPLOAD_KEY = re.compile(r"^(\d{1,11})-[A-Za-z0-9_-]{24}$")


@dataclass(frozen=True)
class Upload:
    key: str
    user_id: int
    filename: str
    kind: str  # "sheet" | "community"
    retire_missing: bool
    data: bytes
    expires_at: datetime


def keep_upload(
    session: Session,
    user_id: int,
    filename: str,
    kind: str,
    data: bytes,
    now: datetime,
    retire_missing: bool = False,
) -> str:
    """Store an upload until it is imported or UPLOAD_KEEP passes; returns its key."""
    purge_uploads(session, now)
    expires = now + UPLOAD_KEEP
    key = f"{int(expires.timestamp())}-{secrets.token_urlsafe(18)}"
    value = {
        "user": user_id,
        "filename": filename,
        "kind": kind,
        "retire_missing": retire_missing,
        "data": base64.b64encode(data).decode(),
    }
    session.add(AppSetting(key=UPLOAD_PREFIX + key, value=json.dumps(value)))
    return key


def find_upload(session: Session, key: str, user_id: int, now: datetime) -> Upload | None:
    """The upload `user_id` made under `key`, unless it expired (or never was)."""
    m = _UPLOAD_KEY.match(key)
    if m is None:
        return None
    expires = datetime.fromtimestamp(int(m[1]), UTC)
    row = session.get(AppSetting, UPLOAD_PREFIX + key)
    if row is None or expires <= now:
        return None
    value = json.loads(row.value)
    if value.get("user") != user_id:
        return None
    return Upload(
        key,
        user_id,
        str(value["filename"]),
        str(value["kind"]),
        bool(value["retire_missing"]),
        base64.b64decode(value["data"]),
        expires,
    )


def take_upload(session: Session, key: str) -> bool:
    """Claim an upload for its import; False when another request already did."""
    result = session.execute(delete(AppSetting).where(AppSetting.key == UPLOAD_PREFIX + key))
    return bool(getattr(result, "rowcount", 0) == 1)


def purge_uploads(session: Session, now: datetime) -> int:
    """Forget uploads that expired; returns how many."""
    stale = [
        key
        for key in session.scalars(
            select(AppSetting.key).where(AppSetting.key.startswith(UPLOAD_PREFIX))
        )
        if (m := _UPLOAD_KEY.match(key[len(UPLOAD_PREFIX) :])) is None
        or datetime.fromtimestamp(int(m[1]), UTC) <= now
    ]
    for chunk in _chunks(stale):
        session.execute(delete(AppSetting).where(AppSetting.key.in_(chunk)))
    return len(stale)


def plan_upload(session: Session, upload: Upload) -> Plan:
    if upload.kind == "community":
        return plan_community(session, upload.data)
    return plan_sheet(session, upload.data, upload.retire_missing)


# -- the template ----------------------------------------------------------------------------


def template_rows() -> list[list[str]]:
    """The header and one example row, from the column definitions."""
    return [[c.key for c in COLUMNS], [c.example for c in COLUMNS]]


def template_csv() -> bytes:
    """UTF-8 with a BOM, so Excel opens the Chinese example as Chinese."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(template_rows())
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def template_xlsx(help_rows: Sequence[Sequence[str]] = ()) -> bytes:
    """The template as a workbook: "residents" (header and example, cells formatted as text
    so ids like "0301" keep their zeros), then, if given, a sheet explaining the columns."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "residents"
    for row in template_rows():
        sheet.append(row)
    for i, c in enumerate(COLUMNS):
        letter = column_letter(i)
        sheet.column_dimensions[letter].width = max(12, len(c.example) + 4, len(c.key) + 4)
        for cell in sheet[letter]:
            cell.number_format = "@"
        sheet[f"{letter}1"].font = Font(bold=True)
    sheet.freeze_panes = "A2"
    if help_rows:
        about = book.create_sheet("columns")
        for line in help_rows:
            about.append(list(line))
        for letter, width in zip("ABCDE", (18, 16, 10, 24, 70), strict=False):
            about.column_dimensions[letter].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
