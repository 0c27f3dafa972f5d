"""Importing a community (monitor/importing/apply.py, the one path that writes one): nothing
changes when the file is rejected, nothing when it is imported twice, a changed file
updates in place (routines keep their place in time, a settled day is not reopened, removed
residents, routines and devices retire, devices move with what they reported); the shared
community files; `curtainwatch import`. No broker: a Runtime on a simulated clock
(support.world), readings fed to its ingestor directly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from support.community_file import FULL
from support.watch import events
from support.world import BUILDING_3, DAY, World, at, feed

from curtainwatch.cli import main
from curtainwatch.runtime import Runtime
from monitor.importing.community import CommunityError
from monitor.importing.load import load_community
from monitor.models import (
    Alert,
    AwayPeriod,
    Device,
    Person,
    Resident,
    Routine,
    Settlement,
    UnknownDevice,
)

EMPTY = World(None, start="05:00", users=False)
"""Nothing imported yet (each test imports its file), no users, at 05:00 on DAY."""

TABLES = {
    "residents": Resident,
    "devices": Device,
    "routines": Routine,
    "away_periods": AwayPeriod,
    "people": Person,
}


@pytest.fixture
def world() -> World:
    return EMPTY


# -- helpers ---------------------------------------------------------------------------------


def snapshot(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table, in a comparable form."""
    with rt.db.connect() as conn:
        names = [n for n in inspect(conn).get_table_names() if n != "alembic_version"]
        return {
            n: sorted(repr(tuple(row)) for row in conn.exec_driver_sql(f'SELECT * FROM "{n}"'))
            for n in names
        }


def counts(rt: Runtime) -> dict[str, int]:
    with rt.sessions() as s:
        return {
            name: s.scalar(select(func.count()).select_from(model)) or 0
            for name, model in TABLES.items()
        }


def routines(rt: Runtime, **where: Any) -> list[Routine]:
    with rt.sessions() as s:
        return list(s.scalars(select(Routine).filter_by(**where).order_by(Routine.id)))


def device(rt: Runtime, device_id: str) -> Device | None:
    with rt.sessions() as s:
        return s.get(Device, device_id)


def utc(day: str, hm: str) -> datetime:
    return at(hm, day).astimezone(UTC)


# -- import: a rejected file changes nothing -------------------------------------------------

BAD_FILES = [
    pytest.param(
        FULL.replace(
            'end: "09:00", grace: 15m}\n      - {kind: curtain_close',
            'end: "25:00", grace: 15m}\n      - {kind: curtain_close',
        ),
        id="bad-time",
    ),
    # every section valid (and different from what is stored), one unknown field
    pytest.param(BUILDING_3 + "bogus: 1\n", id="valid-sections-plus-unknown-field"),
    pytest.param(FULL + "  - {after: 1h, notify: everyone\n", id="invalid-yaml"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("bad", BAD_FILES)
def test_a_rejected_file_changes_nothing(rt: Runtime, bad: str) -> None:
    rt.import_community(FULL)
    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "06:10")
    feed(rt, "zigbee2mqtt/ghost-9", {"contact": True}, "06:10")
    before = snapshot(rt)
    assert before["devices"] and before["routines"] and before["events"]
    rt.clock.advance(timedelta(hours=1))
    with pytest.raises(CommunityError):
        rt.import_community(bad)
    assert snapshot(rt) == before
    # the runtime still works: a reading after the rejection is stored for the old community
    feed(rt, "zigbee2mqtt/door-301", {"contact": True}, "07:20")
    assert [e.value for e in events(rt, device_id="door-301")] == ["open", "closed"]


def test_a_refused_file_changes_nothing(rt: Runtime) -> None:
    """A file refused for one bad value (a NaN lux threshold) leaves the database as it was,
    although it also removes a resident."""
    rt.import_community(FULL)
    before = snapshot(rt)
    bad = FULL.replace(
        "{id: light-301, kind: light}", "{id: light-301, kind: light, light_threshold: .nan}"
    )
    bad = bad.replace("  - id: r-302", "  - id: r-303")  # removes a resident before failing
    with pytest.raises(CommunityError):
        rt.import_community(bad)
    assert snapshot(rt) == before


# -- import: idempotent -------------------------------------------------------------------------


def routine_timing(rt: Runtime) -> list[tuple[object, ...]]:
    return [
        (x.id, x.resident_id, x.slot, x.active, x.window_date, x.window_start_at, x.next_due_at)
        for x in routines(rt)
    ]


@pytest.mark.parametrize("text", [FULL, BUILDING_3], ids=["full", "watch-sample"])
def test_importing_the_same_file_twice_changes_nothing(rt: Runtime, text: str) -> None:
    first = rt.import_community(text)
    rows, timing = counts(rt), routine_timing(rt)
    devices_before, people_before = snapshot(rt)["devices"], snapshot(rt)["people"]
    assert rows["residents"] == 2 and rows["devices"] > 0 and rows["people"] > 0
    assert any(t[-1] is not None for t in timing)
    rt.clock.advance(timedelta(hours=1))  # 06:00: no window has closed yet
    assert rt.import_community(text) == first
    assert counts(rt) == rows
    assert routine_timing(rt) == timing
    after = snapshot(rt)
    assert (after["devices"], after["people"]) == (devices_before, people_before)


def test_import_counts_and_scheduled_windows(rt: Runtime) -> None:
    assert rt.import_community(FULL) == {"residents": 2, "devices": 6, "routines": 8, "people": 3}
    assert counts(rt) == {
        "residents": 2,
        "devices": 6,
        "routines": 8,
        "away_periods": 1,
        "people": 3,
    }
    due = {(x.resident_id, x.kind): x.next_due_at for x in routines(rt)}
    assert due == {
        ("r-301", "curtain_open"): utc(DAY, "09:15"),
        ("r-301", "curtain_close"): utc(DAY, "22:30"),
        ("r-301", "light_on"): utc(DAY, "21:00"),
        ("r-301", "door"): utc(DAY, "22:00"),
        ("r-301", "inactivity"): utc(DAY, "17:00"),  # 12 h after the import at 05:00
        ("r-301", "help"): None,
        ("r-302", "curtain_open"): utc(DAY, "09:15"),
        ("r-302", "help"): None,
    }
    with rt.sessions() as s:
        (away,) = s.scalars(select(AwayPeriod))
        assert (away.resident_id, away.first_day, away.last_day) == (
            "r-301",
            date(2026, 12, 1),
            date(2026, 12, 7),
        )
        family = s.get(Person, "f-wang")
        assert family is not None
        assert (family.role, family.resident_id, family.consent) == (
            "family",
            "r-301",
            date(2026, 11, 20),
        )


# -- import: a changed file updates in place -----------------------------------------------------

LATER_END = FULL.replace(
    '{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}\n      - {kind: curtain_close',
    '{kind: curtain_open, start: "07:00", end: "10:00", grace: 15m}\n      - {kind: curtain_close',
)
LATER_GRACE = FULL.replace(
    '{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}\n      - {kind: curtain_close',
    '{kind: curtain_open, start: "07:00", end: "09:00", grace: 45m}\n      - {kind: curtain_close',
)
assert LATER_END != FULL and LATER_GRACE != FULL


def curtain_open(rt: Runtime, resident: str = "r-301") -> Routine:
    (x,) = routines(rt, resident_id=resident, kind="curtain_open", active=True)
    return x


def test_changing_an_end_time_moves_the_next_window(rt: Runtime) -> None:
    rt.import_community(FULL)
    assert curtain_open(rt).next_due_at == utc(DAY, "09:15")
    untouched = curtain_open(rt, "r-302")
    rt.import_community(LATER_END)
    moved = curtain_open(rt)
    assert (moved.start, moved.end, moved.window_date, moved.next_due_at) == (
        "07:00",
        "10:00",
        date(2026, 11, 23),
        utc(DAY, "10:15"),
    )
    # the other resident's identical routine is not touched
    same = curtain_open(rt, "r-302")
    assert (same.id, same.next_due_at) == (untouched.id, untouched.next_due_at)


def test_changing_an_end_time_updates_the_routine_in_place(rt: Runtime) -> None:
    rt.import_community(FULL)
    before = curtain_open(rt)
    rt.import_community(LATER_END)
    after = curtain_open(rt)
    assert after.id == before.id
    assert counts(rt)["routines"] == 8


def _settle_the_morning(rt: Runtime) -> None:
    """Curtain opens 07:30; at 09:30 the 07:00-09:00(+15m) window of 2026-11-23 is settled."""
    rt.import_community(FULL)
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:30")
    rt.clock.set(at("09:30"))
    rt.engine.settle_due()
    with rt.sessions() as s:
        settled = s.execute(
            select(Settlement.window_date, Settlement.outcome).where(
                Settlement.kind == "curtain_open", Settlement.resident_id == "r-301"
            )
        ).all()
    assert settled == [(date(2026, 11, 23), "satisfied")]


def _curtain_open_settlements(rt: Runtime) -> list[date]:
    with rt.sessions() as s:
        return list(
            s.scalars(
                select(Settlement.window_date)
                .where(Settlement.kind == "curtain_open", Settlement.resident_id == "r-301")
                .order_by(Settlement.id)
            )
        )


def test_a_settled_day_is_not_reopened_when_the_grace_grows(rt: Runtime) -> None:
    _settle_the_morning(rt)
    before = curtain_open(rt)
    rt.import_community(LATER_GRACE)  # 09:45 is still ahead, but today is settled
    after = curtain_open(rt)
    assert after.id == before.id
    assert (after.window_date, after.next_due_at) == (
        date(2026, 11, 24),
        utc("2026-11-24", "09:45"),
    )
    rt.clock.set(at("10:30"))
    rt.engine.settle_due()
    assert _curtain_open_settlements(rt) == [date(2026, 11, 23)]


def test_a_settled_day_is_not_reopened_when_the_end_moves_later(rt: Runtime) -> None:
    _settle_the_morning(rt)
    rt.import_community(LATER_END)
    after = curtain_open(rt)
    assert (after.window_date, after.next_due_at) == (
        date(2026, 11, 24),
        utc("2026-11-24", "10:15"),
    )
    rt.clock.set(at("10:30"))
    rt.engine.settle_due()
    assert _curtain_open_settlements(rt) == [date(2026, 11, 23)]


def test_removing_a_resident_deactivates_it_and_its_routines(rt: Runtime) -> None:
    rt.import_community(FULL)
    kept = routine_timing(rt)
    without = FULL[: FULL.index("  - id: r-302")] + FULL[FULL.index("people:") :]
    assert rt.import_community(without)["residents"] == 1
    with rt.sessions() as s:
        assert {r.id: r.active for r in s.scalars(select(Resident))} == {
            "r-301": True,
            "r-302": False,
        }
    gone = routines(rt, resident_id="r-302")
    assert [(x.kind, x.active, x.next_due_at) for x in gone] == [
        ("curtain_open", False, None),
        ("help", False, None),
    ]
    assert [t for t in routine_timing(rt) if t[1] == "r-301"] == [
        t for t in kept if t[1] == "r-301"
    ]
    # back in the file: active again, with a window to watch
    rt.import_community(FULL)
    assert curtain_open(rt, "r-302").next_due_at == utc(DAY, "09:15")
    with rt.sessions() as s:
        resident = s.get(Resident, "r-302")
        assert resident is not None and resident.active


def test_removing_a_routine_deactivates_it(rt: Runtime) -> None:
    rt.import_community(FULL)
    rt.import_community(FULL.replace('      - {kind: door, start: "06:00", end: "22:00"}\n', ""))
    (door,) = routines(rt, resident_id="r-301", kind="door")
    assert (door.active, door.next_due_at) == (False, None)


def test_removing_a_device_deletes_it(rt: Runtime) -> None:
    rt.import_community(FULL)
    without = FULL.replace("      - {id: light-301, kind: light}\n", "").replace(
        '      - {kind: light_on, start: "17:30", end: "21:00"}\n', ""
    )
    assert rt.import_community(without)["devices"] == 5
    assert device(rt, "light-301") is None
    assert device(rt, "curtain-301") is not None
    (light_on,) = routines(rt, kind="light_on")
    assert (light_on.active, light_on.next_due_at) == (False, None)
    # the ingestor forgot it too: its readings now come from an unknown device
    feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "18:00")
    assert events(rt, device_id="light-301") == []
    with rt.sessions() as s:
        assert s.get(UnknownDevice, "light-301") is not None


TWO_HOMES = """
timezone: Asia/Shanghai
residents:
  - id: r-a
    name: A
    building: "1"
    devices: [{{id: door-a, kind: door}}{a}]
  - id: r-b
    name: B
    building: "1"
    devices: [{{id: door-b, kind: door}}{b}]
"""
MOTION_A = ", {id: motion-a, kind: motion}"
MOTION_B = ", {id: motion-b, kind: motion}"
MOVES = [
    pytest.param(
        "motion-b",
        TWO_HOMES.format(a="", b=MOTION_B),
        TWO_HOMES.format(a=MOTION_B, b=""),
        "r-a",
        id="to-a-resident-listed-earlier",
    ),
    pytest.param(
        "motion-a",
        TWO_HOMES.format(a=MOTION_A, b=""),
        TWO_HOMES.format(a="", b=MOTION_A),
        "r-b",
        id="to-a-resident-listed-later",
    ),
]


@pytest.mark.parametrize(("device_id", "before", "after", "owner"), MOVES)
def test_moving_a_device_moves_it(
    rt: Runtime, device_id: str, before: str, after: str, owner: str
) -> None:
    rt.import_community(before)
    feed(rt, f"zigbee2mqtt/{device_id}", {"occupancy": True}, "06:00")
    rt.import_community(after)
    moved = device(rt, device_id)
    assert moved is not None and (moved.resident_id, moved.kind) == (owner, "motion")
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Device)) == 3
    feed(rt, f"zigbee2mqtt/{device_id}", {"occupancy": False}, "06:05")
    assert [(e.resident_id, e.value) for e in events(rt, device_id=device_id)][-1] == (
        owner,
        "idle",
    )


@pytest.mark.parametrize(
    ("device_id", "before", "after", "owner"),
    [
        MOVES[0],
        pytest.param(*MOVES[1].values, id=MOVES[1].id),
    ],
)
def test_a_moved_device_keeps_what_it_reported(
    rt: Runtime, device_id: str, before: str, after: str, owner: str
) -> None:
    rt.import_community(before)
    created = device(rt, device_id)
    assert created is not None
    feed(rt, f"zigbee2mqtt/{device_id}", {"occupancy": True, "battery": 80}, "06:00")
    rt.clock.set(at("06:30"))
    rt.import_community(after)
    moved = device(rt, device_id)
    assert moved is not None and moved.resident_id == owner
    assert (moved.state, moved.last_seen, moved.battery, moved.created_at) == (
        "active",
        utc(DAY, "06:00"),
        80.0,
        created.created_at,
    )


def test_an_import_resolves_the_device_alerts_of_devices_it_moved_or_removed(
    rt: Runtime,
) -> None:
    rt.import_community(FULL)
    offline = [
        (f"zigbee2mqtt/{d}/availability", {"state": "offline"})
        for d in ("door-301", "light-301", "curtain-302")
    ]
    for topic, payload in offline:
        feed(rt, topic, payload, "06:00")
    rt.engine.check_devices()
    # door-301 moves to r-302, light-301 leaves the file, curtain-302 stays where it is.
    door, light = "      - {id: door-301, kind: door}\n", "      - {id: light-301, kind: light}\n"
    card = "      - {id: card-302, kind: help}\n"
    after = FULL.replace(door, "").replace(light, "").replace(card, card + door)
    after = after.replace('      - {kind: door, start: "06:00", end: "22:00"}\n', "")
    after = after.replace('      - {kind: light_on, start: "17:30", end: "21:00"}\n', "")
    rt.clock.set(at("06:30"))
    rt.import_community(after)
    with rt.sessions() as s:
        found = {
            (a.resident_id, a.cause): (a.status, a.outcome, a.resolved_by)
            for a in s.scalars(select(Alert))
        }
    assert found == {
        ("r-301", "device_offline:door-301"): ("resolved", "device_moved", "curtainwatch"),
        ("r-301", "device_offline:light-301"): ("resolved", "device_removed", "curtainwatch"),
        ("r-302", "device_offline:curtain-302"): ("open", None, None),
    }
    # The moved door, still offline, is now r-302's to worry about.
    rt.engine.check_devices()
    with rt.sessions() as s:
        assert (
            s.scalar(
                select(Alert.status).where(
                    Alert.resident_id == "r-302", Alert.cause == "device_offline:door-301"
                )
            )
            == "open"
        )


def test_an_unknown_device_is_forgotten_once_assigned(rt: Runtime) -> None:
    rt.import_community(FULL)
    feed(rt, "zigbee2mqtt/door-302", {"contact": True}, "06:00")
    feed(rt, "zigbee2mqtt/ghost-1", {"contact": True}, "06:00")
    with rt.sessions() as s:
        assert sorted(s.scalars(select(UnknownDevice.id))) == ["door-302", "ghost-1"]
    assigned = FULL.replace(
        "      - {id: card-302, kind: help}\n",
        "      - {id: card-302, kind: help}\n      - {id: door-302, kind: door}\n",
    )
    rt.import_community(assigned)
    with rt.sessions() as s:
        assert list(s.scalars(select(UnknownDevice.id))) == ["ghost-1"]
    feed(rt, "zigbee2mqtt/door-302", {"contact": False}, "06:05")
    assert [(e.resident_id, e.kind, e.value) for e in events(rt, device_id="door-302")] == [
        ("r-302", "door", "open")
    ]
    with rt.sessions() as s:
        assert list(s.scalars(select(UnknownDevice.id))) == ["ghost-1"]


def test_help_routine_is_stored_for_residents_with_a_help_device(rt: Runtime) -> None:
    rt.import_community(FULL)
    helps = routines(rt, kind="help")
    assert [
        (x.resident_id, x.active, x.next_due_at, x.match_kind, x.match_value) for x in helps
    ] == [("r-301", True, None, "help", "help"), ("r-302", True, None, "help", "help")]
    # take r-302's card away: no help device, so its help routine goes
    rt.import_community(FULL.replace("      - {id: card-302, kind: help}\n", ""))
    assert [(x.resident_id, x.active) for x in routines(rt, kind="help")] == [
        ("r-301", True),
        ("r-302", False),
    ]


# -- the shared community files -------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("home_name", ["kasteren-a", "kasteren-b", "kasteren-c"])
def test_shared_community_files_load_and_import(
    shared_data: Path, db_url: str, home_name: str
) -> None:
    text = (shared_data / home_name / "community.yaml").read_text(encoding="utf-8")
    spec = load_community(text)
    (resident,) = spec.residents
    assert resident.id == home_name and resident.timezone == "Europe/Amsterdam"
    rt = World(None, start=datetime(2008, 2, 25, 12, 0, tzinfo=UTC), users=False).runtime(db_url)
    assert rt.import_community(text) == {
        "residents": 1,
        "devices": len(resident.devices),
        "routines": 2,
        "people": 0,
    }
    with rt.sessions() as s:
        stored = sorted(s.scalars(select(Device.id).where(Device.resident_id == home_name)))
    assert stored == sorted(d.id for d in resident.devices)
    assert sorted(x.kind for x in routines(rt, active=True)) == ["activity", "inactivity"]
    assert all(x.next_due_at is not None for x in routines(rt))
    assert rt.import_community(text)["devices"] == len(resident.devices)


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_import_prints_counts(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "community.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert main(["--database", db_url, "import", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "imported 2 residents, 6 devices, 8 routines, 3 people\n"
    rt = EMPTY.runtime(db_url)
    assert counts(rt)["residents"] == 2


def test_cli_import_of_a_bad_file_prints_every_problem(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "community.yaml"
    path.write_text(FULL, encoding="utf-8")
    assert main(["--database", db_url, "import", str(path)]) == 0
    capsys.readouterr()
    bad = FULL.replace(
        'end: "09:00", grace: 15m}\npeople', 'end: "25:00", grace: 15m}\npeople'
    ).replace('role: volunteer, buildings: ["3"]', "role: volunteer")
    assert bad.count("25:00") == 1
    path.write_text(bad, encoding="utf-8")
    assert main(["--database", db_url, "import", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "community file rejected:",
        '  residents[1].routines[0].end: "25:00" is not a time (expected "HH:MM", 00:00 to 23:59)',
        "  people[0].buildings: a volunteer needs the buildings they cover",
    ]
    # nothing changed
    rt = EMPTY.runtime(db_url)
    assert curtain_open(rt).end == "09:00"


def test_cli_import_of_a_missing_file_fails_cleanly(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database", db_url, "import", str(tmp_path / "nope.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("curtainwatch import: ") and "nope.yaml" in err
