"""Writes a validated community into the database. Importing the same file twice changes
nothing; a changed file updates in place. Routines keep their place in time: an unchanged
routine keeps its next window, a changed or new one starts with the next window that has
not closed yet.

Every import a person makes, from the web's import page or `curtainwatch import`, goes
through `import_community` (a community file) or ends with `record_import` (a residents
spreadsheet), so each leaves an audit line saying who imported which file and what it did."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from monitor.access import SYSTEM_ACTOR
from monitor.audit import record
from monitor.importing.community import ROUTINE_MATCH, CommunitySpec, ResidentSpec, RoutineSpec
from monitor.models import (
    PAUSED_ROUTINE,
    AwayPeriod,
    Community,
    Device,
    Person,
    Resident,
    Routine,
    Schedule,
    Settlement,
    UnknownDevice,
)
from monitor.rules import day_marks
from monitor.rules.device_health import close_departed_device_alerts
from monitor.rules.windows import (
    Window,
    first_window_due_after,
    inactivity_due,
    local_date,
    next_daily,
    window_on,
)

FILE_CONSENT = "community-file"


def apply_community(session: Session, spec: CommunitySpec, now: datetime) -> dict[str, int]:
    """Upsert everything in `spec`; returns counts for the CLI to print."""
    community = session.get(Community, 1) or Community(id=1)
    zone_changed = community.timezone is not None and community.timezone != spec.timezone
    community.timezone = spec.timezone
    community.escalation = [
        {"after_s": int(s.after.total_seconds()), "notify": s.notify} for s in spec.escalation
    ]
    community.imported_at = now
    session.add(community)
    if zone_changed:
        # Day marks follow the community's days: today's and yesterday's, by the new zone.
        session.flush()
        day_marks.rebuild(session, now - timedelta(days=1))

    in_file = {r.id for r in spec.residents}
    for resident in session.scalars(select(Resident).where(Resident.id.not_in(in_file))):
        resident.active = False
        session.execute(
            update(Routine).where(Routine.resident_id == resident.id).values(PAUSED_ROUTINE)
        )
    # Devices that left the file go; a device that moved keeps what it reported so far.
    in_file_devices = [d.id for r in spec.residents for d in r.devices]
    session.execute(delete(Device).where(Device.id.not_in(in_file_devices)))
    for r in spec.residents:
        _apply_resident(session, r, now)

    # People who left the file go, except family who joined through an invitation: their
    # consent was given to us, not written into the file, and stays until they opt out.
    session.execute(
        delete(Person).where(
            Person.id.not_in([p.id for p in spec.people]),
            or_(Person.consent_version.is_(None), Person.consent_version == FILE_CONSENT),
        )
    )
    zones = {r.id: r.timezone for r in spec.residents}
    for p in spec.people:
        person = session.get(Person, p.id) or Person(id=p.id)
        person.name, person.role, person.language = p.name, p.role, p.language
        person.buildings, person.resident_id, person.consent = p.buildings, p.resident, p.consent
        person.notify = p.notify
        person.rota = [
            {"days": list(r.days), "from": f"{r.start:%H:%M}", "to": f"{r.end:%H:%M}"}
            for r in p.rota
        ]
        person.quiet_hours = (
            {"from": f"{p.quiet_hours[0]:%H:%M}", "to": f"{p.quiet_hours[1]:%H:%M}"}
            if p.quiet_hours
            else None
        )
        if p.consent and person.consent_version is None:
            person.consent_version = FILE_CONSENT  # recorded by staff, not on our page
        digest_at = f"{p.digest:%H:%M}" if p.digest else None
        if digest_at != person.digest_at or (digest_at and person.digest_next_at is None):
            tz = ZoneInfo(zones.get(p.resident or "", spec.timezone))
            person.digest_next_at = next_daily(p.digest, tz, now) if p.digest else None
        person.digest_at = digest_at
        session.add(person)
    session.flush()
    close_departed_device_alerts(session, SYSTEM_ACTOR, now)
    return {
        "residents": len(spec.residents),
        "devices": sum(len(r.devices) for r in spec.residents),
        "routines": sum(len(r.routines) for r in spec.residents),
        "people": len(spec.people),
    }


def import_community(
    session: Session,
    spec: CommunitySpec,
    now: datetime,
    actor: str,
    filename: str,
    counts: Mapping[str, int],
) -> dict[str, int]:
    """The one way a community file is imported, from the web or the CLI: apply_community,
    then the audit line naming `actor`, the file and `counts` (what the import's preview
    shows: new, changed, unchanged, no longer watched, people). Returns what
    apply_community returns."""
    written = apply_community(session, spec, now)
    record_import(session, now, actor, "import.community", filename, counts)
    return written


def record_import(
    session: Session,
    now: datetime,
    actor: str,
    action: str,
    filename: str,
    counts: Mapping[str, int],
) -> None:
    """The audit line of an import ("import.community" or "import.spreadsheet"): who, which
    file and the counts, as the audit page and the import page's recent imports show them."""
    record(
        session,
        actor,
        action,
        filename,
        json.dumps({"file": filename, **counts}, ensure_ascii=False),
        now,
    )


def apply_residents(
    session: Session,
    residents: list[ResidentSpec],
    now: datetime,
    retire: list[str] | None = None,
) -> dict[str, int]:
    """Upsert these residents only (a spreadsheet), leaving the community's time zone,
    people, escalation and every other resident as they are. Each listed resident ends
    up with exactly the devices, routines and away periods of its spec (a device that
    moved keeps what it reported so far). Residents in `retire` are no longer watched:
    inactive, routines stopped, their devices gone, as apply_community does for residents
    that left the file."""
    retire = retire or []
    wanted = {d.id for r in residents for d in r.devices}
    owners = [r.id for r in residents] + retire
    gone: list[str] = []
    for i in range(0, len(owners), 500):  # IN lists in chunks: SQLite caps bound values
        chunk = owners[i : i + 500]
        gone += [
            d
            for d in session.scalars(select(Device.id).where(Device.resident_id.in_(chunk)))
            if d not in wanted
        ]
    for i in range(0, len(gone), 500):
        session.execute(delete(Device).where(Device.id.in_(gone[i : i + 500])))
    for i in range(0, len(retire), 500):
        chunk = retire[i : i + 500]
        session.execute(update(Resident).where(Resident.id.in_(chunk)).values(active=False))
        session.execute(
            update(Routine).where(Routine.resident_id.in_(chunk)).values(PAUSED_ROUTINE)
        )
    # Load what exists in chunks first, so each resident below finds its rows in the
    # session instead of asking the database a few times over (20,000 rows of a sheet).
    listed = [r.id for r in residents]
    for i in range(0, len(listed), 500):
        chunk = listed[i : i + 500]
        session.scalars(select(Resident).where(Resident.id.in_(chunk))).all()
        session.scalars(select(Routine).where(Routine.resident_id.in_(chunk))).all()
    wanted_list = sorted(wanted)
    for i in range(0, len(wanted_list), 500):
        session.scalars(select(Device).where(Device.id.in_(wanted_list[i : i + 500]))).all()
    with session.no_autoflush:
        for r in residents:
            _apply_resident(session, r, now)
    session.flush()
    close_departed_device_alerts(session, SYSTEM_ACTOR, now)
    return {
        "residents": len(residents),
        "devices": sum(len(r.devices) for r in residents),
        "routines": sum(len(r.routines) for r in residents),
        "retired": len(retire),
    }


def _apply_resident(session: Session, spec: ResidentSpec, now: datetime) -> None:
    resident = session.get(Resident, spec.id) or Resident(id=spec.id)
    resident.name, resident.building, resident.unit = spec.name, spec.building, spec.unit
    resident.timezone, resident.active = spec.timezone, True
    resident.phone, resident.contact, resident.notes = spec.phone, spec.contact, spec.notes
    session.add(resident)
    session.flush()

    session.execute(delete(UnknownDevice).where(UnknownDevice.id.in_([d.id for d in spec.devices])))
    for d in spec.devices:
        device = session.get(Device, d.id)
        if device is None:
            device = Device(id=d.id, created_at=now)
        elif device.kind != d.kind:
            # A value of the old kind means nothing for the new one, nor does its time.
            device.state, device.state_at = None, None
        elif device.resident_id != spec.id:
            device.moved_at = now  # as move_device
        device.resident_id, device.kind, device.light_threshold = spec.id, d.kind, d.light_threshold
        session.add(device)

    session.execute(delete(AwayPeriod).where(AwayPeriod.resident_id == spec.id))
    session.add_all(AwayPeriod(resident_id=spec.id, first_day=a, last_day=b) for a, b in spec.away)

    existing = {
        r.slot: r for r in session.scalars(select(Routine).where(Routine.resident_id == spec.id))
    }
    for x in spec.routines:
        routine = existing.pop(x.slot, None)
        if routine is None:
            routine = Routine(resident_id=spec.id, slot=x.slot)
            session.add(routine)
        _schedule(session, routine, x, spec.timezone, now)
    for gone in existing.values():
        gone.pause()


def schedule_routine(
    session: Session, routine: Routine, x: RoutineSpec, tz_name: str, now: datetime
) -> None:
    """Set `routine` to `x` and reschedule it exactly as an import would (used by the
    dashboard's routine editor, so both paths keep one rule for the next window)."""
    _schedule(session, routine, x, tz_name, now)


def _schedule(
    session: Session, routine: Routine, x: RoutineSpec, tz_name: str, now: datetime
) -> None:
    """Fill in the routine and, if its timing changed (or it is new), its next window."""
    grace_s = int(x.grace.total_seconds())
    start = x.start.strftime("%H:%M") if x.start else None
    end = x.end.strftime("%H:%M") if x.end else None
    unchanged = (
        routine.active
        and routine.id is not None
        and routine.timezone == tz_name
        and (routine.start, routine.end, routine.grace_s, routine.hours)
        == (start, end, grace_s, x.hours)
    )
    routine.kind, routine.start, routine.end, routine.grace_s = x.kind, start, end, grace_s
    routine.hours, routine.timezone, routine.active = x.hours, tz_name, True
    routine.match_kind, routine.match_value = ROUTINE_MATCH[x.kind]
    if unchanged:
        return
    tz = ZoneInfo(tz_name)
    routine.schedule, routine.own_window_date, routine.own_next_due_at = None, None, None
    if x.kind == "inactivity":
        assert x.hours is not None
        due = inactivity_due(now, x.hours)
        routine.own_window_date, routine.own_next_due_at = local_date(due, tz), due
    elif x.kind != "help":
        assert x.start and x.end
        w = first_window_due_after(now, x.start, x.end, x.grace, tz)
        if routine.id is not None:
            # A settled window was due by now, so its date is at most a few days past
            # w.day (which is at most two days before today): a week of dates, sought
            # through the settlements key (window_date, routine_id, due_at), not a scan.
            last_day = session.scalar(
                select(func.max(Settlement.window_date)).where(
                    Settlement.window_date.in_([w.day + timedelta(days=k) for k in range(7)]),
                    Settlement.routine_id == routine.id,
                )
            )
            if last_day is not None and last_day >= w.day:
                # never settle a day twice, even when its timing changed after it was settled
                w = window_on(last_day + timedelta(days=1), x.start, x.end, x.grace, tz)
        routine.schedule = _schedule_for(session, tz_name, start, end, grace_s, w)


def _schedule_for(
    session: Session, tz_name: str, start: str | None, end: str | None, grace_s: int, w: Window
) -> Schedule:
    """The schedule of this timing at window `w`, made if there is none. Remembered for the
    rest of the transaction (an import reschedules thousands of routines of a few timings);
    the engine may move or merge schedules once it commits."""
    assert start is not None and end is not None
    key = (tz_name, start, end, grace_s, w.day)
    txn = session.get_transaction()
    cached = session.info.get("schedules")
    if cached is None or cached[0] is not txn:
        cached = session.info["schedules"] = (txn, {})
    known: dict[tuple[object, ...], Schedule] = cached[1]
    found = known.get(key)
    if found is None:
        found = session.scalar(
            select(Schedule)
            .where(
                Schedule.timezone == tz_name,
                Schedule.start == start,
                Schedule.end == end,
                Schedule.grace_s == grace_s,
                Schedule.window_date == w.day,
            )
            .order_by(Schedule.id)
            .limit(1)
            # Held until this transaction ends, so the engine cannot move the schedule on
            # before it sees these routines (PostgreSQL; SQLite has a single writer).
            .with_for_update(read=True)
        )
        if found is None:
            found = Schedule(
                timezone=tz_name,
                start=start,
                end=end,
                grace_s=grace_s,
                window_date=w.day,
                window_start_at=w.opens_at,
                next_due_at=w.due_at,
            )
            session.add(found)
        known[key] = found
    return found
