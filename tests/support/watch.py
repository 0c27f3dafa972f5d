"""Test helpers for running curtainwatch itself: a small community, a runtime wired to a
test broker and database on a simulated clock, and read-back queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Alert, Event, Settlement

SHANGHAI = ZoneInfo("Asia/Shanghai")

COMMUNITY = """
timezone: Asia/Shanghai
residents:
  - id: r-301
    name: Wang Shulan
    building: "3"
    unit: "301"
    devices:
      - {id: curtain-301, kind: curtain}
      - {id: door-301, kind: door}
      - {id: light-301, kind: light}
      - {id: card-301, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
      - {kind: curtain_close, start: "18:00", end: "22:30"}
      - {kind: light_on, start: "17:30", end: "21:00"}
      - {kind: inactivity, hours: 12}
  - id: r-302
    name: Zhao Guiying
    building: "3"
    unit: "302"
    devices:
      - {id: curtain-302, kind: curtain}
      - {id: card-302, kind: help}
    routines:
      - {kind: curtain_open, start: "07:00", end: "09:00", grace: 15m}
people:
  - {id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], notify: ["ntfy://ntfy.example.org/li-ming"]}
escalation:
  - {after: 0m, notify: volunteers}
"""


def local(day: str, hm: str) -> datetime:
    """A Shanghai wall-clock time on `day` (YYYY-MM-DD), e.g. local("2026-11-23", "07:40")."""
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=SHANGHAI)


def runtime(
    db_url: str,
    clock: SimulatedClock,
    host: str = "127.0.0.1",
    port: int = 1883,
    client_id: str = "curtainwatch-test",
    **overrides: Any,
) -> Runtime:
    settings = Settings(
        database_url=db_url, mqtt_host=host, mqtt_port=port, mqtt_client_id=client_id, **overrides
    )
    return Runtime(settings, clock)


def alerts(rt: Runtime, **where: Any) -> list[Alert]:
    with rt.sessions() as s:
        q = select(Alert).filter_by(**where).order_by(Alert.id)
        return list(s.scalars(q))


def settlements(rt: Runtime, **where: Any) -> list[Settlement]:
    with rt.sessions() as s:
        return list(s.scalars(select(Settlement).filter_by(**where).order_by(Settlement.id)))


def events(rt: Runtime, **where: Any) -> list[Event]:
    with rt.sessions() as s:
        return list(s.scalars(select(Event).filter_by(**where).order_by(Event.id)))
