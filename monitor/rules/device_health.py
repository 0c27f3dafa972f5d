"""Device health: the one rule for an offline or low-battery device (the engine's device
check, the board, the devices page, /metrics), the queries that find devices newly bad or
recovered, and closing the alerts of a device that left its resident."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, false, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from monitor.messages import N_, Message, instant
from monitor.models import Alert, Device
from monitor.tables import ALERTS, DEVICES

BATTERY_SILENCE = timedelta(hours=25)  # zigbee2mqtt counts battery devices offline after this
NEVER_SEEN_GRACE = timedelta(hours=25)
LOW_BATTERY = 15.0
BATTERY_REPLACED = 25.0
DEVICE_ALERT_KINDS = ("device_offline", "low_battery")


def offline_rule(now: Any, stale: Any) -> ColumnElement[bool]:
    """The one rule for an offline device at `now` (engine, board, health, devices page):
    it said so, its silence outlasted `alive_until`, or it was added before `stale` and
    never spoke. Arguments are SQL values (bind parameters, so statements can be cached,
    or plain datetimes). Every term is strictly true or false (no NULLs), so that the
    negation means "recovered"."""
    return or_(
        DEVICES.c.online.is_(false()),
        and_(DEVICES.c.alive_until.is_not(None), DEVICES.c.alive_until < now),
        and_(DEVICES.c.last_seen.is_(None), DEVICES.c.created_at < stale),
    )


def device_checks() -> list[tuple[str, Select[Any], Select[Any]]]:
    """(kind, query for devices that newly qualify, query for devices that recovered),
    built once: building SQLAlchemy expressions costs more than running them."""
    now = bindparam("now", type_=DEVICES.c.last_seen.type)
    offline = offline_rule(now, bindparam("stale", type_=now.type))
    checks = []
    for kind, bad, good in (
        ("device_offline", offline, ~offline),
        ("low_battery", DEVICES.c.battery < LOW_BATTERY, DEVICES.c.battery >= BATTERY_REPLACED),
    ):
        has_open = exists().where(
            ALERTS.c.resident_id == DEVICES.c.resident_id,
            ALERTS.c.cause == kind + ":" + DEVICES.c.id,
            ALERTS.c.status != "resolved",
        )
        checks.append(
            (
                kind,
                select(
                    DEVICES.c.id,
                    DEVICES.c.resident_id,
                    DEVICES.c.last_seen,
                    DEVICES.c.battery,
                    DEVICES.c.online,
                ).where(bad, ~has_open),
                select(DEVICES.c.id, DEVICES.c.resident_id).where(good, has_open),
            )
        )
    return checks


def device_offline(now: datetime) -> ColumnElement[bool]:
    """Devices that count as offline at `now`: reported offline, silent past their
    alive_until, or never heard from NEVER_SEEN_GRACE after being added."""
    return offline_rule(now, now - NEVER_SEEN_GRACE)


def device_low_battery() -> ColumnElement[bool]:
    return Device.battery < LOW_BATTERY


def device_detail(
    kind: str, last_seen: datetime | None, battery: float | None, online: bool | None
) -> Message:
    if kind == "low_battery":
        return N_("battery at %(percent)s%%"), {"percent": f"{battery:.0f}"}
    if online is False:
        return N_("reported offline"), {}
    if last_seen is None:
        return N_("has never reported since it was added"), {}
    return N_("silent since %(last_seen_at)s"), {"last_seen_at": instant(last_seen)}


def close_departed_device_alerts(session: Session, actor: str, now: datetime) -> None:
    """Resolve every open device alert whose device no longer belongs to the alert's
    resident: moved to someone else, or gone (from the devices page or an import). A device
    that left a resident can no longer be offline or low for them, and nothing else would
    resolve it: the engine looks for recovery only among a resident's own devices."""
    # The alert's device, by primary key: cause is "<kind>:<device id>".
    named = Device.id == func.substr(Alert.cause, func.length(Alert.kind) + 2)
    moved = select(Device.id).where(named, Device.resident_id != Alert.resident_id).exists()
    removed = ~select(Device.id).where(named).exists()
    for outcome, departed in (("device_moved", moved), ("device_removed", removed)):
        session.execute(
            update(Alert)
            .where(Alert.kind.in_(DEVICE_ALERT_KINDS), Alert.status != "resolved", departed)
            .values(
                status="resolved",
                resolved_at=now,
                resolved_by=actor[:64],
                outcome=outcome,
                next_escalation_at=None,
            )
        )


DEVICE_CHECKS = device_checks()
