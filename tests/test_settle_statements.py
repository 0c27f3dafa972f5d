"""The settle tick is set-based: the number of SQL statements it issues does not grow with
the number of residents, even when every one of them missed their window."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import event
from support.watch import alerts, local

from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.runtime import Runtime
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


def test_settling_issues_the_same_statements_for_10_or_300_residents(tmp_path: Any) -> None:
    few = statements_to_settle(f"sqlite:///{tmp_path}/few.db", 10)
    many = statements_to_settle(f"sqlite:///{tmp_path}/many.db", 300)
    assert few == many, (few, many)
