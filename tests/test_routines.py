"""monitor.admin.routines over a real SQLite database on a simulated clock: a changed window is
rescheduled as an import would (also across DST, for a resident in America/New_York), a
window settled today is never reopened, bad input is refused with a precise problem and
changes nothing, pausing stops settling, and away periods are validated and audited."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from support.world import INACTIVITY, World, at, community, resident

from curtainwatch.runtime import Runtime
from monitor.admin.routines import (
    RoutineForm,
    add_away,
    edit_routine,
    format_duration,
    remove_away,
)
from monitor.clock import SimulatedClock
from monitor.models import AuditEntry, AwayPeriod, Routine, Settlement

NEW_YORK = ZoneInfo("America/New_York")

NY_COMMUNITY = community(
    timezone="America/New_York",
    residents=[
        resident(
            "ny-1",
            tag="ny1",
            name="Ruth Miller",
            building="1",
            unit="1A",
            devices=("curtain", "door"),
            routines=[{"kind": "curtain_open", "start": "06:00", "end": "08:00"}, INACTIVITY],
        )
    ],
    people=[],
    escalation=None,
)


def routine(s: Session, resident: str, slot: str) -> Routine:
    found = s.scalar(select(Routine).where(Routine.resident_id == resident, Routine.slot == slot))
    assert found is not None
    return found


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def edit(rt: Runtime, resident: str, slot: str, **form: Any) -> tuple[list[str], list[str]]:
    """Apply an edit in its own transaction; returns (problem codes, change lines)."""
    with rt.sessions.begin() as s:
        result = edit_routine(
            s,
            resident,
            routine(s, resident, slot).id,
            RoutineForm(**form),
            "s-chen",
            rt.clock.now(),
        )
        return [p.code for p in result.problems], result.changes


def audit_rows(rt: Runtime) -> list[AuditEntry]:
    with rt.sessions() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_changed_window_moves_to_the_next_window_that_has_not_closed(rt: Runtime) -> None:
    # 06:00 in Shanghai, curtain_open 07:00-09:00 + 15m
    with rt.sessions() as s:
        before = routine(s, "r-301", "curtain_open#0").next_due_at
    assert before == at("09:15")

    problems, changes = edit(rt, "r-301", "curtain_open#0", start="08:00", end="10:00", grace="15m")
    assert problems == []
    assert "start 07:00 → 08:00" in changes and "end 09:00 → 10:00" in changes

    with rt.sessions() as s:
        x = routine(s, "r-301", "curtain_open#0")
        assert (x.start, x.end, x.grace_s, x.active) == ("08:00", "10:00", 900, True)
        assert x.window_date == date(2026, 11, 23)
        assert x.window_start_at == at("08:00")
        assert x.next_due_at == at("10:15")
    [entry] = audit_rows(rt)
    assert (entry.actor, entry.action, entry.target) == (
        "s-chen",
        "routine.edit",
        "r-301 curtain_open#0",
    )
    assert "start 07:00 → 08:00" in entry.detail and "next due" in entry.detail


def test_a_window_settled_today_is_not_reopened_by_moving_it(rt: Runtime) -> None:
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(at("09:20"))
    rt.engine.settle_due()  # today's 07:00-09:00 window is settled (unknown: no readings)

    clock.set(at("09:30"))
    problems, _ = edit(rt, "r-301", "curtain_open#0", start="09:00", end="11:00", grace="0m")
    assert problems == []
    with rt.sessions() as s:
        x = routine(s, "r-301", "curtain_open#0")
        # 09:00-11:00 today has not closed yet, but today is settled: tomorrow's window.
        assert x.window_date == date(2026, 11, 24)
        assert x.next_due_at == at("11:00", "2026-11-24")

    clock.set(at("11:30"))
    rt.engine.settle_due()
    with rt.sessions() as s:
        today = s.scalar(
            select(func.count(Settlement.id)).where(
                Settlement.routine_id == routine(s, "r-301", "curtain_open#0").id,
                Settlement.window_date == date(2026, 11, 23),
            )
        )
    assert today == 1


def test_bad_input_is_refused_with_a_precise_problem_and_changes_nothing(rt: Runtime) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"start": "25:00", "end": "09:00"}, "start", "time"),
        ({"start": "07:00", "end": "9.30"}, "end", "time"),
        ({"start": "", "end": "09:00"}, "start", "required"),
        ({"start": "07:00", "end": "09:00", "grace": "soon"}, "grace", "duration"),
        ({"start": "07:00", "end": "09:00", "grace": "200h"}, "grace", "duration_long"),
        ({"start": "08:00", "end": "08:00"}, "end", "window_empty"),
        ({"start": "09:00", "end": "08:00"}, "end", "window_backwards"),
    ]
    for form, field, code in cases:
        with rt.sessions.begin() as s:
            x = routine(s, "r-301", "curtain_open#0")
            result = edit_routine(s, "r-301", x.id, RoutineForm(**form), "s-chen", rt.clock.now())
            assert [(p.field, p.code) for p in result.problems] == [(field, code)], form
    with rt.sessions.begin() as s:
        x = routine(s, "r-301", "curtain_open#0")
        result = edit_routine(
            s, "r-301", x.id, RoutineForm(start="25:00", end="09:00"), "s-chen", rt.clock.now()
        )
        assert result.problems[0].message.startswith('"25:00" is not a time')
        assert result.problems[0].params == {"value": "25:00"}
    with rt.sessions() as s:
        x = routine(s, "r-301", "curtain_open#0")
        assert (x.start, x.end, x.grace_s, x.next_due_at) == (
            "07:00",
            "09:00",
            900,
            at("09:15"),
        )
    assert audit_rows(rt) == []


def test_an_evening_to_morning_window_is_read_as_overnight(rt: Runtime) -> None:
    problems, _ = edit(rt, "r-301", "curtain_close#0", start="22:00", end="01:30", grace="")
    assert problems == []
    with rt.sessions() as s:
        x = routine(s, "r-301", "curtain_close#0")
        assert x.window_date == date(2026, 11, 23)
        assert x.window_start_at == at("22:00")
        assert x.next_due_at == at("01:30", "2026-11-24")


def test_same_values_change_nothing_and_write_no_audit(rt: Runtime) -> None:
    problems, changes = edit(rt, "r-301", "curtain_open#0", start="07:00", end="09:00", grace="15")
    assert (problems, changes) == ([], [])  # a bare 15 is 15 minutes, as in the file
    assert audit_rows(rt) == []


def test_pausing_stops_settling_and_resuming_schedules_the_next_window(rt: Runtime) -> None:
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    problems, changes = edit(
        rt, "r-302", "curtain_open#0", start="07:00", end="09:00", grace="15m", active=False
    )
    assert problems == [] and "active on → off" in changes
    clock.set(at("10:00"))
    rt.engine.settle_due()
    with rt.sessions() as s:
        x = routine(s, "r-302", "curtain_open#0")
        assert (x.active, x.next_due_at) == (False, None)
        assert s.scalar(select(func.count()).where(Settlement.routine_id == x.id)) == 0

    # A form without the active field keeps the routine as it is: still paused.
    problems, changes = edit(rt, "r-302", "curtain_open#0", start="07:30")
    assert problems == [] and changes == ["start 07:00 → 07:30"]
    with rt.sessions() as s:
        x = routine(s, "r-302", "curtain_open#0")
        assert (x.active, x.next_due_at) == (False, None)

    problems, changes = edit(
        rt, "r-302", "curtain_open#0", start="07:00", end="09:00", grace="15m", active=True
    )
    assert problems == [] and "active off → on" in changes
    with rt.sessions() as s:
        x = routine(s, "r-302", "curtain_open#0")
        assert x.active and x.next_due_at == at("09:15", "2026-11-24")


def test_inactivity_hours_are_validated_and_rearm_from_now(rt: Runtime) -> None:
    for bad in ("0", "abc", "200", "nan", ""):
        problems, _ = edit(rt, "r-301", "inactivity#0", hours=bad)
        assert problems == ["hours"], bad
    problems, changes = edit(rt, "r-301", "inactivity#0", hours="6")
    assert problems == [] and "hours 12h → 6h" in changes
    with rt.sessions() as s:
        x = routine(s, "r-301", "inactivity#0")
        assert x.hours == 6 and x.next_due_at == rt.clock.now() + timedelta(hours=6)


def test_help_routine_cannot_be_edited(rt: Runtime) -> None:
    problems, _ = edit(rt, "r-301", "help#0", active=False)
    assert problems == ["not_editable"]


def test_new_york_window_after_the_fall_back_keeps_its_wall_clock_times(db_url: str) -> None:
    # 2026-11-01 02:00 EDT the clocks go back to 01:00 EST.
    world = World(NY_COMMUNITY, start=at("20:00", "2026-10-31", NEW_YORK), users=False)
    rt = world.runtime(db_url)
    problems, _ = edit(rt, "ny-1", "curtain_open#0", start="07:00", end="09:00", grace="0m")
    assert problems == []
    with rt.sessions() as s:
        x = routine(s, "ny-1", "curtain_open#0")
        assert x.window_date == date(2026, 11, 1)
        assert x.window_start_at == utc("2026-11-01T12:00")  # 07:00 EST
        assert x.next_due_at == utc("2026-11-01T14:00")  # 09:00 EST
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    clock.set(utc("2026-11-01T14:01"))
    rt.engine.settle_due()
    with rt.sessions() as s:
        x = routine(s, "ny-1", "curtain_open#0")
        assert x.next_due_at == utc("2026-11-02T14:00")


def test_new_york_window_over_the_repeated_hour(db_url: str) -> None:
    # Edited on the fall-back day itself: 01:00 happens twice and is read the first time
    # (EDT); 03:00 is EST. The window lasts three real hours.
    world = World(NY_COMMUNITY, start=at("00:10", "2026-11-01", NEW_YORK), users=False)
    rt = world.runtime(db_url)
    problems, _ = edit(rt, "ny-1", "curtain_open#0", start="01:00", end="03:00", grace="0m")
    assert problems == []
    with rt.sessions() as s:
        x = routine(s, "ny-1", "curtain_open#0")
        assert x.window_date == date(2026, 11, 1)
        assert x.window_start_at == utc("2026-11-01T05:00")
        assert x.next_due_at == utc("2026-11-01T08:00")


def test_new_york_window_after_the_spring_forward(db_url: str) -> None:
    # 2026-03-08 02:00 EST the clocks jump to 03:00 EDT.
    world = World(NY_COMMUNITY, start=at("20:00", "2026-03-07", NEW_YORK), users=False)
    rt = world.runtime(db_url)
    problems, _ = edit(rt, "ny-1", "curtain_open#0", start="07:00", end="09:00", grace="30m")
    assert problems == []
    with rt.sessions() as s:
        x = routine(s, "ny-1", "curtain_open#0")
        assert x.window_date == date(2026, 3, 8)
        assert x.window_start_at == utc("2026-03-08T11:00")  # 07:00 EDT
        assert x.next_due_at == utc("2026-03-08T13:30")  # 09:00 EDT + 30m
        assert x.timezone == "America/New_York"


def test_away_periods_are_validated_added_and_removed_with_audit(rt: Runtime) -> None:
    # today is 2026-11-23; r-501 is away 2026-12-20..27
    now = rt.clock.now()
    bad = [
        ("2026-12-01", "2026-13-01", "last_day", "date"),
        ("someday", "2026-12-01", "first_day", "date"),
        ("2026-12-05", "2026-12-01", "last_day", "away_order"),
        ("2026-11-01", "2026-11-22", "last_day", "away_past"),
        ("2026-12-01", "2027-12-31", "last_day", "away_long"),
        ("2026-12-25", "2027-01-02", "first_day", "away_overlap"),
    ]
    for first, last, field, code in bad:
        with rt.sessions.begin() as s:
            result = add_away(s, "r-501", first, last, "s-chen", now)
            assert [(p.field, p.code) for p in result.problems] == [(field, code)], (first, last)
    with rt.sessions.begin() as s:
        clash = add_away(s, "r-501", "2026-12-25", "2027-01-02", "s-chen", now).problems[0]
        assert clash.params == {"first": "2026-12-20", "last": "2026-12-27"}
    assert audit_rows(rt) == []

    with rt.sessions.begin() as s:
        assert add_away(s, "r-501", "2026-11-23", "2026-11-30", "s-chen", now).ok
    with rt.sessions() as s:
        periods = [
            (a.first_day, a.last_day)
            for a in s.scalars(
                select(AwayPeriod)
                .where(AwayPeriod.resident_id == "r-501")
                .order_by(AwayPeriod.first_day)
            )
        ]
        added = s.scalar(select(AwayPeriod.id).where(AwayPeriod.first_day == date(2026, 11, 23)))
    assert periods == [
        (date(2026, 11, 23), date(2026, 11, 30)),
        (date(2026, 12, 20), date(2026, 12, 27)),
    ]
    assert added is not None

    with rt.sessions.begin() as s:
        assert not remove_away(s, "r-301", added, "s-chen", now).ok  # not r-301's period
        assert remove_away(s, "r-501", added, "s-chen", now).ok
    entries = [(e.action, e.target, e.detail) for e in audit_rows(rt)]
    assert entries == [
        ("away.add", "r-501", "away 2026-11-23 to 2026-11-30"),
        ("away.remove", "r-501", "away 2026-11-23 to 2026-11-30 removed"),
    ]


def test_format_duration_round_trips_the_form_notation() -> None:
    assert [format_duration(s) for s in (0, 900, 3600, 5400, 90)] == [
        "0m",
        "15m",
        "1h",
        "1h30m",
        "1m30s",
    ]
