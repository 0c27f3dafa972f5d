"""The rules engine on a simulated clock (no broker): time zones and DST, away periods,
dead sensors, inactivity, and several instances settling the same database."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.watch import alerts, settlements
from support.world import INACTIVITY, World, advance, community, feed, resident

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.rules.windows import inactivity_due

MORNING = {"kind": "curtain_open", "start": "07:00", "end": "09:00"}


def home(
    db_url: str,
    tz: str,
    routines: list[dict[str, object]],
    start: datetime,
    away: list[dict[str, str]] | None = None,
) -> Runtime:
    """One resident in `tz` with a curtain, a door and a help card; the devices report once
    at `start` (mains-powered: no battery, so they stay alive without heartbeats)."""
    r1 = resident(
        "r1",
        tag="1",
        name="R One",
        building="1",
        devices=("curtain", "door", "help"),
        routines=routines,
        away=away,
    )
    readings = [
        ("zigbee2mqtt/curtain-1", {"position": 0}),
        ("zigbee2mqtt/door-1", {"contact": True}),
        ("zigbee2mqtt/card-1", {"contact": True}),
    ]
    text = community(residents=[r1], people=[], escalation=None, timezone=tz)
    return World(text, start=start, users=False, readings=readings).runtime(db_url)


def tick_through(rt: Runtime, until: datetime, step: timedelta = timedelta(minutes=30)) -> None:
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    while clock.now() < until:
        clock.advance(min(step, until - clock.now()))
        rt.engine.settle_due()


def wall(tz: str, text: str, fold: int = 0) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)


# -- DST ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "day", "start", "end", "expected_due_utc"),
    [
        # spring forward 02:00 -> 03:00: an end at 02:30 does not exist; read as 03:30 EDT
        ("America/New_York", "2026-03-08", "01:30", "02:30", "2026-03-08T07:30:00+00:00"),
        # fall back 02:00 -> 01:00: 01:45 happens twice; the first (EDT) counts
        ("America/New_York", "2026-11-01", "01:00", "01:45", "2026-11-01T05:45:00+00:00"),
        # Amsterdam spring 02:00 -> 03:00: 02:45 does not exist; read as 03:45 CEST
        ("Europe/Amsterdam", "2026-03-29", "02:15", "02:45", "2026-03-29T01:45:00+00:00"),
        # Amsterdam autumn 03:00 -> 02:00: 02:45 happens twice; the first (CEST)
        ("Europe/Amsterdam", "2026-10-25", "02:15", "02:45", "2026-10-25T00:45:00+00:00"),
    ],
)
def test_window_on_a_dst_transition_day_settles_exactly_once(
    db_url: str, tz: str, day: str, start: str, end: str, expected_due_utc: str
) -> None:
    d = date.fromisoformat(day)
    begin = wall(tz, f"{d - timedelta(days=2)}T12:00")
    rt = home(db_url, tz, [{"kind": "door", "start": start, "end": end}], begin)
    tick_through(rt, wall(tz, f"{d + timedelta(days=2)}T12:00"), timedelta(minutes=15))

    got = settlements(rt, kind="door")
    days = [s.window_date for s in got]
    assert days == [d - timedelta(days=1), d, d + timedelta(days=1), d + timedelta(days=2)]
    on_the_day = next(s for s in got if s.window_date == d)
    assert on_the_day.due_at == datetime.fromisoformat(expected_due_utc)
    # Every window missed (nobody used the door), yet one open alert that repeats.
    [a] = alerts(rt, kind="missed_routine")
    assert a.repeats == 3


def test_ordinary_window_keeps_its_wall_clock_time_across_dst(db_url: str) -> None:
    tz = "America/New_York"
    rt = home(
        db_url,
        tz,
        [MORNING],
        wall(tz, "2026-03-06T12:00"),
    )
    tick_through(rt, wall(tz, "2026-03-10T12:00"))
    dues = {
        s.window_date.isoformat(): s.due_at.astimezone(ZoneInfo(tz)).strftime("%H:%M %Z")
        for s in settlements(rt)
    }
    assert dues == {
        "2026-03-07": "09:00 EST",
        "2026-03-08": "09:00 EDT",
        "2026-03-09": "09:00 EDT",
        "2026-03-10": "09:00 EDT",
    }


def test_a_day_with_a_three_hour_clock_jump(db_url: str) -> None:
    # Antarctica/Casey, 2009-10-18: at 02:00 (+08) the clock jumped to 05:00 (+11).
    tz = "Antarctica/Casey"
    assert wall(tz, "2009-10-18T01:59").utcoffset() == timedelta(hours=8)
    assert wall(tz, "2009-10-18T05:00").utcoffset() == timedelta(hours=11)
    # A window ending at 03:30, a time that did not exist that day.
    rt = home(
        db_url,
        tz,
        [{"kind": "door", "start": "01:00", "end": "03:30"}],
        wall(tz, "2009-10-16T12:00"),
    )
    tick_through(rt, wall(tz, "2009-10-20T12:00"))
    got = {s.window_date.isoformat(): s.due_at for s in settlements(rt, kind="door")}
    assert list(got) == ["2009-10-17", "2009-10-18", "2009-10-19", "2009-10-20"]
    # 03:30 read with the offset from before the jump (+08), i.e. 06:30 on the new clock.
    assert got["2009-10-18"] == datetime(2009, 10, 17, 19, 30, tzinfo=UTC)
    assert got["2009-10-17"] == datetime(2009, 10, 16, 19, 30, tzinfo=UTC)  # +08
    assert got["2009-10-19"] == datetime(2009, 10, 18, 16, 30, tzinfo=UTC)  # +11


def test_system_clock_jumping_three_hours_settles_every_window_in_between(db_url: str) -> None:
    tz = "Asia/Shanghai"
    routines = [
        {"kind": "curtain_open", "start": "07:00", "end": "08:00"},
        {"kind": "door", "start": "06:00", "end": "09:00"},
        {"kind": "curtain_close", "start": "07:00", "end": "10:00"},
    ]
    rt = home(db_url, tz, routines, wall(tz, "2026-11-23T07:30"))
    rt.engine.settle_due()
    assert settlements(rt) == []
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    clock.advance(timedelta(hours=3))  # 07:30 -> 10:30 without a tick in between
    assert rt.engine.settle_due() == 3
    assert sorted(s.kind for s in settlements(rt)) == ["curtain_close", "curtain_open", "door"]
    assert rt.engine.settle_due() == 0


def test_window_across_midnight_belongs_to_the_day_it_opens(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(
        db_url,
        tz,
        [{"kind": "door", "start": "22:00", "end": "02:00"}],
        wall(tz, "2026-11-23T12:00"),
    )
    feed(rt, "zigbee2mqtt/door-1", {"contact": False}, wall(tz, "2026-11-24T01:10"))
    tick_through(rt, wall(tz, "2026-11-25T03:00"))
    got = [(s.window_date.isoformat(), s.outcome) for s in settlements(rt)]
    assert got == [("2026-11-23", "satisfied"), ("2026-11-24", "missed")]


# -- away, dead sensors, battery -------------------------------------------------------------


def test_away_days_settle_as_away_without_alert(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(
        db_url,
        tz,
        [MORNING],
        wall(tz, "2026-11-30T12:00"),
        away=[{"from": "2026-12-01", "to": "2026-12-02"}],
    )
    tick_through(rt, wall(tz, "2026-12-03T10:00"))
    got = [(s.window_date.isoformat(), s.outcome) for s in settlements(rt)]
    assert got == [("2026-12-01", "away"), ("2026-12-02", "away"), ("2026-12-03", "missed")]
    assert [a.kind for a in alerts(rt)] == ["missed_routine"]


def test_offline_sensor_makes_a_device_alert_and_unknown_windows_not_missed(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(
        db_url,
        tz,
        [MORNING],
        wall(tz, "2026-11-23T06:00"),
    )
    feed(
        rt, "zigbee2mqtt/curtain-1/availability", {"state": "offline"}, wall(tz, "2026-11-23T06:30")
    )
    rt.engine.check_devices()
    tick_through(rt, wall(tz, "2026-11-23T10:00"))
    rt.engine.check_devices()  # still offline: no second alert
    assert [(s.outcome) for s in settlements(rt)] == ["unknown"]
    [a] = alerts(rt)
    assert (a.kind, a.cause, a.severity, a.detail) == (
        "device_offline",
        "device_offline:curtain-1",
        "info",
        "reported offline",
    )

    feed(rt, "zigbee2mqtt/curtain-1/availability", "online", wall(tz, "2026-11-23T10:05"))
    rt.engine.check_devices()
    [a] = alerts(rt)
    assert (a.status, a.outcome) == ("resolved", "back_online")


def test_battery_sensor_silent_for_25_hours_counts_as_offline(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(
        db_url,
        tz,
        [MORNING],
        wall(tz, "2026-11-22T07:30"),
    )
    feed(
        rt, "zigbee2mqtt/curtain-1", {"position": 100, "battery": 80}, wall(tz, "2026-11-22T07:50")
    )
    # Due 09:00 on the 23rd: by then 25 h 10 min of silence.
    tick_through(rt, wall(tz, "2026-11-23T10:00"))
    rt.engine.check_devices()
    assert [(s.window_date.isoformat(), s.outcome) for s in settlements(rt)] == [
        ("2026-11-22", "satisfied"),
        ("2026-11-23", "unknown"),
    ]
    assert [a.kind for a in alerts(rt)] == ["device_offline"]


def test_low_battery_alert_and_replacement(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(
        db_url,
        tz,
        [MORNING],
        wall(tz, "2026-11-23T06:00"),
    )
    feed(rt, "zigbee2mqtt/door-1", {"battery": 9}, wall(tz, "2026-11-23T06:10"))
    rt.engine.check_devices()
    rt.engine.check_devices()
    [a] = alerts(rt)
    assert (a.kind, a.device_id, a.detail) == ("low_battery", "door-1", "battery at 9%")
    feed(rt, "zigbee2mqtt/door-1", {"battery": 100}, wall(tz, "2026-11-23T11:00"))
    rt.engine.check_devices()
    assert [(a.status, a.outcome) for a in alerts(rt)] == [("resolved", "battery_replaced")]


# -- inactivity and help ---------------------------------------------------------------------


def test_inactivity_fires_once_after_the_silence_and_activity_resolves_it(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(db_url, tz, [INACTIVITY], wall(tz, "2026-11-23T07:00"))
    feed(rt, "zigbee2mqtt/door-1", {"contact": False}, wall(tz, "2026-11-23T08:00"))
    tick_through(rt, wall(tz, "2026-11-23T19:59"))
    assert alerts(rt) == []
    tick_through(rt, wall(tz, "2026-11-24T12:00"))
    [a] = alerts(rt)
    assert (a.kind, a.severity, a.due_at) == (
        "inactivity",
        "critical",
        wall(tz, "2026-11-23T20:00"),
    )
    feed(rt, "zigbee2mqtt/curtain-1", {"position": 100}, wall(tz, "2026-11-24T12:10"))
    [a] = alerts(rt)
    assert (a.status, a.outcome) == ("resolved", "activity_resumed")
    # Re-armed by that activity: due again at 00:10 the next night.
    tick_through(rt, wall(tz, "2026-11-25T00:30"))
    assert [x.status for x in alerts(rt)] == ["resolved", "open"]


def test_inactivity_is_due_at_the_whole_minute_after_the_silence(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(db_url, tz, [INACTIVITY], wall(tz, "2026-11-23T07:00"))
    # Twelve hours after either event is within 20:00-20:01: due at 20:01, not before.
    feed(rt, "zigbee2mqtt/door-1", {"contact": False}, wall(tz, "2026-11-23T08:00:37"))
    feed(rt, "zigbee2mqtt/door-1", {"contact": True}, wall(tz, "2026-11-23T08:00:52"))
    tick_through(rt, wall(tz, "2026-11-23T20:00:59"), step=timedelta(seconds=30))
    assert alerts(rt) == []
    tick_through(rt, wall(tz, "2026-11-23T20:01:30"), step=timedelta(seconds=30))
    [a] = alerts(rt)
    assert (a.kind, a.due_at) == ("inactivity", wall(tz, "2026-11-23T20:01"))


def test_inactivity_due_rounds_up_to_the_minute_and_never_down() -> None:
    at = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert inactivity_due(at, 12) == at + timedelta(hours=12)
    assert inactivity_due(at + timedelta(microseconds=1), 12) == at + timedelta(hours=12, minutes=1)
    assert inactivity_due(at + timedelta(seconds=59.999999), 0.5) == at + timedelta(minutes=31)
    late = at + timedelta(seconds=1)
    assert inactivity_due(late, 1.5) >= late + timedelta(hours=1.5)
    # Hours elapsed, not hours on the wall clock: New York falls back at 02:00 on 11-01.
    evening = datetime(2026, 10, 31, 13, 59, 30, tzinfo=ZoneInfo("America/New_York"))
    assert inactivity_due(evening, 12) == datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def test_help_card_raises_at_once_and_repeats_update_the_same_alert(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = home(db_url, tz, [INACTIVITY], wall(tz, "2026-11-23T07:00"))
    feed(rt, "zigbee2mqtt/card-1", {"contact": False}, wall(tz, "2026-11-23T09:00"))
    feed(rt, "zigbee2mqtt/card-1", {"contact": True}, wall(tz, "2026-11-23T09:01"))
    feed(rt, "zigbee2mqtt/card-1", {"contact": False}, wall(tz, "2026-11-23T09:02"))
    [a] = alerts(rt, kind="help")
    assert (a.raised_at, a.last_raised_at, a.repeats) == (
        wall(tz, "2026-11-23T09:00"),
        wall(tz, "2026-11-23T09:02"),
        1,
    )


# -- several instances -----------------------------------------------------------------------


def test_two_instances_settling_at_once_settle_each_window_once(db_url: str) -> None:
    tz = "Asia/Shanghai"
    routines: list[dict[str, object]] = [
        {"kind": "door", "start": f"{h:02d}:00", "end": f"{h:02d}:30"} for h in range(6, 22)
    ]
    first = home(db_url, tz, routines, wall(tz, "2026-11-23T05:00"))
    clock = first.clock
    assert isinstance(clock, SimulatedClock)
    second = Runtime(Settings(database_url=db_url), clock, migrate=False)
    clock.set(wall(tz, "2026-11-25T23:00"))  # three days of 16 windows are due
    won: list[int] = []
    barrier = threading.Barrier(2)

    def settle(rt: Runtime) -> None:
        barrier.wait()
        won.append(rt.engine.settle_due())

    threads = [threading.Thread(target=settle, args=(rt,)) for rt in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = settlements(first)
    assert sum(won) == len(got) == 3 * 16
    assert max(Counter((s.routine_id, s.window_date) for s in got).values()) == 1
    # Sixteen routines, three missed days each: one open alert per routine, repeated twice.
    assert sorted((a.kind, a.repeats) for a in alerts(first)) == [("missed_routine", 2)] * 16


# -- schedules ------------------------------------------------------------------------------


def _community(*residents: str) -> str:
    """Residents with a curtain and the same curtain_open routine, 07:00-09:00."""
    homes = [
        resident(r, name=f"Resident {r}", building="1", devices=("curtain",), routines=[MORNING])
        for r in residents
    ]
    return community(residents=homes, people=[], escalation=None)


def _schedules(rt: Runtime) -> list[tuple[date, list[str]]]:
    """Each schedule's window date and the residents of its routines."""
    from sqlalchemy import select

    from monitor.models import Routine, Schedule

    with rt.sessions() as s:
        return [
            (
                sc.window_date,
                sorted(
                    s.scalars(select(Routine.resident_id).where(Routine.schedule_id == sc.id)).all()
                ),
            )
            for sc in s.scalars(select(Schedule).order_by(Schedule.id))
        ]


def test_routines_of_one_timing_share_a_schedule_and_one_added_late_joins_it(
    db_url: str,
) -> None:
    tz = "Asia/Shanghai"
    curtains = [(f"zigbee2mqtt/curtain-{r}", {"position": 0}) for r in ("r1", "r2")]
    start = wall(tz, "2026-11-23T06:00")
    rt = World(_community("r1", "r2"), start=start, users=False, readings=curtains).runtime(db_url)
    assert _schedules(rt) == [(date(2026, 11, 23), ["r1", "r2"])]

    # Nothing settled today's window yet (curtainwatch was down since 06:00) when r3 is
    # added at 10:00: r3's first window is tomorrow's, so it gets a schedule of its own.
    advance(rt, wall(tz, "2026-11-23T10:00"), jobs=())
    rt.import_community(_community("r1", "r2", "r3"))
    feed(rt, "zigbee2mqtt/curtain-r3", {"position": 0}, rt.clock.now())
    assert _schedules(rt) == [(date(2026, 11, 23), ["r1", "r2"]), (date(2026, 11, 24), ["r3"])]

    # The tick settles today's window for r1 and r2 only; their schedule then reaches r3's
    # window and hands its routines over, so one schedule is left.
    rt.engine.settle_due()
    assert sorted((s.resident_id, s.window_date) for s in settlements(rt)) == [
        ("r1", date(2026, 11, 23)),
        ("r2", date(2026, 11, 23)),
    ]
    assert _schedules(rt) == [(date(2026, 11, 24), ["r1", "r2", "r3"])]

    tick_through(rt, wall(tz, "2026-11-24T10:00"))
    assert sorted(
        (s.resident_id, s.outcome) for s in settlements(rt) if s.window_date == date(2026, 11, 24)
    ) == [("r1", "missed"), ("r2", "missed"), ("r3", "missed")]
    assert _schedules(rt) == [(date(2026, 11, 25), ["r1", "r2", "r3"])]


def test_a_schedule_nobody_follows_any_more_goes_when_due(db_url: str) -> None:
    tz = "Asia/Shanghai"
    rt = World(_community("r1"), start=wall(tz, "2026-11-23T06:00"), users=False).runtime(db_url)
    rt.import_community("timezone: Asia/Shanghai\nresidents: []\n")  # r1 leaves: paused
    assert _schedules(rt) == [(date(2026, 11, 23), [])]
    tick_through(rt, wall(tz, "2026-11-23T10:00"))
    assert _schedules(rt) == []
    assert settlements(rt) == []
    assert rt.engine.next_due() is None


def test_a_tick_waits_for_an_import_adding_routines_to_its_schedule(pg_db_url: str) -> None:
    """PostgreSQL, where an import and a tick run at once: the import joins r2 to the
    schedule of today's window (not yet due) and has not committed when the window falls
    due. The tick must wait for it, not settle r1 alone and move the schedule past r2."""
    from sqlalchemy import create_engine, text

    from monitor.importing.apply import apply_community
    from monitor.importing.load import load_community

    tz = "Asia/Shanghai"
    curtain = ("zigbee2mqtt/curtain-r1", {"position": 0})
    start = wall(tz, "2026-11-23T06:00")
    rt = World(_community("r1"), start=start, users=False, readings=[curtain]).runtime(pg_db_url)

    advance(rt, wall(tz, "2026-11-23T08:00"), jobs=())
    importing = rt.sessions()
    importing.begin()
    apply_community(importing, load_community(_community("r1", "r2")), rt.clock.now())
    importing.flush()

    advance(rt, wall(tz, "2026-11-23T09:30"), jobs=())
    tick = threading.Thread(target=rt.engine.settle_due)
    tick.start()
    # Until the tick has either finished or is waiting for a lock: then commit the import.
    watcher = create_engine(pg_db_url)
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with watcher.connect() as conn:
        while tick.is_alive() and not conn.execute(waiting).scalar():
            tick.join(0.01)
    watcher.dispose()
    importing.commit()
    importing.close()
    tick.join()

    assert sorted((s.resident_id, s.window_date) for s in settlements(rt)) == [
        ("r1", date(2026, 11, 23)),
        ("r2", date(2026, 11, 23)),
    ]
    assert _schedules(rt) == [(date(2026, 11, 24), ["r1", "r2"])]
