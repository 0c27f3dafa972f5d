"""/api/v1 residents (each with devices, routines and away periods) and devices (all, offline
or low on battery)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, request
from sqlalchemy import Row, Select, select
from werkzeug.wrappers import Response

from monitor.models import AwayPeriod, Device, Resident, Routine
from monitor.rules.device_health import device_low_battery, device_offline
from web.api.blueprint import bp, caller_scope, clock_now, fail, iso, refuse
from web.helpers import get_runtime

DEVICE_STATUSES = ("offline", "low_battery")


@bp.get("/residents")
def residents() -> Response:
    q = (
        select(Resident)
        .where(caller_scope().residents(Resident.id))
        .order_by(Resident.building, Resident.unit, Resident.id)
    )
    building = request.args.get("building")
    if building is not None:
        q = q.where(Resident.building == building)
    with get_runtime().sessions() as s:
        rows = s.scalars(q).all()
        return jsonify({"residents": [_resident(r) for r in rows]})


@bp.get("/residents/<resident_id>")
def resident(resident_id: str) -> Response:
    now = clock_now()
    with get_runtime().sessions() as s:
        found = s.scalar(
            select(Resident).where(
                Resident.id == resident_id, caller_scope().residents(Resident.id)
            )
        )
        if found is None:
            refuse("resident", resident_id)
        devices = s.execute(
            _devices_query(now).where(Device.resident_id == resident_id).order_by(Device.id)
        ).all()
        routines = s.scalars(
            select(Routine).where(Routine.resident_id == resident_id).order_by(Routine.id)
        ).all()
        away = s.scalars(
            select(AwayPeriod)
            .where(AwayPeriod.resident_id == resident_id)
            .order_by(AwayPeriod.first_day)
        ).all()
        return jsonify(
            {
                **_resident(found),
                "devices": [_device(row) for row in devices],
                "routines": [_routine(r) for r in routines],
                "away": [
                    {"from": a.first_day.isoformat(), "to": a.last_day.isoformat()} for a in away
                ],
            }
        )


def _resident(r: Resident) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "building": r.building,
        "unit": r.unit,
        "timezone": r.timezone,
        "active": r.active,
    }


def _routine(r: Routine) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "start": r.start,
        "end": r.end,
        "grace_s": r.grace_s,
        "hours": r.hours,
        "timezone": r.timezone,
        "active": r.active,
        "next_due_at": iso(r.next_due_at),
    }


@bp.get("/devices")
def devices() -> Response:
    now = clock_now()
    q = _devices_query(now).where(caller_scope().residents(Device.resident_id))
    status = request.args.get("status")
    if status is not None:
        if status not in DEVICE_STATUSES:
            fail(400, f"unknown status {status!r}", field="status", allowed=list(DEVICE_STATUSES))
        q = q.where(device_offline(now) if status == "offline" else device_low_battery())
    resident_id = request.args.get("resident")
    if resident_id is not None:
        q = q.where(Device.resident_id == resident_id)
    with get_runtime().sessions() as s:
        rows = s.execute(q.order_by(Resident.building, Resident.unit, Device.id)).all()
    return jsonify({"devices": [_device(row) for row in rows]})


def _devices_query(now: datetime) -> Select[Device, str, bool, bool]:
    return select(
        Device,
        Resident.building,
        device_offline(now).label("offline"),
        device_low_battery().label("low_battery"),
    ).join(Resident, Resident.id == Device.resident_id)


def _device(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    d: Device = row[0]
    offline = bool(row.offline)
    return {
        "id": d.id,
        "resident": d.resident_id,
        "building": row.building,
        "kind": d.kind,
        "state": d.state,
        "last_seen": iso(d.last_seen),
        "battery": d.battery,
        # By the engine's rule (reported offline, or silent too long); null: never heard
        # from yet, but still within the grace a new device gets.
        "online": False if offline else (None if d.last_seen is None else True),
        "low_battery": bool(row.low_battery),
    }
