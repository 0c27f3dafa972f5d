"""The settle tick is set-based: the number of SQL statements it issues does not grow with
the number of residents, even when every one of them missed their window; and the alerts it
raises in SQL are the rows raising each missed window's Finding would write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session
from support.watch import alerts, local, settlements

from alerts.lifecycle import AlertBook, Raised
from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.db import make_engine, session_factory, upgrade
from monitor.models import Alert, Routine, table
from monitor.rules.findings import Finding, routine_cause
from sensors.ingest import Message

DAY = "2026-11-23"


def statements_to_settle(db_url: str, residents: int) -> int:
    homes = "".join(
        f"""
  - {{id: r-{i}, name: R {i}, building: "1",
      devices: [{{id: curtain-{i}, kind: curtain}}],
      routines: [{{kind: curtain_open, start: "07:00", end: "09:00"}}]}}"""
        for i in range(residents)
    )
    rt = Runtime(Settings(database_url=db_url), SimulatedClock(local(DAY, "06:00")))
    rt.import_community(f"timezone: Asia/Shanghai\nresidents:{homes}\n")
    rt.ingestor.process(
        [
            Message(
                f"zigbee2mqtt/curtain-{i}", b'{"position": 0}', local(DAY, "06:00").astimezone(UTC)
            )
            for i in range(residents)
        ]
    )
    count = 0

    def counted(*_: Any) -> None:
        nonlocal count
        count += 1

    event.listen(rt.db, "before_cursor_execute", counted)
    assert isinstance(rt.clock, SimulatedClock)
    rt.clock.set(local(DAY, "09:00"))
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


TWO_HOMES = """
timezone: Asia/Shanghai
residents:
  - {id: r-1, name: R One, building: "1", devices: [{id: curtain-1, kind: curtain}],
     routines: [{kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}]}
  - {id: r-2, name: R Two, building: "1", devices: [{id: curtain-2, kind: curtain}],
     routines: [{kind: inactivity, hours: 2}]}
"""


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
    clock = SimulatedClock(local(DAY, "05:00"))
    rt = Runtime(Settings(database_url=new_db_url("tick")), clock, on_raised=raised.append)
    rt.import_community(TWO_HOMES)
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
    rt.ingestor.process(
        [
            Message(f"zigbee2mqtt/curtain-{i}", b'{"position": 0}', clock.now().astimezone(UTC))
            for i in (1, 2)
        ]
    )
    ticks = [local(DAY, "09:20"), local("2026-11-24", "09:20")]
    for at in ticks:
        clock.set(at)
        rt.engine.settle_due()

    # The same missed settlements, raised as Findings into an empty database.
    by_hand: list[Raised] = []
    book = AlertBook(by_hand.append)
    url = new_db_url("findings")
    upgrade(url)
    scratch = make_engine(url)
    missed = settlements(rt, outcome="missed")
    for at in ticks:
        findings = [
            Finding(
                "raise",
                "inactivity" if s.kind == "inactivity" else "missed_routine",
                s.resident_id,
                "inactivity" if s.kind == "inactivity" else routine_cause(s.routine_id),
                at,
                due=s.due_at,
                routine_id=s.routine_id,
                routine_kind=s.kind,
            )
            for s in missed
            if s.settled_at == at
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
        (ticks[0], "r-1", "curtain_open", local(DAY, "09:15")),
        (ticks[0], "r-2", "inactivity", local(DAY, "07:00")),
        (ticks[0], "r-2", "inactivity", local(DAY, "08:00")),
        (ticks[1], "r-1", "curtain_open", local("2026-11-24", "09:15")),
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
