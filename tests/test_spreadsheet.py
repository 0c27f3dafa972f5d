# ruff: noqa: E501 - exact user-facing messages, one per line, read better unwrapped
"""Residents spreadsheets (issue 4, point 6; monitor.importing.spreadsheet): reading CSV in UTF-8 (with
or without BOM), GB18030 and XLSX, Chinese headers, every row problem with the exact
message a staff member reads, whole-file problems, the template importing cleanly, and
what an import writes: only the residents in the file, unless told to retire the others.
A real SQLite database with the shared fixture community (tests/support/world.py)."""

from __future__ import annotations

import io
from datetime import date, time, timedelta
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from support.world import COMMUNITY, at

from curtainwatch.runtime import Runtime
from monitor.importing.load import load_community
from monitor.importing.spreadsheet.plan import Plan, apply_plan, plan_community, plan_sheet
from monitor.importing.spreadsheet.reading import COLUMNS, MAX_ROWS, read_sheet
from monitor.importing.spreadsheet.rows import spec_cells
from monitor.importing.spreadsheet.template import template_csv, template_rows, template_xlsx
from monitor.importing.spreadsheet.uploads import (
    find_upload,
    keep_upload,
    purge_uploads,
    take_upload,
)
from monitor.models import AppSetting, AuditEntry, AwayPeriod, Device, Resident, Routine

NOW = at("06:00")
HEADER = "id,name,building,unit,curtain,help,curtain_open,grace,away\n"
ROW = "r-401,Qian Lan,4,401,curtain-401,card-401,07:00-09:00,15m,2026-12-01..2026-12-07\n"


def plan(rt: Runtime, data: bytes | str, retire_missing: bool = False) -> Plan:
    raw = data.encode() if isinstance(data, str) else data
    with rt.sessions() as s:
        return plan_sheet(s, raw, retire_missing)


def problems(rt: Runtime, body: str, header: str = HEADER) -> list[str]:
    """Every problem of a file with `header` and `body`: file-wide, then row by row."""
    p = plan(rt, header + body)
    return p.problems + [m for r in p.rows for m in r.problems]


def apply(rt: Runtime, p: Plan) -> dict[str, int]:
    with rt.sessions.begin() as s:
        return apply_plan(s, p, rt.clock.now(), "user:admin", "test.csv")


def xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- reading -------------------------------------------------------------------------------


def test_csv_in_utf8_with_and_without_bom_and_in_gb18030_reads_the_same() -> None:
    text = "编号,姓名,楼栋,单元/房号,窗帘,开窗帘\nr-401,钱兰,4,401,curtain-401,07:00-09:00\n"
    for data in (text.encode(), "\ufeff".encode() + text.encode(), text.encode("gb18030")):
        sheet = read_sheet(data)
        assert sheet.problems == []
        assert sheet.columns == ["id", "name", "building", "unit", "curtain", "curtain_open"]
        assert sheet.rows == [
            (
                2,
                {
                    "id": "r-401",
                    "name": "钱兰",
                    "building": "4",
                    "unit": "401",
                    "curtain": "curtain-401",
                    "curtain_open": "07:00-09:00",
                },
            )
        ]


def test_semicolon_and_tab_separated_files_are_read_too() -> None:
    for sep in (";", "\t"):
        sheet = read_sheet(
            sep.join(["id", "name", "building"]).encode()
            + b"\nr-1"
            + sep.encode()
            + b"A"
            + sep.encode()
            + b"3\n"
        )
        assert sheet.problems == []
        assert sheet.rows == [(2, {"id": "r-1", "name": "A", "building": "3"})]


def test_chinese_headers_and_full_width_punctuation_are_understood(rt: Runtime) -> None:
    headers = "编号,姓名,楼栋,房号,电话,联系人,备注,窗帘,门,灯,求助卡,开窗帘,关窗帘,开灯,开门,宽限,无活动小时,外出\n"
    row = (
        "r-402,孙梅,4,402,138 0000 0402,孙强（儿子）,耳背,curtain-402,door-402,light-402,"
        "card-402,07：00～09：00,18:00至22:30,17:30-21:00,06:00-22:00,１５m,12小时,"
        "2026/12/1至2026/12/7\n"
    )
    p = plan(rt, headers + row)
    assert p.ok, p.problems + p.rows[0].problems
    spec = p.rows[0].spec
    assert spec is not None
    assert (spec.id, spec.name, spec.building, spec.unit) == ("r-402", "孙梅", "4", "402")
    assert (spec.phone, spec.contact, spec.notes) == ("138 0000 0402", "孙强（儿子）", "耳背")
    assert sorted(d.kind for d in spec.devices) == ["curtain", "door", "help", "light"]
    windows = {x.kind: (x.start, x.end, x.grace) for x in spec.routines if x.start}
    assert windows["curtain_open"] == (time(7), time(9), timedelta(minutes=15))
    assert windows["curtain_close"] == (time(18), time(22, 30), timedelta(minutes=15))
    assert [x.hours for x in spec.routines if x.kind == "inactivity"] == [12.0]
    assert any(x.kind == "help" for x in spec.routines)  # on with a help card
    assert spec.away == [(date(2026, 12, 1), date(2026, 12, 7))]


def test_xlsx_made_with_openpyxl_reads_numbers_as_the_text_a_person_sees(rt: Runtime) -> None:
    data = xlsx(
        [
            [
                "id",
                "name",
                "building",
                "unit",
                "phone",
                "curtain",
                "curtain_open",
                "grace",
                "inactivity_hours",
                "away",
            ],
            [
                401,
                "Qian Lan",
                4,
                401.0,
                13800000401,
                "curtain-401",
                "07:00-09:00 +20m",
                10,
                12,
                "2026-12-01..2026-12-03",
            ],
            [None] * 10,  # a blank row is skipped, and the next keeps its row number
            ["r-5", "Zhou", "4", "", "", "curtain-5", "", "", 6.5, ""],
        ]
    )
    p = plan(rt, data)
    assert p.ok, [r.problems for r in p.rows]
    assert [(r.number, r.resident_id, r.status) for r in p.rows] == [
        (2, "401", "new"),
        (4, "r-5", "new"),
    ]
    first, second = (r.spec for r in p.rows)
    assert first is not None and second is not None
    assert (first.building, first.unit, first.phone) == ("4", "401", "13800000401")
    curtain = next(x for x in first.routines if x.kind == "curtain_open")
    assert curtain.grace == timedelta(minutes=20)  # its own grace beats the column
    assert [x.hours for x in second.routines] == [6.5]


def test_several_devices_windows_and_away_periods_in_one_cell(rt: Runtime) -> None:
    p = plan(
        rt,
        "id,name,building,door,motion,door_window,activity,away\n"
        'r-9,A,4,"door-9a, door-9b",pir-9;bed-9,06:00-09:00; 17:00-20:00 +30m,'
        "08:00-10:00,2026-12-01..2026-12-02; 2027-01-10\n",
    )
    spec = p.rows[0].spec
    assert spec is not None, p.rows[0].problems
    assert sorted(d.id for d in spec.devices) == ["bed-9", "door-9a", "door-9b", "pir-9"]
    doors = [(x.slot, x.start, x.end, x.grace) for x in spec.routines if x.kind == "door"]
    assert doors == [
        ("door#0", time(6), time(9), timedelta(0)),
        ("door#1", time(17), time(20), timedelta(minutes=30)),
    ]
    assert spec.away == [
        (date(2026, 12, 1), date(2026, 12, 2)),
        (date(2027, 1, 10), date(2027, 1, 10)),
    ]
    assert spec_cells(spec)["door_window"] == "06:00-09:00; 17:00-20:00 +30m"


# -- row problems: every one names the row and the column ------------------------------------


ROW_PROBLEMS = [
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,7:00-25:00,,",
        'row 2, column curtain_open: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)',
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,0700,,",
        'row 2, column curtain_open: "0700" is not a time window (expected like "07:00-09:00" or "07:00-09:00 +15m")',
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,07:00-07:00,,",
        "row 2, column curtain_open: the window 07:00–07:00 is empty",
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,07:00-09:00,15x,",
        'row 2, column grace: "15x" is not a duration (expected like "15m" or "1h")',
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,07:00-09:00 +13h,,",
        'row 2, column curtain_open: "13h" is longer than the 12 hours grace allows',
    ),
    (
        "r-401,Qian Lan,4,401,,card-401,07:00-09:00,,",
        "row 2, column curtain_open: routine curtain_open needs a curtain device, and this resident has none",
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,,,2026-02-30",
        'row 2, column away: "2026-02-30" is not a date (expected "YYYY-MM-DD")',
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,,,2026-12-07..2026-12-01",
        "row 2, column away: 2026-12-01 is before 2026-12-07",
    ),
    (
        ",Qian Lan,4,401,curtain-401,card-401,,,",
        "row 2, column id: is empty",
    ),
    (
        "r-401,,4,401,curtain-401,card-401,,,",
        "row 2, column name: is empty",
    ),
    (
        "r-401,Qian Lan,,401,curtain-401,card-401,,,",
        "row 2, column building: is empty",
    ),
    (
        'r-401,Qian Lan,4,401,"curtain-401, curtain-401",card-401,,,',
        'row 2, column curtain: device id "curtain-401" is already used by column curtain',
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,card-401,07:00-09:00; 07:00-09:00,,",
        'row 2, column curtain_open: routine "curtain_open 07:00–09:00" is already used by column curtain_open',
    ),
    (
        "r-401,Qian Lan,4,401,curtain-401,curtain-301,,,",
        'row 2, column help: device "curtain-301" belongs to r-301 (Wang Shulan), who is not in this file; remove it there first, or add that resident\'s row',
    ),
    (
        "r-401,Qian Lan,4," + "9" * 65 + ",curtain-401,card-401,,,",
        "row 2, column unit: is longer than 64 characters",
    ),
]


@pytest.mark.parametrize(("row", "message"), ROW_PROBLEMS)
def test_each_row_problem_names_row_and_column(rt: Runtime, row: str, message: str) -> None:
    p = plan(rt, HEADER + row + "\n")
    assert [m for r in p.rows for m in r.problems] == [message]
    assert p.rows[0].status == "invalid" and not p.ok


def test_other_columns_problems_with_their_exact_messages(rt: Runtime) -> None:
    header = "id,name,building,timezone,phone,light,inactivity_hours\n"
    assert problems(rt, "r-1,A,4,Mars/Olympus,,light-1,12\n", header) == [
        'row 2, column timezone: "Mars/Olympus" is not a known time zone (like "Asia/Shanghai")'
    ]
    assert problems(rt, "r-1,A,4,,,light-1,abc\n", header) == [
        'row 2, column inactivity_hours: "abc" is not a number of hours (more than 0, at most 168)'
    ]
    assert problems(rt, "r-1,A,4,,,light-1,200\n", header) == [
        "row 2, column inactivity_hours: 200 is not a number of hours (more than 0, at most 168)"
    ]
    assert problems(rt, "r-1,A,4,,,,12\n", header) == [
        "row 2, column inactivity_hours: routine inactivity needs at least one device, and this resident has none"
    ]
    assert problems(rt, "r-1,A,4,,+86 " + "1" * 70 + ",light-1,\n", header) == [
        "row 2, column phone: is longer than 64 characters"
    ]


def test_problems_across_rows_name_both_rows(rt: Runtime) -> None:
    body = (
        "r-401,Qian Lan,4,401,curtain-401,card-401,,,\n"
        "r-402,Sun Mei,4,402,curtain-401,card-402,,,\n"
        "r-401,Qian Lan again,4,401,curtain-9,card-9,,,\n"
    )
    assert problems(rt, body) == [
        'row 3, column curtain: device id "curtain-401" is already used by row 2 (column curtain)',
        'row 4, column id: resident id "r-401" is already used by row 2',
    ]


def test_a_good_row_and_a_bad_row_block_the_whole_file(rt: Runtime) -> None:
    p = plan(rt, HEADER + ROW + "r-402,,4,402,,,,,\n")
    assert [r.status for r in p.rows] == ["new", "invalid"]
    assert p.problem_count == 1 and not p.ok
    with rt.sessions.begin() as s, pytest.raises(ValueError, match="problems"):
        apply_plan(s, p, NOW, "user:admin", "x.csv")
    with rt.sessions() as s:
        assert s.get(Resident, "r-401") is None


# -- whole-file problems ---------------------------------------------------------------------


def test_whole_file_problems() -> None:
    def said(data: bytes) -> list[str]:
        return read_sheet(data).problems

    assert said(b"") == ["the file is empty"]
    assert said(b"\xef\xbb\xbf  \n") == ["the file is empty"]
    assert said(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR") == [
        "the file is not a spreadsheet (CSV or XLSX)"
    ]
    assert said(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100) == [
        "this is an old Excel .xls file; save it as .xlsx (Excel workbook) or as CSV UTF-8, "
        "then upload that"
    ]
    broken = said(b"PK\x03\x04 this is no workbook")
    assert len(broken) == 1 and broken[0].startswith(
        "the file could not be read as an XLSX workbook (save it from Excel or WPS as .xlsx, "
        "or as CSV)"
    )
    assert said(b"id,name\nr-1,A\n") == [
        "the column building is missing (row 1 must name the columns; needed: id, name, building)"
    ]
    assert said("id,name,building,楼层\nr-1,A,3,5\n".encode()) == [
        'column D "楼层": unknown column (known: ' + ", ".join(c.key for c in COLUMNS) + ")"
    ]
    assert said("id,name,building,楼号\nr-1,A,3,5\n".encode()) == [
        'column D "楼号": the column building is already column C'
    ]
    assert said(b"id,name,building,\nr-1,A,3,x\n") == ["column D has values but no name in row 1"]
    assert said(b"id,name,building,,\nr-1,A,3,,\n") == []  # empty trailing columns are fine
    assert said(b"id,name,building\n\n,,\n") == ["the file has a header row but no residents"]
    assert said(b",,\nr-1,A,3\n") == [
        "row 1 is empty: the first row must name the columns (id, name, building, …)"
    ]


def test_too_many_rows_and_too_big_files_are_refused() -> None:
    rows = "".join(f"r-{i},A,3\n" for i in range(MAX_ROWS + 1))
    sheet = read_sheet(("id,name,building\n" + rows).encode())
    assert sheet.problems == [
        "the file has more than 20,000 rows of residents (blank rows count too); split it "
        "into smaller files"
    ]
    assert sheet.rows == []
    exactly = read_sheet(("id,name,building\n" + rows.split("\n", 1)[1]).encode())
    assert exactly.problems == [] and len(exactly.rows) == MAX_ROWS
    big = b"id,name,building\n" + b"r-1,A,3," + b"x" * (5 * 1024 * 1024)
    assert read_sheet(big).problems == ["the file is larger than 5 MB; split it"]


# -- the template ----------------------------------------------------------------------------


def test_template_rows_come_from_the_column_definitions() -> None:
    header, example = template_rows()
    assert header == [c.key for c in COLUMNS]
    assert len(example) == len(header)
    assert template_csv().startswith("\ufeffid,name,building,".encode())


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_template_example_row_imports_cleanly(rt: Runtime, fmt: str) -> None:
    data = template_csv() if fmt == "csv" else template_xlsx([["column", "meaning"]])
    p = plan(rt, data)
    assert p.ok, p.problems + [m for r in p.rows for m in r.problems]
    assert [(r.number, r.resident_id, r.status) for r in p.rows] == [(2, "r-101", "new")]
    apply(rt, p)
    with rt.sessions() as s:
        resident = s.get(Resident, "r-101")
        assert resident is not None and resident.name == "王淑兰" and resident.active
        assert sorted(s.scalars(select(Device.id).where(Device.resident_id == "r-101"))) == [
            "card-101",
            "curtain-101",
            "door-101",
            "light-101",
        ]
        kinds = s.scalars(
            select(Routine.kind).where(Routine.resident_id == "r-101", Routine.active)
        )
        assert sorted(kinds) == [
            "curtain_close",
            "curtain_open",
            "door",
            "help",
            "inactivity",
            "light_on",
        ]
    assert plan(rt, data).rows[0].status == "unchanged"  # importing it again changes nothing


def test_template_xlsx_keeps_cells_as_text_and_explains_the_columns() -> None:
    book = load_workbook(io.BytesIO(template_xlsx([["column", "meaning"], ["id", "x"]])))
    assert book.sheetnames == ["residents", "columns"]
    sheet = book["residents"]
    assert [c.value for c in sheet[1]] == [c.key for c in COLUMNS]
    assert sheet["A2"].number_format == "@"


# -- what an import writes -------------------------------------------------------------------


def test_a_small_sheet_updates_its_residents_and_leaves_the_others_watched(rt: Runtime) -> None:
    p = plan(
        rt, "id,name,building,phone\nr-302,Zhao Guiying,3,139 0000 0302\n" + "r-401,Qian Lan,4,\n"
    )
    assert [(r.resident_id, r.status) for r in p.rows] == [("r-302", "changed"), ("r-401", "new")]
    changed = p.rows[0]
    assert [(c.column, c.before, c.after) for c in changed.changes] == [
        ("phone", "", "139 0000 0302")
    ]
    assert p.retire == []
    assert apply(rt, p) == {"new": 1, "changed": 1, "unchanged": 0, "invalid": 0, "retired": 0}
    with rt.sessions() as s:
        active = set(s.scalars(select(Resident.id).where(Resident.active)))
        assert active == {"r-301", "r-302", "r-401", "r-501"}
        # Columns the file leaves out keep what is stored: r-302's devices and routine.
        assert sorted(s.scalars(select(Device.id).where(Device.resident_id == "r-302"))) == [
            "card-302",
            "curtain-302",
        ]
        routine = s.scalars(
            select(Routine).where(Routine.resident_id == "r-302", Routine.kind == "curtain_open")
        ).one()
        assert (routine.active, routine.start, routine.grace_s) == (True, "07:00", 900)
        r302 = s.get(Resident, "r-302")
        assert r302 is not None and r302.phone == "139 0000 0302"
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "import.spreadsheet")).one()
        assert (entry.actor, entry.target) == ("user:admin", "test.csv")
        assert '"new": 1' in entry.detail and '"changed": 1' in entry.detail


def test_ticking_retire_stops_watching_residents_not_in_the_file(rt: Runtime) -> None:
    p = plan(rt, "id,name,building\nr-302,Zhao Guiying,3\n", retire_missing=True)
    assert p.retire == [("r-301", "Wang Shulan"), ("r-501", "Sun Lihua")]
    assert p.rows[0].status == "unchanged"
    apply(rt, p)
    with rt.sessions() as s:
        assert set(s.scalars(select(Resident.id).where(Resident.active))) == {"r-302"}
        assert (
            s.scalar(
                select(func.count())
                .select_from(Routine)
                .where(Routine.resident_id.in_(["r-301", "r-501"]), Routine.active)
            )
            == 0
        )
        assert (
            s.scalar(
                select(func.count())
                .select_from(Device)
                .where(Device.resident_id.in_(["r-301", "r-501"]))
            )
            == 0
        )


def test_a_device_moving_between_residents_in_the_file_is_fine(rt: Runtime) -> None:
    body = (
        "id,name,building,curtain,help\n"
        "r-301,Wang Shulan,3,curtain-302,card-301\n"
        "r-302,Zhao Guiying,3,curtain-301,card-302\n"
    )
    p = plan(rt, body)
    assert p.ok, [r.problems for r in p.rows]
    assert [(c.column, c.before, c.after) for c in p.rows[0].changes] == [
        ("curtain", "curtain-301", "curtain-302")
    ]
    apply(rt, p)
    with rt.sessions() as s:
        moved = s.get(Device, "curtain-301")
        assert moved is not None and moved.resident_id == "r-302"


def test_emptying_a_cell_removes_devices_routines_and_away(rt: Runtime) -> None:
    p = plan(rt, "id,name,building,door,door_window,away\nr-501,Sun Lihua,5,,,\n")
    assert [(c.column, c.before, c.after) for c in p.rows[0].changes] == [
        ("door", "door-501", ""),
        ("door_window", "06:00-22:00", ""),
        ("away", "2026-12-20..2026-12-27", ""),
    ]
    apply(rt, p)
    with rt.sessions() as s:
        assert s.get(Device, "door-501") is None
        assert s.scalar(select(func.count()).select_from(AwayPeriod)) == 0
        door = s.scalars(
            select(Routine).where(Routine.resident_id == "r-501", Routine.kind == "door")
        ).one()
        assert (door.active, door.next_due_at) == (False, None)


def test_a_light_keeps_its_threshold_which_the_sheet_has_no_column_for(rt: Runtime) -> None:
    with rt.sessions.begin() as s:
        light = s.get(Device, "light-301")
        assert light is not None
        light.light_threshold = 55.0
    p = plan(rt, "id,name,building,light\nr-301,Wang Shulan,3,light-301\n")
    assert p.rows[0].status == "unchanged"


def test_the_stored_community_read_back_as_a_sheet_is_unchanged(rt: Runtime) -> None:
    spec = load_community(COMMUNITY)
    keys = [c.key for c in COLUMNS]
    lines = [",".join(keys)] + [
        ",".join('"' + spec_cells(r)[k] + '"' for k in keys) for r in spec.residents
    ]
    p = plan(rt, "\n".join(lines) + "\n")
    assert p.ok
    assert [r.status for r in p.rows] == ["unchanged"] * 3


def test_a_resident_no_longer_watched_is_watched_again(rt: Runtime) -> None:
    apply(rt, plan(rt, "id,name,building\nr-302,Zhao Guiying,3\n", retire_missing=True))
    p = plan(
        rt,
        "id,name,building,curtain,door,curtain_open\nr-501,Sun Lihua,5,curtain-501,,07:00-09:00\n",
    )
    row = p.rows[0]
    assert (row.status, row.reactivated) == ("changed", True)
    apply(rt, p)
    with rt.sessions() as s:
        r501 = s.get(Resident, "r-501")
        assert r501 is not None and r501.active
        routine = s.scalars(
            select(Routine).where(Routine.resident_id == "r-501", Routine.active)
        ).one()
        assert routine.kind == "curtain_open" and routine.next_due_at == at("09:00")


def test_the_digest_changes_when_the_database_does(rt: Runtime) -> None:
    data = "id,name,building,phone\nr-302,Zhao Guiying,3,1\n"
    first = plan(rt, data).digest()
    assert plan(rt, data).digest() == first
    with rt.sessions.begin() as s:
        r302 = s.get(Resident, "r-302")
        assert r302 is not None
        r302.phone = "2"
    assert plan(rt, data).digest() != first


# -- the community file's preview -----------------------------------------------------------


def test_community_preview_lists_changes_retirements_people_and_settings(rt: Runtime) -> None:
    text = (
        COMMUNITY.replace("timezone: Asia/Shanghai", "timezone: Asia/Urumqi", 1)
        .replace("name: Zhao Guiying", "name: Zhao G")
        .replace("{after: 30m, notify: family}", "{after: 45m, notify: family}")
    )
    # r-501 leaves the file (its family member f-sun must go too, or the file is invalid)
    start = text.index("  - id: r-501")
    text = text[:start] + text[text.index("people:") :]
    text = text.replace(text[text.index("  - {id: f-sun") : text.index("escalation:")], "")
    with rt.sessions() as s:
        p = plan_community(s, text.encode())
    assert p.ok, p.problems
    assert [(r.resident_id, r.status) for r in p.rows] == [
        ("r-301", "changed"),
        ("r-302", "changed"),
    ]
    assert ("name", "Zhao Guiying", "Zhao G") in [
        (c.column, c.before, c.after) for c in p.rows[1].changes
    ]
    assert p.retire == [("r-501", "Sun Lihua")]
    assert [(x.id, x.status) for x in p.people] == [("f-sun", "removed")]
    assert [(c.column, c.before, c.after) for c in p.settings] == [
        ("timezone", "Asia/Shanghai", "Asia/Urumqi"),
        (
            "escalation",
            "0m volunteers, 15m staff, 30m family",
            "0m volunteers, 15m staff, 45m family",
        ),
    ]


def test_community_preview_shows_every_problem_with_its_path(rt: Runtime) -> None:
    text = COMMUNITY.replace('end: "22:30"', 'end: "25:00"')
    with rt.sessions() as s:
        p = plan_community(s, text.encode())
    assert p.problems == [
        'residents[0].routines[1].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)'
    ]
    assert not p.ok
    with rt.sessions() as s:
        assert plan_community(s, "timezone: Asia/Shanghai\n".encode("utf-16")).problems == [
            "the file is not UTF-8 text; save it as UTF-8 and upload it again"
        ]


# -- uploads kept between preview and import ------------------------------------------------


def test_an_upload_is_kept_for_its_user_for_an_hour_and_taken_once(rt: Runtime) -> None:
    with rt.sessions.begin() as s:
        key = keep_upload(s, 1, "a.csv", "sheet", b"id,name,building\n", NOW, retire_missing=True)
    with rt.sessions() as s:
        found = find_upload(s, key, 1, NOW + timedelta(minutes=59))
        assert found is not None
        assert (found.filename, found.kind, found.retire_missing, found.data) == (
            "a.csv",
            "sheet",
            True,
            b"id,name,building\n",
        )
        assert find_upload(s, key, 2, NOW) is None  # another user's upload
        assert find_upload(s, key, 1, NOW + timedelta(minutes=61)) is None  # expired
        # The key is random: one in 64 already ends in "x".
        wrong = key[:-1] + ("y" if key.endswith("x") else "x")
        assert find_upload(s, wrong, 1, NOW) is None
        assert find_upload(s, "../etc", 1, NOW) is None
    with rt.sessions.begin() as s:
        assert take_upload(s, key) is True
    with rt.sessions.begin() as s:
        assert take_upload(s, key) is False


def test_expired_uploads_are_purged(rt: Runtime) -> None:
    with rt.sessions.begin() as s:
        keep_upload(s, 1, "old.csv", "sheet", b"x", NOW)
        keep_upload(s, 1, "new.csv", "sheet", b"y", NOW + timedelta(minutes=30))
    with rt.sessions.begin() as s:
        assert purge_uploads(s, NOW + timedelta(minutes=70)) == 1
    with rt.sessions() as s:
        keys = list(s.scalars(select(AppSetting.key).where(AppSetting.key.startswith("import:"))))
        assert len(keys) == 1
