"""People (volunteers, staff, family) as staff edit them in the dashboard: reading and
checking the person form (with a precise message per field), their rotas, quiet hours and
notification addresses (shown masked), saving them with their audit line, the family
members and their consent, and the admin list. Plain functions over a Session.

What the community file import also writes is overwritten by the next import: these edits
are for the days between imports, or for communities that keep their data here rather than
in a file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from monitor.admin.forms import ID_PATTERN, AdminError, Problems, problem, text_field
from monitor.audit import describe_changes, record
from monitor.importing.community import LANGUAGES, WEEKDAYS, parse_time
from monitor.importing.community import ROLES as PERSON_ROLES
from monitor.messages import N_
from monitor.models import Delivery, Person, Resident
from monitor.paging import Page, paginate

NOTIFY_MAX = 10
ROTA_ROWS_MAX = 20


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
        problem(problems, key, msgid, n=row, value=value)
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
            problem(problems, f"rota-{i}-days", N_("Rota row %(n)s: choose at least one day."), n=n)
        elif bad_days:
            problem(
                problems,
                f"rota-{i}-days",
                N_('Rota row %(n)s: "%(value)s" is not a weekday.'),
                n=n,
                value=bad_days[0],
            )
        s = _time(start, problems, f"rota-{i}-from", n) if start else None
        e = _time(end, problems, f"rota-{i}-to", n) if end else None
        if not start:
            problem(problems, f"rota-{i}-from", N_("Rota row %(n)s: give the start time."), n=n)
        if not end:
            problem(problems, f"rota-{i}-to", N_("Rota row %(n)s: give the end time."), n=n)
        if s is not None and e is not None and s == e:
            problem(
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
        problem(
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
        problem(
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
            problem(problems, "id", N_("%(field)s is required."), field=N_("Id"))
        elif not ID_PATTERN.match(pid):
            problem(
                problems,
                "id",
                N_(
                    '"%(value)s" cannot be an id: use up to 64 letters, digits, dots, dashes '
                    "or underscores, starting with a letter or digit (like v-li)."
                ),
                value=pid,
            )
        elif session.get(Person, pid) is not None:
            problem(problems, "id", N_("There is already a person %(id)s."), id=pid)
    name = text_field(form, "name", problems, required=True, label=N_("Name"))
    role = (form.get("role") or "").strip()
    if role not in PERSON_ROLES:
        problem(problems, "role", N_("Choose a role: %(roles)s."), roles=", ".join(PERSON_ROLES))
    language = (form.get("language") or "").strip()
    if language not in LANGUAGES:
        problem(
            problems,
            "language",
            N_("Choose a language: %(languages)s."),
            languages=", ".join(LANGUAGES),
        )
    buildings = list(
        dict.fromkeys(b for b in re.split(r"[,\s，]+", form.get("buildings") or "") if b)
    )
    if role == "volunteer" and not buildings:
        problem(
            problems,
            "buildings",
            N_("A volunteer needs the buildings they cover (like 3, 5)."),
        )
    if any(len(b) > 64 for b in buildings):
        problem(problems, "buildings", N_("A building name has at most 64 characters."))
    resident_id: str | None = (form.get("resident_id") or "").strip() or None
    if role == "family":
        if resident_id is None or session.get(Resident, resident_id) is None:
            problem(
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
            problem(
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
            problem(problems, "notify_add", N_("That address is already in the list."))
        else:
            kept.append(url)
    if len(kept) > NOTIFY_MAX:
        problem(problems, "notify_add", N_("At most %(n)s addresses per person."), n=NOTIFY_MAX)
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
        record(session, actor, "person.add", person.id, describe_changes({}, after), now)
    elif before != after:
        record(session, actor, "person.edit", person.id, describe_changes(before, after), now)
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
    query = select(Person).where(*where).order_by(Person.role, Person.name, Person.id)
    return paginate(session, query, page, per_page)
