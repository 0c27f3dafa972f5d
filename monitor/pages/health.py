"""Is this instance healthy? The answer /healthz gives (web/ops.py renders it), computed from
the running instance's state, one database session and the time. (Whether a device is
offline or low is monitor.rules.device_health.)

Checks, each cheap enough to poll every few seconds (two tiny queries in all):
1. database: ``SELECT 1`` answers;
2. broker: the MQTT source is connected; a process that runs no ingestion (the web app of a
   ``serve`` split, a test) says "not run here", which is not a failure;
3. scheduler: running, and the settle job finished a round within STALE_ROUNDS intervals
   (a round with nothing due counts); measured on the monotonic clock, because the scheduler
   ticks in real time even when the runtime's clock is simulated; "not run here" likewise;
4. settlements (information, never a failure): the newest settlement's settled_at, and when
   the last settle round ran.

Healthy = every check that runs here is ok."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from monitor.instance import Instance
from monitor.models import Settlement

STALE_ROUNDS = 3
# A round may legitimately take a while (catching up after a reconnect, a big day).
STALE_SLACK_S = 5.0
NOT_RUN_HERE = "not run here"


@dataclass(frozen=True)
class Check:
    ok: bool
    state: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "state": self.state, **self.detail}


@dataclass(frozen=True)
class Health:
    now: datetime
    database: Check
    broker: Check
    scheduler: Check
    last_settled_at: datetime | None
    last_settle_round_at: datetime | None

    @property
    def ok(self) -> bool:
        return self.database.ok and self.broker.ok and self.scheduler.ok

    def as_json(self) -> dict[str, Any]:
        """The /healthz body: times as ISO 8601 in UTC."""
        return {
            "status": "ok" if self.ok else "unhealthy",
            "now": _iso(self.now),
            "checks": {
                "database": self.database.as_json(),
                "broker": self.broker.as_json(),
                "scheduler": self.scheduler.as_json(),
            },
            "last_settled_at": _iso(self.last_settled_at),
            "last_settle_round_at": _iso(self.last_settle_round_at),
        }


def check_health(
    runtime: Instance, session: Session, now: datetime, monotonic: float | None = None
) -> Health:
    """The health of `runtime` at `now` (its clock); `monotonic` is time.monotonic() unless
    given (tests)."""
    mono = time.monotonic() if monotonic is None else monotonic
    database, last_settled = _database(session)
    return Health(
        now=now,
        database=database,
        broker=_broker(runtime),
        scheduler=_scheduler(runtime, mono),
        last_settled_at=last_settled,
        last_settle_round_at=runtime.last_settle_at,
    )


# The newest settlement by id (insertion order), which is the last settled: MAX(settled_at)
# would scan the whole table on every poll.
_LAST_SETTLED = select(Settlement.settled_at).order_by(Settlement.id.desc()).limit(1)


def _database(session: Session) -> tuple[Check, datetime | None]:
    try:
        session.execute(text("SELECT 1"))
        last = session.scalar(_LAST_SETTLED)
    except Exception as exc:  # any failure to answer is the finding, not a crash
        session.rollback()
        return Check(False, "unreachable", {"error": str(exc).splitlines()[0][:300]}), None
    return Check(True, "reachable"), last


def _broker(runtime: Instance) -> Check:
    source = runtime.source
    if source is None:
        return Check(True, NOT_RUN_HERE)
    where = {"host": runtime.settings.mqtt_host, "port": runtime.settings.mqtt_port}
    if source.connected.is_set():
        return Check(True, "connected", where)
    return Check(False, "disconnected", where)


def _scheduler(runtime: Instance, mono: float) -> Check:
    scheduler = runtime.scheduler
    if scheduler is None:
        return Check(True, NOT_RUN_HERE)
    interval = runtime.settings.settle_interval_s
    limit = STALE_ROUNDS * interval + STALE_SLACK_S
    detail: dict[str, Any] = {"settle_interval_s": interval}
    if not scheduler.running:
        return Check(False, "stopped", detail)
    last = runtime.last_settle_round
    if last is not None:
        age = max(0.0, mono - last)
        detail["last_round_age_s"] = round(age, 1)
        if age <= limit:
            return Check(True, "alive", detail)
        return Check(False, "stalled", detail)
    # No round finished yet: fine for a short while after starting.
    started = runtime.scheduler_started
    if started is not None and mono - started <= limit:
        return Check(True, "starting", detail)
    return Check(False, "stalled", detail)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()
