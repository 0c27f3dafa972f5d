"""Test helpers for running curtainwatch itself: a runtime wired to a test broker and
database on a simulated clock, and queries reading back what it stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings
from monitor.models import Alert, Event, Settlement

__all__ = ["alerts", "events", "runtime", "settlements"]


def runtime(
    db_url: str,
    clock: SimulatedClock,
    host: str = "127.0.0.1",
    port: int = 1883,
    client_id: str = "curtainwatch-test",
    **overrides: Any,
) -> Runtime:
    """A runtime (nothing imported, not started) for the broker at host:port, on `clock`:
    several may share one clock and database, as instances and restarts do."""
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
