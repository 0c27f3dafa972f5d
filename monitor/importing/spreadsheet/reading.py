"""Reading a residents spreadsheet (CSV or XLSX) into a Sheet of text cells, and the
columns it may have: their keys, the other headers accepted for each (Chinese first), how a
header is matched, the limits on size, and problems with the file as a whole. Never raises
on what a person uploads."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from monitor.importing.community import quoted
from monitor.messages import N_, Message, Problem

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
MAX_COLUMNS = 64


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


def _norm(header: str) -> str:
    """How a header is matched: width, case, spaces, "(notes)" and a "*" do not matter."""
    text = unicodedata.normalize("NFKC", header).strip().lower()
    text = re.sub(r"\(.*?\)", "", text).strip(" *")
    return re.sub(r"[\s\-]+", "_", text)


ALIASES = {_norm(name): c.key for c in COLUMNS for name in (c.key, *c.aliases)}


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how spreadsheets name columns."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass
class Sheet:
    """A spreadsheet read into text: the column keys in the file, then each non-blank row
    as (its row number as the spreadsheet shows it, {key: cell text}), and the problems
    with the file as a whole."""

    columns: list[str] = field(default_factory=list)
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # column key -> its name in row 1


def file_problem(msgid: str, **params: Any) -> Problem:
    """A problem with the file as a whole."""
    return Problem(None, (msgid, params))


def cell_named(row: int, column: str, headers: Mapping[str, str]) -> Message:
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
                file_problem(
                    N_("the file is larger than %(mb)s MB; split it"), mb=MAX_BYTES // 2**20
                )
            ]
        )
    if not data.removeprefix(b"\xef\xbb\xbf").strip() or data in (b"\xff\xfe", b"\xfe\xff"):
        return Sheet(problems=[file_problem(N_("the file is empty"))])
    try:
        if data.startswith(b"\xd0\xcf\x11\xe0"):
            raise _Unreadable(
                file_problem(
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
            raise _Unreadable(file_problem(NOT_A_SPREADSHEET)) from None
    if b"\x00" in data:
        raise _Unreadable(file_problem(NOT_A_SPREADSHEET))
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text):
            break  # control characters: some binary file, not text
        return text
    raise _Unreadable(
        file_problem(
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
            file_problem(
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
            file_problem(
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
            file_problem(
                N_("row 1 is empty: the first row must name the columns (%(required)s, …)"),
                required=", ".join(REQUIRED),
            )
        )
        return sheet
    header, body = raw[0], raw[1:]
    if len(header) > MAX_COLUMNS and any(header[MAX_COLUMNS:]):
        sheet.problems.append(
            file_problem(N_("the file has more than %(n)s columns"), n=MAX_COLUMNS)
        )
    keys: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header[:MAX_COLUMNS]):
        letter = column_letter(i)
        if not name:
            if any(i < len(row) and row[i] for row in body):
                sheet.problems.append(
                    file_problem(
                        N_("column %(column)s has values but no name in row 1"), column=letter
                    )
                )
            continue
        key = ALIASES.get(_norm(name))
        where = N_("column %(column)s %(name)s"), {"column": letter, "name": quoted(name)}
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
            file_problem(
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
            file_problem(
                N_(
                    "the file has more than %(n)s rows of residents (blank rows count too); "
                    "split it into smaller files"
                ),
                n=f"{MAX_ROWS:,}",
            )
        )
        sheet.rows = []
    elif not sheet.rows and not missing:
        sheet.problems.append(file_problem(N_("the file has a header row but no residents")))
    if missing:
        sheet.rows = []
    return sheet


def format_duration(value: timedelta) -> str:
    """timedelta(minutes=90) -> "1h30m": how grace is written back."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{seconds}s" if seconds else "") if seconds or text else "0m"
