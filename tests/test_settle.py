"""The settle tick is set-based: the number of SQL statements it issues does not grow with
the number of residents, even when every one of them missed their window; and the alerts it
raises in SQL are the rows raising each missed window's Finding would write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session
from support.watch import alerts, settlements
from support.world import CURTAIN_OPEN, World, at, community, feed, resident

from alerts.lifecycle import AlertBook, Raised
from monitor.clock import SimulatedClock
from monitor.db import make_engine, session_factory, upgrade
from monitor.models import Alert, Routine, table
from monitor.rules.findings import Finding, routine_cause


def home(i: int, name: str, routine: dict[str, Any]) -> dict[str, Any]:
    """Resident r-<i> in building 1 with a curtain (curtain-<i>) and one routine."""
    return resident(f"r-{i}", name=name, building="1", devices=("curtain",), routines=[routine])


def statements_to_settle(db_url: str, residents: int) -> int:
    no_grace = {"kind": "curtain_open", "start": "07:00", "end": "09:00"}
    text = community(
        residents=[home(i, f"R {i}", no_grace) for i in range(residents)],
        people=[],
        escalation=None,
    )
    shut = [(f"zigbee2mqtt/curtain-{i}", {"position": 0}) for i in range(residents)]
    rt = World(text, users=False, readings=shut).runtime(db_url)
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(rt.db, "before_cursor_execute", counted)
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(at("09:00"))
    rt.engine.settle_due()
    event.remove(rt.db, "before_cursor_execute", counted)
    assert len(alerts(rt, kind="missed_routine")) == residents  # every one of them missed
    rt.db.dispose()
    return count


def test_settling_issues_the_same_statements_for_10_or_300_residents(
    new_db_url: Callable[..., str],
) -> None:
    few = statements_to_settle(new_db_url("few"), 10)
    many = statements_to_settle(new_db_url("many"), 300)
    assert few == many, (few, many)


TWO_HOMES = community(
    residents=[
        home(1, "R One", CURTAIN_OPEN),
        home(2, "R Two", {"kind": "inactivity", "hours": 2}),
    ],
    people=[],
    escalation=None,
)


def _alert_rows(session: Session) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every alert by (resident, cause), all columns but the id."""
    AL = table(Alert)
    cols = [c for c in AL.c if c.name != "id"]
    return {(row.resident_id, row.cause): tuple(row) for row in session.execute(select(*cols))}


def test_missed_windows_raise_the_alerts_their_findings_would(
    new_db_url: Callable[..., str],
) -> None:
    """Day 1: r-1 misses curtain_open and both of r-2's inactivity routines lapse in one
    round (one alert: the first settled wins, as in AlertBook.__call__); day 2: r-1 misses
    again (a repeat). The tick's rows and `on_raised` reports match AlertBook fed the
    Findings of the same missed settlements, one by one as the engine used to."""
    raised: list[Raised] = []
    world = World(TWO_HOMES, start="05:00", users=False, on_raised=raised.append)
    rt = world.runtime(new_db_url("tick"))
    # A community file allows one inactivity routine per resident, the database two: both
    # share the alert cause "inactivity", which one statement must not touch twice.
    with rt.sessions.begin() as session:
        first = session.scalars(select(Routine).filter_by(resident_id="r-2")).one()
        session.add(
            Routine(
                resident_id="r-2",
                kind="inactivity",
                slot="inactivity#1",
                hours=3.0,
                timezone=first.timezone,
                match_kind=first.match_kind,
                match_value=first.match_value,
                own_window_date=first.own_window_date,
                own_next_due_at=first.own_next_due_at,
            )
        )
    for i in (1, 2):
        feed(rt, f"zigbee2mqtt/curtain-{i}", {"position": 0}, "05:00")
    ticks = [at("09:20"), at("09:20", "2026-11-24")]
    clock = rt.clock
    assert isinstance(clock, SimulatedClock)
    for tick in ticks:
        clock.set(tick)
        rt.engine.settle_due()

    # The same missed settlements, raised as Findings into an empty database.
    by_hand: list[Raised] = []
    book = AlertBook(by_hand.append)
    url = new_db_url("findings")
    upgrade(url)
    scratch = make_engine(url)
    missed = settlements(rt, outcome="missed")
    for tick in ticks:
        findings = [
            Finding(
                "raise",
                "inactivity" if s.kind == "inactivity" else "missed_routine",
                s.resident_id,
                "inactivity" if s.kind == "inactivity" else routine_cause(s.routine_id),
                tick,
                due=s.due_at,
                routine_id=s.routine_id,
                routine_kind=s.kind,
            )
            for s in missed
            if s.settled_at == tick
        ]
        with session_factory(scratch).begin() as session:
            book(session, findings)
    with rt.sessions() as a, session_factory(scratch)() as b:
        tick_rows, hand_rows = _alert_rows(a), _alert_rows(b)
        ids = {
            "tick": {r.id: (r.resident_id, r.cause) for r in a.scalars(select(Alert))},
            "hand": {r.id: (r.resident_id, r.cause) for r in b.scalars(select(Alert))},
        }
    scratch.dispose()
    rt.db.dispose()

    assert sorted((s.settled_at, s.resident_id, s.kind, s.due_at) for s in missed) == [
        (ticks[0], "r-1", "curtain_open", at("09:15")),
        (ticks[0], "r-2", "inactivity", at("07:00")),
        (ticks[0], "r-2", "inactivity", at("08:00")),
        (ticks[1], "r-1", "curtain_open", at("09:15", "2026-11-24")),
    ]
    curtain = routine_cause(next(s.routine_id for s in missed if s.resident_id == "r-1"))
    assert tick_rows == hand_rows
    repeats = [c.name for c in table(Alert).c if c.name != "id"].index("repeats")
    assert {key: row[repeats] for key, row in tick_rows.items()} == {
        ("r-1", curtain): 1,
        ("r-2", "inactivity"): 0,
    }
    # on_raised: same findings, severities and repeats, each naming its own alert row.
    assert [(r.finding, r.severity, r.repeats) for r in raised] == [
        (r.finding, r.severity, r.repeats) for r in by_hand
    ]
    assert len(raised) == 3
    assert [ids["tick"][r.alert_id] for r in raised] == [
        (r.finding.resident_id, r.finding.cause) for r in raised
    ]
    assert [ids["hand"][r.alert_id] for r in by_hand] == [
        (r.finding.resident_id, r.finding.cause) for r in by_hand
    ]
