"""The daily digest for family members who asked for one ("Mum opened the curtains at
07:42, lights on at 18:10, all well"), like the i-POT reports: what the day's sensors showed
and how any alert ended. Queued by a due column (`Person.digest_next_at`) and delivered
through the same delivery log, retries and problems as alerts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from alerts.messages import WHAT, language_or_english
from monitor.clock import Clock
from monitor.db import upsert, won
from monitor.messages import N_, translator
from monitor.models import Alert, Delivery, Event, Person, Resident, Routine, table
from monitor.rules.windows import next_daily, wall_time
from monitor.tables import PEOPLE

# (device kind, value) -> what the digest calls it, first of the day unless marked last;
# English message ids of the catalogue (web/translations), said in the reader's language.
MOMENTS = {
    ("curtain", "open"): N_("curtain opened"),
    ("light", "on"): N_("light on"),
    ("curtain", "closed"): N_("curtain closed"),
    ("door", "open"): N_("door used"),
}
OUTCOMES = {
    "late": N_("done late"),
    "activity_resumed": N_("activity resumed"),
    "fine": N_("all fine"),
    "needed_help": N_("needed help"),
    "emergency": N_("emergency called"),
    "false_alarm_away": N_("was away"),
    "sensor_problem": N_("sensor problem"),
}


class Digester:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def queue_due(self) -> int:
        """Queue today's digest for every consenting family member whose time has come."""
        now = self.clock.now()
        queued = 0
        with self.sessions.begin() as session:
            due = session.scalars(
                select(Person).where(Person.role == "family", Person.digest_next_at <= now)
            ).all()
            for person in due:
                resident = session.get(Resident, person.resident_id or "")
                old = person.digest_next_at
                if resident is None or old is None or person.digest_at is None:
                    continue
                tz = ZoneInfo(resident.timezone)
                moved = won(
                    session.execute(
                        update(PEOPLE)
                        .where(PEOPLE.c.id == person.id, PEOPLE.c.digest_next_at == old)
                        .values(digest_next_at=next_daily(wall_time(person.digest_at), tz, now))
                    )
                )
                if not moved or person.consent is None or person.opted_out_at is not None:
                    continue
                upsert(
                    session,
                    table(Delivery),
                    [
                        {
                            "alert_id": None,
                            "digest_day": old.astimezone(tz).date(),
                            "step": 0,
                            "person_id": person.id,
                            "channel": i,
                            "scheme": url.split("://")[0][:32],
                            "status": "pending",
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                        for i, url in enumerate(person.notify)
                    ],
                    ["digest_day", "person_id", "channel"],
                )
                queued += 1
        return queued


def render_digest(
    session: Session, resident: Resident, day: date, language: str
) -> tuple[str, str]:
    """(title, body) of one resident's day, for their family."""
    gettext = translator(language_or_english(language))
    tz = ZoneInfo(resident.timezone)
    start = datetime.combine(day, time(0), tz)
    end = start + timedelta(days=1)
    events = session.execute(
        select(Event.kind, Event.value, Event.ts)
        .where(Event.resident_id == resident.id, Event.ts >= start, Event.ts < end)
        .order_by(Event.ts)
    ).all()
    parts = []
    for key, label in MOMENTS.items():
        times = [ts for kind, value, ts in events if (kind, value) == key]
        if times:
            when = (times[-1] if key == ("curtain", "closed") else times[0]).astimezone(tz)
            parts.append(f"{gettext(label)} {when:%H:%M}")
    # The separator between the day's moments: Chinese writes a full-width comma.
    lines = [gettext(", ").join(parts) or gettext("No activity recorded today.")]
    day_alerts = session.execute(
        select(Alert, Routine.kind)
        .outerjoin(Routine, Routine.id == Alert.routine_id)
        .where(
            Alert.resident_id == resident.id,
            Alert.raised_at >= start,
            Alert.raised_at < end,
            Alert.kind.in_(("missed_routine", "help", "inactivity")),
        )
        .order_by(Alert.raised_at)
    ).all()
    for alert, routine_kind in day_alerts:
        what_id = WHAT.get(routine_kind or alert.kind)
        what = gettext(what_id) if what_id else alert.kind
        if alert.status == "resolved":
            how_id = OUTCOMES.get(alert.outcome or "")
            how = gettext(how_id) if how_id else alert.outcome or ""
            who = (
                gettext("%(name)s went", name=_name(session, alert.resolved_by)) + ": "
                if alert.resolved_by and alert.resolved_by != "curtainwatch"
                else ""
            )
            note = f" ({alert.note})" if alert.note else ""
            lines.append(f"{alert.raised_at.astimezone(tz):%H:%M} {what}: {who}{how}{note}")
        else:
            open_ = gettext("still being looked into")
            lines.append(f"{alert.raised_at.astimezone(tz):%H:%M} {what}: {open_}")
    if all(a.status == "resolved" for a, _ in day_alerts) and parts:
        lines.append(gettext("All is well."))
    return f"{resident.name} {day:%m-%d}", "\n".join(lines)


def _name(session: Session, person_id: str) -> str:
    person = session.get(Person, person_id)
    return person.name if person else person_id
