"""Residents as staff edit them in the dashboard: reading and checking the form (with a
precise message per field), adding, editing, deactivating and reactivating, and the admin
list. Plain functions over a Session; every change writes an audit line.

What the community file import also writes is overwritten by the next import: these edits
are for the days between imports, or for communities that keep their data here rather than
in a file.

Deactivating a resident stops watching them: their routines stop, their devices are taken
away (so a help card or a dead sensor raises nothing; the hardware can be given to someone
else), open alerts are closed, family digests pause. What was switched off is kept in an
AppSetting so that reactivating brings exactly that back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import CursorResult, delete, false, func, or_, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from monitor.admin.forms import ID_PATTERN, AdminError, Problems, problem, text_field
from monitor.audit import describe_changes, record
from monitor.importing.apply import schedule_routine
from monitor.importing.community import RoutineSpec
from monitor.messages import N_
from monitor.models import (
    PAUSED_ROUTINE,
    Alert,
    AppSetting,
    Device,
    Person,
    Resident,
    Routine,
    UnknownDevice,
)
from monitor.paging import Page, paginate
from monitor.rules.windows import next_daily, wall_time


def _zone(value: str, problems: Problems, key: str = "timezone") -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        problem(
            problems,
            key,
            N_('"%(value)s" is not a known time zone (like Asia/Shanghai).'),
            value=value,
        )
    return value


@dataclass(frozen=True)
class ResidentValues:
    id: str
    name: str
    building: str
    unit: str
    timezone: str
    phone: str = ""
    contact: str = ""
    notes: str = ""


def read_resident(form: Mapping[str, str], default_timezone: str) -> ResidentValues:
    """The resident form, checked; raises AdminError naming each bad field."""
    problems: Problems = {}
    rid = (form.get("id") or "").strip()
    if not rid:
        problem(problems, "id", N_("%(field)s is required."), field=N_("Id"))
    elif not ID_PATTERN.match(rid):
        problem(
            problems,
            "id",
            N_(
                '"%(value)s" cannot be an id: use up to 64 letters, digits, dots, dashes or '
                "underscores, starting with a letter or digit (like r-301)."
            ),
            value=rid,
        )
    name = text_field(form, "name", problems, required=True, label=N_("Name"))
    building = text_field(form, "building", problems, required=True, label=N_("Building"))
    unit = text_field(form, "unit", problems, required=False, label=N_("Unit"))
    tz = _zone((form.get("timezone") or "").strip() or default_timezone, problems)
    phone = text_field(form, "phone", problems, required=False, label=N_("Phone"))
    contact = text_field(form, "contact", problems, required=False, label=N_("Contact"))
    notes = text_field(form, "notes", problems, required=False, label=N_("Notes"))
    if problems:
        raise AdminError(problems)
    return ResidentValues(rid, name, building, unit, tz, phone, contact, notes)


def add_resident(session: Session, values: ResidentValues, actor: str, now: datetime) -> Resident:
    if session.get(Resident, values.id) is not None:
        raise AdminError.one("id", N_("There is already a resident %(id)s."), id=values.id)
    resident = Resident(
        id=values.id,
        name=values.name,
        building=values.building,
        unit=values.unit,
        timezone=values.timezone,
        phone=values.phone,
        contact=values.contact,
        notes=values.notes,
        active=True,
    )
    session.add(resident)
    record(
        session,
        actor,
        "resident.add",
        values.id,
        f"{values.name}, building {values.building}, unit {values.unit}, {values.timezone}",
        now,
    )
    session.flush()
    return resident


def update_resident(
    session: Session, resident_id: str, values: ResidentValues, actor: str, now: datetime
) -> Resident:
    """Change a resident's details (the id stays). A new time zone moves their routines'
    windows to the new zone from the next window on."""
    resident = _resident(session, resident_id)
    fields = ("name", "building", "unit", "timezone", "phone", "contact", "notes")
    before = {k: getattr(resident, k) for k in fields}
    after = {k: getattr(values, k) for k in fields}
    for k, v in after.items():
        setattr(resident, k, v)
    if before["timezone"] != values.timezone:
        for routine in session.scalars(
            select(Routine).where(Routine.resident_id == resident_id, Routine.active)
        ):
            schedule_routine(session, routine, _spec(routine), values.timezone, now)
    if before != after:
        record(session, actor, "resident.edit", resident_id, describe_changes(before, after), now)
    session.flush()
    return resident


def _resident(session: Session, resident_id: str) -> Resident:
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise AdminError.one("", N_("There is no resident %(id)s."), id=resident_id)
    return resident


def _spec(routine: Routine) -> RoutineSpec:
    """A stored routine as the importer's spec (to schedule it again)."""
    return RoutineSpec(
        routine.kind,
        wall_time(routine.start) if routine.start else None,
        wall_time(routine.end) if routine.end else None,
        timedelta(seconds=routine.grace_s or 0),
        routine.hours,
        routine.slot,
    )


def _stash_key(resident_id: str) -> str:
    # AppSetting keys are at most 64 characters; resident ids may be 64 themselves.
    return "deactivated:" + hashlib.sha256(resident_id.encode()).hexdigest()[:40]


def _rowcount(result: Any) -> int:
    return result.rowcount if isinstance(result, CursorResult) else 0


@dataclass(frozen=True)
class Deactivated:
    routines: int
    devices: int
    alerts: int


def deactivate_resident(
    session: Session, resident_id: str, actor: str, now: datetime
) -> Deactivated:
    """Stop watching a resident (moved away, in care, passed away). See the module doc."""
    resident = _resident(session, resident_id)
    if not resident.active:
        raise AdminError.one("", N_("%(name)s is already deactivated."), name=resident.name)
    routine_ids = list(
        session.scalars(
            select(Routine.id).where(Routine.resident_id == resident_id, Routine.active)
        )
    )
    devices = [
        [d.id, d.kind, d.light_threshold]
        for d in session.scalars(select(Device).where(Device.resident_id == resident_id))
    ]
    family = list(
        session.scalars(
            select(Person.id).where(
                Person.resident_id == resident_id, Person.digest_next_at.is_not(None)
            )
        )
    )
    stash = {
        "resident": resident_id,
        "routines": routine_ids,
        "devices": devices,
        "digests": family,
    }
    key = _stash_key(resident_id)
    old = session.get(AppSetting, key)
    if old is not None:
        session.delete(old)
        session.flush()
    session.add(AppSetting(key=key, value=json.dumps(stash)))
    resident.active = False
    session.execute(
        update(Routine)
        .where(Routine.id.in_(routine_ids))
        .values(PAUSED_ROUTINE)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(Device)
        .where(Device.resident_id == resident_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Person)
        .where(Person.id.in_(family))
        .values(digest_next_at=None)
        .execution_options(synchronize_session=False)
    )
    closed = _rowcount(
        session.execute(
            update(Alert)
            .where(Alert.resident_id == resident_id, Alert.status != "resolved")
            .values(
                status="resolved",
                resolved_at=now,
                resolved_by=actor[:64],
                outcome="resident_deactivated",
                next_escalation_at=None,
            )
            .execution_options(synchronize_session=False)
        )
    )
    result = Deactivated(len(routine_ids), len(devices), closed)
    record(
        session,
        actor,
        "resident.deactivate",
        resident_id,
        f"{result.routines} routines stopped, devices removed: "
        f"{', '.join(str(d[0]) for d in devices) or 'none'}; {result.alerts} open alerts closed",
        now,
    )
    session.flush()
    return result


def reactivate_resident(
    session: Session, resident_id: str, actor: str, now: datetime
) -> Deactivated:
    """Watch a deactivated resident again: the routines and devices their deactivation
    switched off come back (a device given to someone else since stays there); routines
    start with their next window that has not closed yet."""
    resident = _resident(session, resident_id)
    if resident.active:
        raise AdminError.one("", N_("%(name)s is already active."), name=resident.name)
    resident.active = True
    stash_row = session.get(AppSetting, _stash_key(resident_id))
    stash: dict[str, Any] = json.loads(stash_row.value) if stash_row else {}
    routines = 0
    ids = [int(i) for i in stash.get("routines", [])]
    for routine in session.scalars(
        select(Routine).where(Routine.id.in_(ids), Routine.resident_id == resident_id)
    ):
        schedule_routine(session, routine, _spec(routine), resident.timezone, now)
        routines += 1
    restored = []
    taken = set(
        session.scalars(
            select(Device.id).where(Device.id.in_([d[0] for d in stash.get("devices", [])]))
        )
    )
    for device_id, kind, threshold in stash.get("devices", []):
        if device_id in taken:
            continue
        session.add(
            Device(
                id=device_id,
                resident_id=resident_id,
                kind=kind,
                light_threshold=float(threshold),
                created_at=now,
            )
        )
        restored.append(device_id)
    if restored:
        session.execute(
            delete(UnknownDevice)
            .where(UnknownDevice.id.in_(restored))
            .execution_options(synchronize_session=False)
        )
    tz = ZoneInfo(resident.timezone)
    for person in session.scalars(
        select(Person).where(Person.id.in_(stash.get("digests", [])), Person.opted_out_at.is_(None))
    ):
        if person.digest_at:
            person.digest_next_at = next_daily(wall_time(person.digest_at), tz, now)
    if stash_row is not None:
        session.delete(stash_row)
    record(
        session,
        actor,
        "resident.reactivate",
        resident_id,
        f"{routines} routines restarted, devices back: {', '.join(restored) or 'none'}",
        now,
    )
    session.flush()
    return Deactivated(routines, len(restored), 0)


def residents_page(
    session: Session,
    *,
    q: str = "",
    building: str = "",
    show: str = "active",
    page: int = 1,
    per_page: int = 100,
) -> tuple[Page[Resident], dict[str, int]]:
    """Residents for the admin list, and how many devices each has (two queries + count)."""
    where: list[ColumnElement[bool]] = []
    if show == "active":
        where.append(Resident.active.is_(true()))
    elif show == "inactive":
        where.append(Resident.active.is_(false()))
    if building:
        where.append(Resident.building == building)
    if q.strip():
        where.append(
            or_(
                Resident.id.icontains(q.strip(), autoescape=True),
                Resident.name.icontains(q.strip(), autoescape=True),
                Resident.unit.icontains(q.strip(), autoescape=True),
            )
        )
    query = select(Resident).where(*where).order_by(Resident.building, Resident.unit, Resident.id)
    found = paginate(session, query, page, per_page)
    counts = dict(
        session.execute(
            select(Device.resident_id, func.count())
            .where(Device.resident_id.in_([r.id for r in found.rows]))
            .group_by(Device.resident_id)
        ).all()
    )
    return found, {k: int(v) for k, v in counts.items()}
