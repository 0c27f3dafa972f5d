"""Residents, people (volunteers, staff, family), rotas and web users as staff and admins
edit them in the dashboard: reading and checking the forms (with a precise message per
field), the changes, and their audit lines. Plain functions over a Session.

What the community file import also writes (residents, devices, people) is overwritten by
the next import: these edits are for the days between imports, or for communities that
keep their data here rather than in a file.

Deactivating a resident stops watching them: their routines stop, their devices are taken
away (so a help card or a dead sensor raises nothing; the hardware can be given to someone
else), open alerts are closed, family digests pause. What was switched off is kept in an
AppSetting so that reactivating brings exactly that back."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import CursorResult, delete, false, func, or_, select, true, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from monitor.admin.devices import AdminError, Page, record
from monitor.admin.users import MIN_PASSWORD, UserError, create_user, hash_password, new_api_token
from monitor.importing.apply import schedule_routine
from monitor.importing.community import LANGUAGES, WEEKDAYS, RoutineSpec, parse_time
from monitor.importing.community import ROLES as PERSON_ROLES
from monitor.messages import N_
from monitor.models import (
    PAUSED_ROUTINE,
    Alert,
    AppSetting,
    AuditEntry,
    Delivery,
    Device,
    Person,
    Resident,
    Routine,
    UnknownDevice,
    User,
)
from monitor.models import (
    ROLES as USER_ROLES,
)
from monitor.rules.windows import next_daily, wall_time

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TEXT_MAX = {"name": 200, "building": 64, "unit": 64, "phone": 64, "contact": 2000, "notes": 2000}
NOTIFY_MAX = 10
ROTA_ROWS_MAX = 20

Problems = dict[str, tuple[str, Mapping[str, Any]]]


def _problem(problems: Problems, field_name: str, msgid: str, **params: Any) -> None:
    problems.setdefault(field_name, (msgid, params))


def _text(
    form: Mapping[str, str], key: str, problems: Problems, *, required: bool, label: str
) -> str:
    value = (form.get(key) or "").strip()
    if required and not value:
        _problem(problems, key, N_("%(field)s is required."), field=label)
    elif len(value) > TEXT_MAX.get(key, 200):
        _problem(
            problems,
            key,
            N_("%(field)s has at most %(n)s characters."),
            field=label,
            n=TEXT_MAX.get(key, 200),
        )
    return value


def _zone(value: str, problems: Problems, key: str = "timezone") -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        _problem(
            problems,
            key,
            N_('"%(value)s" is not a known time zone (like Asia/Shanghai).'),
            value=value,
        )
    return value


# -- residents -------------------------------------------------------------------------


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
        _problem(problems, "id", N_("%(field)s is required."), field=N_("Id"))
    elif not ID_PATTERN.match(rid):
        _problem(
            problems,
            "id",
            N_(
                '"%(value)s" cannot be an id: use up to 64 letters, digits, dots, dashes or '
                "underscores, starting with a letter or digit (like r-301)."
            ),
            value=rid,
        )
    name = _text(form, "name", problems, required=True, label=N_("Name"))
    building = _text(form, "building", problems, required=True, label=N_("Building"))
    unit = _text(form, "unit", problems, required=False, label=N_("Unit"))
    tz = _zone((form.get("timezone") or "").strip() or default_timezone, problems)
    phone = _text(form, "phone", problems, required=False, label=N_("Phone"))
    contact = _text(form, "contact", problems, required=False, label=N_("Contact"))
    notes = _text(form, "notes", problems, required=False, label=N_("Notes"))
    if problems:
        raise AdminError(problems)
    return ResidentValues(rid, name, building, unit, tz, phone, contact, notes)


def _describe_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    changed = [
        f"{k}: {before[k]!r} -> {after[k]!r}" if k in before else f"{k}: {after[k]!r}"
        for k in after
        if before.get(k) != after[k]
    ]
    return "; ".join(changed) or "no change"


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
        record(session, actor, "resident.edit", resident_id, _describe_changes(before, after), now)
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


# -- people ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonValues:
    name: str
    role: str
    language: str
    buildings: list[str]
    resident_id: str | None
    notify_add: list[str]
    notify_remove: frozenset[int]
    rota: list[dict[str, Any]]
    quiet_hours: dict[str, str] | None
    id: str = ""


@dataclass(frozen=True)
class RotaRow:
    """One row of the rota editor as the form sent it."""

    days: Sequence[str]
    start: str
    end: str


def _time(value: str, problems: Problems, key: str, row: int | None) -> time | None:
    """`row` is the rota row number, or None for the quiet hours."""
    try:
        return parse_time(value)
    except ValueError:
        if row is None:
            msgid = N_('Quiet hours: "%(value)s" is not a time; write HH:MM, from 00:00 to 23:59.')
        else:
            msgid = N_(
                'Rota row %(n)s: "%(value)s" is not a time; write HH:MM, from 00:00 to 23:59.'
            )
        _problem(problems, key, msgid, n=row, value=value)
        return None


def read_rota(rows: Sequence[RotaRow], problems: Problems) -> list[dict[str, Any]]:
    """Weekly spells as stored in people.rota: days as weekday numbers (Monday = 0, as the
    importer stores them and alerts.duty reads them), times "HH:MM". Empty rows are skipped."""
    rota: list[dict[str, Any]] = []
    for i, row in enumerate(rows[:ROTA_ROWS_MAX]):
        n = i + 1
        start, end = row.start.strip(), row.end.strip()
        days = [d for d in row.days if d]
        if not days and not start and not end:
            continue
        bad_days = [d for d in days if d not in WEEKDAYS]
        if not days:
            _problem(
                problems, f"rota-{i}-days", N_("Rota row %(n)s: choose at least one day."), n=n
            )
        elif bad_days:
            _problem(
                problems,
                f"rota-{i}-days",
                N_('Rota row %(n)s: "%(value)s" is not a weekday.'),
                n=n,
                value=bad_days[0],
            )
        s = _time(start, problems, f"rota-{i}-from", n) if start else None
        e = _time(end, problems, f"rota-{i}-to", n) if end else None
        if not start:
            _problem(problems, f"rota-{i}-from", N_("Rota row %(n)s: give the start time."), n=n)
        if not end:
            _problem(problems, f"rota-{i}-to", N_("Rota row %(n)s: give the end time."), n=n)
        if s is not None and e is not None and s == e:
            _problem(
                problems,
                f"rota-{i}-to",
                N_("Rota row %(n)s: the spell %(start)s–%(end)s is empty."),
                n=n,
                start=f"{s:%H:%M}",
                end=f"{e:%H:%M}",
            )
        if s is not None and e is not None and days and not bad_days:
            rota.append(
                {
                    "days": sorted({WEEKDAYS.index(d) for d in days}),
                    "from": f"{s:%H:%M}",
                    "to": f"{e:%H:%M}",
                }
            )
    return rota


def rota_days(spell: Mapping[str, Any]) -> list[str]:
    """A stored spell's days as names (stored as numbers; names are accepted too)."""
    names = []
    for d in spell.get("days", []):
        if isinstance(d, int) and 0 <= d < 7:
            names.append(WEEKDAYS[d])
        elif isinstance(d, str) and d in WEEKDAYS:
            names.append(d)
    return names


def _quiet(form: Mapping[str, str], problems: Problems) -> dict[str, str] | None:
    start, end = (form.get("quiet_from") or "").strip(), (form.get("quiet_to") or "").strip()
    if not start and not end:
        return None
    if not start or not end:
        _problem(
            problems,
            "quiet_from" if not start else "quiet_to",
            N_("Quiet hours need both a start and an end, or neither."),
        )
        return None
    s = _time(start, problems, "quiet_from", None)
    e = _time(end, problems, "quiet_to", None)
    if s is None or e is None:
        return None
    if s == e:
        _problem(
            problems,
            "quiet_to",
            N_("Quiet hours: %(start)s–%(end)s is empty."),
            start=f"{s:%H:%M}",
            end=f"{e:%H:%M}",
        )
        return None
    return {"from": f"{s:%H:%M}", "to": f"{e:%H:%M}"}


def check_notify_url(url: str) -> bool:
    """Is this an address Apprise can send to?"""
    import apprise  # imported here: only the people form needs it, and it loads slowly

    return bool(apprise.Apprise().add(url))


def read_person(
    session: Session,
    form: Mapping[str, str],
    rota_rows: Sequence[RotaRow],
    notify_remove: Sequence[str],
    *,
    new: bool,
) -> PersonValues:
    """The person form, checked; raises AdminError naming each bad field. Nothing is
    changed until every field is right."""
    problems: Problems = {}
    pid = (form.get("id") or "").strip()
    if new:
        if not pid:
            _problem(problems, "id", N_("%(field)s is required."), field=N_("Id"))
        elif not ID_PATTERN.match(pid):
            _problem(
                problems,
                "id",
                N_(
                    '"%(value)s" cannot be an id: use up to 64 letters, digits, dots, dashes '
                    "or underscores, starting with a letter or digit (like v-li)."
                ),
                value=pid,
            )
        elif session.get(Person, pid) is not None:
            _problem(problems, "id", N_("There is already a person %(id)s."), id=pid)
    name = _text(form, "name", problems, required=True, label=N_("Name"))
    role = (form.get("role") or "").strip()
    if role not in PERSON_ROLES:
        _problem(problems, "role", N_("Choose a role: %(roles)s."), roles=", ".join(PERSON_ROLES))
    language = (form.get("language") or "").strip()
    if language not in LANGUAGES:
        _problem(
            problems,
            "language",
            N_("Choose a language: %(languages)s."),
            languages=", ".join(LANGUAGES),
        )
    buildings = list(
        dict.fromkeys(b for b in re.split(r"[,\s，]+", form.get("buildings") or "") if b)
    )
    if role == "volunteer" and not buildings:
        _problem(
            problems,
            "buildings",
            N_("A volunteer needs the buildings they cover (like 3, 5)."),
        )
    if any(len(b) > 64 for b in buildings):
        _problem(problems, "buildings", N_("A building name has at most 64 characters."))
    resident_id: str | None = (form.get("resident_id") or "").strip() or None
    if role == "family":
        if resident_id is None or session.get(Resident, resident_id) is None:
            _problem(
                problems,
                "resident_id",
                N_("A family member needs their relative: choose a resident."),
            )
    else:
        resident_id = None
    notify_add: list[str] = []
    for n, line in enumerate((form.get("notify_add") or "").splitlines(), start=1):
        url = line.strip()
        if not url:
            continue
        if "://" not in url or not check_notify_url(url):
            _problem(
                problems,
                "notify_add",
                N_("Line %(line)s is not an address we can send to (like ntfy://ntfy.sh/topic)."),
                line=n,
            )
            break
        notify_add.append(url)
    remove = frozenset(int(i) for i in notify_remove if str(i).isdigit())
    rota = read_rota(rota_rows, problems)
    quiet = _quiet(form, problems)
    if problems:
        raise AdminError(problems)
    return PersonValues(
        name, role, language, buildings, resident_id, notify_add, remove, rota, quiet, pid
    )


def _new_notify(old: list[str], values: PersonValues, problems: Problems) -> list[str]:
    kept = [u for i, u in enumerate(old) if i not in values.notify_remove]
    for url in values.notify_add:
        if url in kept:
            _problem(problems, "notify_add", N_("That address is already in the list."))
        else:
            kept.append(url)
    if len(kept) > NOTIFY_MAX:
        _problem(problems, "notify_add", N_("At most %(n)s addresses per person."), n=NOTIFY_MAX)
    return kept


def save_person(
    session: Session, person_id: str | None, values: PersonValues, actor: str, now: datetime
) -> Person:
    """Create (person_id None) or change a person. Removing a notification address moves
    the person's pending messages to the addresses that stay (they are kept by position)."""
    if person_id is None:
        person = Person(id=values.id, notify=[], rota=[], buildings=[])
        session.add(person)
        before: dict[str, Any] = {}
    else:
        found = session.get(Person, person_id)
        if found is None:
            raise AdminError.one("", N_("There is no person %(id)s."), id=person_id)
        person = found
        before = _person_facts(person)
    problems: Problems = {}
    old_notify = list(person.notify or [])
    notify = _new_notify(old_notify, values, problems)
    if problems:
        raise AdminError(problems)
    person.name, person.role, person.language = values.name, values.role, values.language
    person.buildings = values.buildings
    person.resident_id = values.resident_id
    person.rota = values.rota
    person.quiet_hours = values.quiet_hours
    person.notify = notify
    session.flush()
    if person_id is not None and notify != old_notify:
        _renumber_deliveries(session, person.id, old_notify, notify)
    after = _person_facts(person)
    if person_id is None:
        record(session, actor, "person.add", person.id, _describe_changes({}, after), now)
    elif before != after:
        record(session, actor, "person.edit", person.id, _describe_changes(before, after), now)
    session.flush()
    return person


def _person_facts(person: Person) -> dict[str, Any]:
    """What the audit line compares; addresses only masked (they hold secrets)."""
    return {
        "name": person.name,
        "role": person.role,
        "language": person.language,
        "buildings": list(person.buildings or []),
        "resident": person.resident_id,
        "notify": [mask_url(u) for u in person.notify or []],
        "rota": [
            f"{','.join(rota_days(s))} {s.get('from')}-{s.get('to')}" for s in person.rota or []
        ],
        "quiet_hours": dict(person.quiet_hours) if person.quiet_hours else None,
    }


def _renumber_deliveries(session: Session, person_id: str, old: list[str], new: list[str]) -> None:
    """Deliveries point at an address by its position in Person.notify. After the list
    changed, the person's deliveries follow their address to its new position; those whose
    address was removed move out of the way (a negative position) and, if still pending,
    are given up, saying why. A few statements, however many deliveries."""
    targets: dict[int, int | None] = {}
    used: set[int] = set()
    for c, url in enumerate(old):
        t = new.index(url) if url in new else None
        if t is not None and t in used:  # the same address twice in the old list
            t = None
        if t is not None:
            used.add(t)
        if t != c:
            targets[c] = t
    if not targets:
        return
    mine = Delivery.person_id == person_id
    removed = [c for c, t in targets.items() if t is None]
    if removed:
        session.execute(
            update(Delivery)
            .where(mine, Delivery.channel.in_(removed), Delivery.status == "pending")
            .values(status="gave_up", next_attempt_at=None, last_error="address removed by staff")
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Delivery)
            .where(mine, Delivery.channel.in_(removed))
            .values(channel=-1 - Delivery.id)
            .execution_options(synchronize_session=False)
        )
    # Kept addresses keep their order, so each moves down into a place already vacated
    # (by a removed address, or by one moved before it): ascending order never collides.
    for c in sorted(c for c, t in targets.items() if t is not None):
        session.execute(
            update(Delivery)
            .where(mine, Delivery.channel == c)
            .values(channel=targets[c])
            .execution_options(synchronize_session=False)
        )


_SECRET_KEYS = re.compile(r"(token|key|secret|pass|auth|sig|code|webhook)", re.I)


def _mask(text: str) -> str:
    if len(text) <= 6:
        return "****"
    return f"{text[:2]}…{text[-2:]}"


def mask_url(url: str) -> str:
    """A notification address safe to show on a screen: passwords hidden, and tokens (long
    path parts, a host that is not a host name, secret-looking query values) cut to their
    first and last characters, e.g. tgram://12…yz/98…21, mailto://chen:****@mail.example.org."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _mask(url)
    if not parts.scheme:
        return _mask(url)
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        user_shown = _mask(user) if len(user) > 24 else user
        userinfo = f"{user_shown}:****" if colon else user_shown
    host, colon, port = hostport.partition(":")
    looks_like_host = "." in host or host in ("localhost", "") or host.replace(":", "").isdigit()
    if not looks_like_host or (colon and not port.isdigit()):
        hostport = _mask(hostport)
    netloc = f"{userinfo}@{hostport}" if at else hostport
    path = "/".join(
        _mask(seg) if len(seg) >= 12 or ":" in seg else seg for seg in parts.path.split("/")
    )
    query = "&".join(
        f"{k}={_mask(v) if _SECRET_KEYS.search(k) else quote(v, safe='')}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class FamilyMember:
    id: str
    name: str
    resident_id: str | None
    resident_name: str
    language: str
    consent: Any
    consented_at: datetime | None
    consent_version: str | None
    opted_out_at: datetime | None
    channels: int

    @property
    def state(self) -> str:
        """ "opted_out", "consented" or "no_consent" (alerts reach only the second)."""
        if self.opted_out_at is not None:
            return "opted_out"
        if self.consented_at is not None or self.consent is not None:
            return "consented"
        return "no_consent"


def family_members(session: Session) -> list[FamilyMember]:
    stmt = (
        select(
            Person.id,
            Person.name,
            Person.resident_id,
            func.coalesce(Resident.name, ""),
            Person.language,
            Person.consent,
            Person.consented_at,
            Person.consent_version,
            Person.opted_out_at,
            Person.notify,
        )
        .outerjoin(Resident, Resident.id == Person.resident_id)
        .where(Person.role == "family")
        .order_by(Person.resident_id, Person.name)
    )
    return [
        FamilyMember(*row[:9], channels=len(row[9] or []))  # type: ignore[misc]
        for row in session.execute(stmt)
    ]


def people_page(
    session: Session, *, role: str = "", q: str = "", page: int = 1, per_page: int = 100
) -> Page[Person]:
    where: list[ColumnElement[bool]] = []
    if role in PERSON_ROLES:
        where.append(Person.role == role)
    if q.strip():
        where.append(
            or_(
                Person.id.icontains(q.strip(), autoescape=True),
                Person.name.icontains(q.strip(), autoescape=True),
            )
        )
    total = session.scalar(select(func.count()).select_from(Person).where(*where)) or 0
    page = max(1, page)
    rows = list(
        session.scalars(
            select(Person)
            .where(*where)
            .order_by(Person.role, Person.name, Person.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return Page(rows, total, page, per_page)


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
    total = session.scalar(select(func.count()).select_from(Resident).where(*where)) or 0
    page = max(1, page)
    residents = list(
        session.scalars(
            select(Resident)
            .where(*where)
            .order_by(Resident.building, Resident.unit, Resident.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    counts = dict(
        session.execute(
            select(Device.resident_id, func.count())
            .where(Device.resident_id.in_([r.id for r in residents]))
            .group_by(Device.resident_id)
        ).all()
    )
    return Page(residents, total, page, per_page), {k: int(v) for k, v in counts.items()}


# -- users -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserValues:
    username: str
    display_name: str
    role: str
    person_id: str | None
    password: str
    extra: dict[str, str] = field(default_factory=dict)


def _password(password: str, problems: Problems, key: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        _problem(problems, key, N_("A password needs at least %(n)s characters."), n=MIN_PASSWORD)
    elif len(password) > 200:
        _problem(problems, key, N_("A password has at most %(n)s characters."), n=200)


def add_user(session: Session, form: Mapping[str, str], actor: str, now: datetime) -> User:
    """A new web user from the admin form. Volunteers and family must be linked to their
    person (that decides what they may see)."""
    problems: Problems = {}
    username = (form.get("username") or "").strip()
    if not USERNAME_PATTERN.match(username):
        _problem(
            problems,
            "username",
            N_(
                "A username is 1 to 64 letters, digits, dots, dashes, underscores or @, "
                "starting with a letter or digit."
            ),
        )
    elif session.scalar(select(func.count()).where(User.username == username)):
        _problem(problems, "username", N_("There is already a user %(name)s."), name=username)
    role = (form.get("role") or "").strip()
    if role not in USER_ROLES:
        _problem(problems, "role", N_("Choose a role: %(roles)s."), roles=", ".join(USER_ROLES))
    person_id = (form.get("person_id") or "").strip() or None
    person = session.get(Person, person_id) if person_id else None
    if person_id and person is None:
        _problem(problems, "person_id", N_("There is no person %(id)s."), id=person_id)
    elif role in ("volunteer", "family") and person is None:
        _problem(
            problems,
            "person_id",
            N_("A volunteer or family user must be linked to their person."),
        )
    elif person is not None and role in ("volunteer", "family") and person.role != role:
        _problem(
            problems,
            "person_id",
            N_("%(name)s is a %(their)s, not a %(role)s."),
            name=person.name,
            their=person.role,
            role=role,
        )
    display = (form.get("display_name") or "").strip()
    if len(display) > 200:
        _problem(
            problems,
            "display_name",
            N_("%(field)s has at most %(n)s characters."),
            field=N_("Name"),
            n=200,
        )
    password = form.get("password") or ""
    _password(password, problems)
    if problems:
        raise AdminError(problems)
    try:
        user = create_user(
            session, username, password, role, now, person_id=person_id, display_name=display
        )
    except UserError as e:  # a rule of monitor.admin.users the checks above did not foresee
        raise AdminError.one("", "%(reason)s", reason=str(e)) from None
    record(
        session,
        actor,
        "user.add",
        username,
        f"role {role}" + (f", person {person_id}" if person_id else ""),
        now,
    )
    return user


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise AdminError.one("", N_("There is no such user."))
    return user


def set_user_active(
    session: Session, user_id: int, active: bool, actor: str, now: datetime, *, own_id: int
) -> User:
    """Deactivate (they are signed out at their next request; their API token stops working)
    or reactivate a user. An admin cannot deactivate themselves, so there is always one."""
    user = _user(session, user_id)
    if not active and user.id == own_id:
        raise AdminError.one("", N_("You cannot deactivate yourself."))
    if user.active != active:
        user.active = active
        record(
            session, actor, "user.activate" if active else "user.deactivate", user.username, "", now
        )
    session.flush()
    return user


def reset_password(
    session: Session, user_id: int, password: str, actor: str, now: datetime
) -> User:
    problems: Problems = {}
    _password(password, problems)
    if problems:
        raise AdminError(problems)
    user = _user(session, user_id)
    user.password_hash = hash_password(password)
    record(session, actor, "user.password", user.username, "password reset", now)
    session.flush()
    return user


def make_api_token(session: Session, user_id: int, actor: str, now: datetime) -> tuple[User, str]:
    """A new API token for the user (the old one stops working); shown once, stored hashed."""
    user = _user(session, user_id)
    if not user.active:
        raise AdminError.one("", N_("%(name)s is deactivated."), name=user.username)
    token = new_api_token(user)
    record(
        session,
        actor,
        "user.token",
        user.username,
        "new API token (the old one stops working)",
        now,
    )
    session.flush()
    return user, token


# -- audit -----------------------------------------------------------------------------


def audit_page(
    session: Session, *, q: str = "", page: int = 1, per_page: int = 100
) -> Page[AuditEntry]:
    """Recent audit lines, newest first; `q` matches actor, action or target."""
    where: list[ColumnElement[bool]] = []
    if q.strip():
        like = q.strip()
        where.append(
            or_(
                AuditEntry.actor.icontains(like, autoescape=True),
                AuditEntry.action.icontains(like, autoescape=True),
                AuditEntry.target.icontains(like, autoescape=True),
            )
        )
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0
    page = max(1, page)
    rows = list(
        session.scalars(
            select(AuditEntry)
            .where(*where)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        )
    )
    return Page(rows, total, page, per_page)
