"""Day marks (monitor.rules.day_marks): the curtain and light times the board shows of each
resident's day, written by the ingestor in the transaction that stores the events.
Earliest / latest whatever order the readings arrive in and however often, one row per day
of the community's zone, equal to a rebuild from the events table, and filled by the
migration for events stored before it existed. The door time is its device's last
change."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from support.world import COMMUNITY, DAY, SHANGHAI, World, at, community, feed

from curtainwatch.runtime import Runtime
from monitor.access import Scope
from monitor.db import make_engine, upgrade
from monitor.models import DayMark
from monitor.pages.board import Board, compute_board
from monitor.rules import day_marks
from monitor.tables import DAY_MARKS
from sensors.ingest import Message


def t(hhmm: str, day: str = DAY) -> datetime:
    return at(hhmm, day).astimezone(UTC)


def marks(rt: Runtime) -> dict[tuple[str, str], dict[str, str | None]]:
    """(resident, day) -> each mark as local "HH:MM" (None when unset)."""
    with rt.sessions() as s:
        rows = s.scalars(select(DayMark)).all()
    return {
        (m.resident_id, m.day.isoformat()): {
            c: (v.astimezone(SHANGHAI).strftime("%H:%M") if (v := getattr(m, c)) else None)
            for c in day_marks.COLUMNS
        }
        for m in rows
    }


def board(rt: Runtime) -> Board:
    with rt.sessions() as s:
        return compute_board(s, Scope("staff", "test"), rt.clock.now(), SHANGHAI)


def stamped(rt: Runtime, device: str, kind: str, value: str, when: str, arrives: str) -> None:
    """A reading carrying its own time (`when`), arriving at `arrives` (both local; the
    clock stays where it is)."""
    body = json.dumps({"kind": kind, "value": value, "ts": at(when).isoformat()})
    rt.ingestor.process([Message(f"curtainwatch/{device}/event", body.encode(), t(arrives))])


def test_marks_keep_the_earliest_and_latest_of_each_local_day() -> None:
    E = day_marks.Stored
    rows = day_marks.marks_of(
        [
            E("r", "curtain", "open", t("07:40")),
            E("r", "curtain", "open", t("07:10")),  # earlier, arriving later
            E("r", "curtain", "closed", t("21:00")),
            E("r", "curtain", "closed", t("12:00")),
            E("r", "light", "off", t("05:00")),  # not a mark
            E("r", "light", "on", t("18:30")),
            E("r", "light", "on", t("06:00")),
            E("r", "door", "open", t("06:40")),  # the board reads doors from the device
            E("r", "help", "help", t("08:00")),  # not a mark
            E("r", "curtain", "closed", t("23:59")),
            E("r", "curtain", "closed", t("00:01", "2026-11-24")),  # the next local day
            E("q", "curtain", "open", t("07:00")),
        ],
        SHANGHAI,
    )
    got = {(r["resident_id"], r["day"].isoformat()): r for r in rows}
    assert set(got) == {("r", DAY), ("r", "2026-11-24"), ("q", DAY)}
    assert got[("r", DAY)] == {
        "resident_id": "r",
        "day": got[("r", DAY)]["day"],
        "curtain_opened": t("07:10"),
        "curtain_closed": t("23:59"),
        "light_on": t("06:00"),
    }
    assert got[("r", "2026-11-24")]["curtain_closed"] == t("00:01", "2026-11-24")
    assert got[("r", "2026-11-24")]["curtain_opened"] is None


def test_the_ingestor_merges_marks_across_batches_in_any_order(db_url: str) -> None:
    rt = World(start="05:30").runtime(db_url)
    feed(rt, "zigbee2mqtt/door-301", {"contact": False}, "06:40")
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "07:35")
    feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "07:50")
    feed(rt, "zigbee2mqtt/light-301", {"state": "OFF"}, "08:10")
    feed(rt, "zigbee2mqtt/door-301", {"contact": True}, "08:20")
    assert marks(rt)[("r-301", DAY)] == {
        "curtain_opened": "07:35",
        "curtain_closed": None,
        "light_on": "07:50",
    }
    # Readings with their own time, arriving late and out of order (a sensor hub's queue):
    # an earlier open lowers the mark, an older close does not move the latest one.
    stamped(rt, "curtain-301", "curtain", "open", "07:05", arrives="08:30")
    stamped(rt, "door-301", "door", "closed", "06:00", arrives="08:31")
    # The same reading again (a QoS 1 redelivery) changes nothing.
    stamped(rt, "curtain-301", "curtain", "open", "07:05", arrives="08:32")
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 0}, "21:15")
    stamped(rt, "curtain-301", "curtain", "closed", "20:50", arrives="21:16")
    assert marks(rt)[("r-301", DAY)] == {
        "curtain_opened": "07:05",
        "curtain_closed": "21:15",
        "light_on": "07:50",
    }
    # The board: curtain and light from the marks, the door from its device's last change
    # (the late 06:00 reading does not move it back).
    [tile] = [t for t in board(rt).tiles if t.resident_id == "r-301"]
    assert (tile.curtain_opened, tile.curtain_closed, tile.light_on, tile.door) == (
        "07:05",
        "21:15",
        "07:50",
        "08:20",
    )
    # After local midnight a new day starts its own row; yesterday's stays as it was.
    feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "00:20", day="2026-11-24")
    assert marks(rt)[("r-301", "2026-11-24")]["light_on"] == "00:20"
    assert marks(rt)[("r-301", DAY)]["light_on"] == "07:50"
    # Residents with no mark-worthy event have no row.
    assert {r for r, _ in marks(rt)} == {"r-301"}


def test_rebuild_from_the_events_table_gives_what_the_ingestor_wrote(db_url: str) -> None:
    rt = World(start="05:30").runtime(db_url)
    for topic, payload, hhmm in [
        ("zigbee2mqtt/door-301", {"contact": False}, "06:40"),
        ("zigbee2mqtt/curtain-301", {"position": 100}, "07:35"),
        ("zigbee2mqtt/curtain-302", {"position": 60}, "07:36"),
        ("zigbee2mqtt/curtain-301", {"position": 0}, "12:00"),
        ("zigbee2mqtt/curtain-301", {"position": 100}, "13:00"),
        ("zigbee2mqtt/light-301", {"state": "ON"}, "18:00"),
    ]:
        feed(rt, topic, payload, hhmm)
    stamped(rt, "curtain-302", "curtain", "open", "07:01", arrives="18:01")
    written = marks(rt)
    assert written[("r-302", DAY)]["curtain_opened"] == "07:01"
    with rt.sessions.begin() as s:
        assert day_marks.rebuild(s, t("00:00")) == len(written)
    assert marks(rt) == written


def test_the_migration_fills_marks_for_events_already_stored(db_url: str) -> None:
    upgrade(db_url, "0008")
    now = datetime.now(UTC)
    # A day of the community's zone that the two days of events behind `now` belong to.
    recent = (now - timedelta(hours=1)).replace(microsecond=0)
    old = now - timedelta(days=5)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for sql in (
            "INSERT INTO community (id, timezone, escalation, imported_at)"
            " VALUES (1, 'Asia/Shanghai', '[]', :now)",
            "INSERT INTO residents (id, name, building, unit, timezone, active)"
            " VALUES ('r-1', 'Wang Shulan', '3', '301', 'Asia/Shanghai', TRUE)",
        ):
            conn.execute(text(sql), {"now": now.replace(tzinfo=None)})
        rows: list[dict[str, Any]] = [
            {"k": "curtain", "v": "open", "ts": recent},
            {"k": "curtain", "v": "open", "ts": recent - timedelta(minutes=10)},
            {"k": "light", "v": "on", "ts": recent - timedelta(minutes=30)},
            {"k": "light", "v": "off", "ts": recent - timedelta(minutes=20)},
            {"k": "door", "v": "open", "ts": recent - timedelta(minutes=30)},
            {"k": "help", "v": "help", "ts": recent},
            {"k": "curtain", "v": "open", "ts": old},  # too old to matter to the board
        ]
        conn.execute(
            text(
                "INSERT INTO events (resident_id, device_id, kind, value, ts, received_at,"
                " stamped) VALUES ('r-1', 'd', :k, :v, :ts, :ts, FALSE)"
            ),
            [{**r, "ts": r["ts"].replace(tzinfo=None)} for r in rows],
        )
    upgrade(db_url)
    with engine.connect() as conn:
        got = conn.execute(select(DAY_MARKS)).all()
    engine.dispose()
    first = recent - timedelta(minutes=30)
    days = {first.astimezone(SHANGHAI).date(), recent.astimezone(SHANGHAI).date()}
    assert {row.day for row in got} == days
    assert min(r.curtain_opened for r in got if r.curtain_opened) == recent - timedelta(minutes=10)
    assert min(r.light_on for r in got if r.light_on) == first
    assert all(r.curtain_closed is None for r in got)


def test_a_reading_stamped_ahead_of_now_is_not_shown_until_its_time(db_url: str) -> None:
    rt = World(start="07:00").runtime(db_url)
    stamped(rt, "curtain-301", "curtain", "open", "07:10", arrives="07:00")  # 10 min ahead
    stamped(rt, "door-301", "door", "open", "07:20", arrives="07:00")
    [tile] = [t for t in board(rt).tiles if t.resident_id == "r-301"]
    assert (tile.curtain_opened, tile.door) == (None, None)
    rt.clock.set(at("07:30"))
    [tile] = [t for t in board(rt).tiles if t.resident_id == "r-301"]
    assert (tile.curtain_opened, tile.door) == ("07:10", "07:20")


def test_a_new_community_time_zone_redraws_the_marks_by_its_days(db_url: str) -> None:
    rt = World(start="05:30").runtime(db_url)
    # 06:40 in Shanghai is 23:40 the day before in Amsterdam (UTC+1 in November).
    feed(rt, "zigbee2mqtt/light-301", {"state": "ON"}, "06:40")
    feed(rt, "zigbee2mqtt/curtain-301", {"position": 100}, "08:10")
    assert set(marks(rt)) == {("r-301", DAY)}
    assert "timezone: Asia/Shanghai" in COMMUNITY
    rt.import_community(community(timezone="Europe/Amsterdam"))
    with rt.sessions() as s:
        rows = {(m.resident_id, m.day.isoformat()): m for m in s.scalars(select(DayMark))}
    assert set(rows) == {("r-301", "2026-11-22"), ("r-301", DAY)}
    assert rows[("r-301", "2026-11-22")].light_on == t("06:40")
    assert rows[("r-301", DAY)].curtain_opened == t("08:10")
    assert rows[("r-301", DAY)].light_on is None
