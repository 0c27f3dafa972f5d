"""The data model: residents, their devices and routines, the events that prove a routine,
settled windows, alerts and the payloads we could not read. Times are stored as UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored naive UTC so SQLite and PostgreSQL
    compare the same way."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; times must carry a zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Community(Base):
    """The single community this database watches: its time zone and escalation ladder."""

    __tablename__ = "community"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    escalation: Mapped[list[Any]] = mapped_column(default=list)
    imported_at: Mapped[datetime]


class Resident(Base):
    __tablename__ = "residents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    building: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(64))
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Contact details for staff (community file fields phone, contact, notes).
    phone: Mapped[str] = mapped_column(String(64), default="", server_default="")
    contact: Mapped[str] = mapped_column(Text, default="", server_default="")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")


class Device(Base):
    """A sensor we know. `state` is the last interpreted value (open/closed/on/...), so only
    changes become events; `alive_until` is when silence would make it count as offline."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    light_threshold: Mapped[float] = mapped_column(Float, default=30.0)
    state: Mapped[str | None] = mapped_column(String(16))
    # The time of the reading that set `state`, so a late one cannot overwrite a newer state.
    state_at: Mapped[datetime | None]
    last_seen: Mapped[datetime | None]
    battery: Mapped[float | None] = mapped_column(Float)
    online: Mapped[bool | None] = mapped_column(Boolean)
    alive_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # When it last moved to another resident: its changes before then were at the old home.
    moved_at: Mapped[datetime | None]


class UnknownDevice(Base):
    """A device id seen on MQTT that no resident has; kept so staff can assign it."""

    __tablename__ = "unknown_devices"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(400))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    messages: Mapped[int] = mapped_column(Integer, default=0)
    last_payload: Mapped[str] = mapped_column(Text, default="")


class Event(Base):
    """A change of state of a resident's device: curtain opened, door opened, light on,
    card flipped."""

    __tablename__ = "events"
    # By resident for timelines and routines (with kind and value, so a routine's "any
    # matching event in the window?" reads only the index); by time alone for "today"
    # across everyone.
    # A reading that carries its own time is the same reading however often QoS 1 delivers
    # it, to whichever instance: stored once (sensors.ingest).
    __table_args__ = (
        Index("ix_events_resident_probe", "resident_id", "ts", "kind", "value"),
        Index("ix_events_ts", "ts"),
        Index(
            "uq_events_stamped",
            "device_id",
            "ts",
            "kind",
            "value",
            unique=True,
            sqlite_where=text("stamped"),
            postgresql_where=text("stamped"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime]
    received_at: Mapped[datetime]
    # `ts` came from the payload (curtainwatch/<device>/event "ts"), not from our clock.
    stamped: Mapped[bool] = mapped_column(Boolean, server_default=false())


class DayMark(Base):
    """A resident's day at a glance, for the board: the first curtain open, last curtain close
    and first light on (UTC) of each local day of the community's zone.
    Written with the events themselves (sensors.ingest, monitor.rules.day_marks), as earliest /
    latest, so order and repeats do not matter: the board reads a row per resident instead
    of the day's events."""

    __tablename__ = "day_marks"
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    curtain_opened: Mapped[datetime | None]
    curtain_closed: Mapped[datetime | None]
    light_on: Mapped[datetime | None]


class AwayPeriod(Base):
    __tablename__ = "away_periods"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)


class Schedule(Base):
    """The current window of the routines that share a timing (zone, start, end, grace) and
    the same window date: `next_due_at` is when it is settled. A settle tick writes a
    settlement per routine but moves the schedule, one row, to its next window, so the
    routines themselves are not rewritten every day. Routines with the same timing whose
    next windows differ (one added after today's window was settled, say) get a schedule
    each; the engine merges them when they meet."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timezone: Mapped[str] = mapped_column(String(64))
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    grace_s: Mapped[int] = mapped_column(Integer, default=0)
    window_date: Mapped[date] = mapped_column(Date)
    window_start_at: Mapped[datetime]
    next_due_at: Mapped[datetime] = mapped_column(index=True)


class Routine(Base):
    """An expectation about a resident's day. A windowed routine (curtain, light, door,
    activity) follows its `schedule`, which holds its current window; an inactivity
    routine is due `own_next_due_at` (`hours` after the last activity, to the minute:
    windows.inactivity_due) on local date `own_window_date`. `match_kind`/`match_value` say
    which event satisfies it (NULL = any). A paused or removed routine has neither."""

    __tablename__ = "routines"
    __table_args__ = (UniqueConstraint("resident_id", "slot"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"))
    kind: Mapped[str] = mapped_column(String(16))
    slot: Mapped[str] = mapped_column(String(64))
    start: Mapped[str | None] = mapped_column(String(5))
    end: Mapped[str | None] = mapped_column(String(5))
    grace_s: Mapped[int] = mapped_column(Integer, default=0)
    hours: Mapped[float | None] = mapped_column(Float)
    timezone: Mapped[str] = mapped_column(String(64))
    match_kind: Mapped[str | None] = mapped_column(String(16))
    match_value: Mapped[str | None] = mapped_column(String(16))
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id"), index=True)
    own_window_date: Mapped[date | None] = mapped_column("window_date", Date)
    own_next_due_at: Mapped[datetime | None] = mapped_column("next_due_at", index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    schedule: Mapped[Schedule | None] = relationship(lazy="joined")

    # The current window, wherever it is kept.
    @property
    def window_date(self) -> date | None:
        return self.schedule.window_date if self.schedule else self.own_window_date

    @property
    def window_start_at(self) -> datetime | None:
        return self.schedule.window_start_at if self.schedule else None

    @property
    def next_due_at(self) -> datetime | None:
        return self.schedule.next_due_at if self.schedule else self.own_next_due_at

    def pause(self) -> None:
        """Never due again until rescheduled (monitor.importing.apply), so never settled."""
        for key, value in PAUSED_ROUTINE.items():
            setattr(self, key, value)
        self.schedule = None


# A paused routine, as values for update(Routine) (the same as Routine.pause()).
PAUSED_ROUTINE: dict[str, Any] = {
    "active": False,
    "schedule_id": None,
    "own_window_date": None,
    "own_next_due_at": None,
}


class Settlement(Base):
    """One settled window. The unique key makes settling the same window twice impossible.

    The key, the table's only index, leads with the window's local date. A settle tick
    writes one row per due routine, nearly all of one date, so its entries land together at
    the end of the index; an index led by routine or resident would take one on nearly
    every page, a cost that grows with the months of history. Readers ask for a date's
    windows of some routines anyway (board, resident page, importer)."""

    __tablename__ = "settlements"
    __table_args__ = (
        Index("uq_settlements_window", "window_date", "routine_id", "due_at", unique=True),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    routine_id: Mapped[int] = mapped_column(ForeignKey("routines.id"))
    resident_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    window_date: Mapped[date] = mapped_column(Date)
    due_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # satisfied | missed | away | unknown
    settled_at: Mapped[datetime]


OPEN_STATUSES = ("open", "claimed")


class Alert(Base):
    """Something a person should look at. One open alert per (resident, cause): a repeat
    bumps `repeats` instead of making another."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_cause",
            "resident_id",
            "cause",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resident_id: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(200))
    routine_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str] = mapped_column(String(300))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    # The same as JSON [message id, {parameters}] (monitor.messages), for pages to translate.
    detail_message: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None]
    raised_at: Mapped[datetime]
    last_raised_at: Mapped[datetime]
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    resolved_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(64))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    # A note the engine wrote on resolving, as JSON [message id, {parameters}].
    note_message: Mapped[str | None] = mapped_column(Text)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    next_escalation_at: Mapped[datetime | None] = mapped_column(index=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]
    # Set when a notification could not be delivered after every retry; shown to staff.
    delivery_problem: Mapped[str | None] = mapped_column(Text)


class Delivery(Base):
    """One notification of one alert, at one escalation step, to one person over one of
    their channels (index into Person.notify; the URL itself holds secrets and stays there).
    The unique key means one message per alert per step per channel, however often the
    escalation job runs."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "step", "person_id", "channel"),
        UniqueConstraint("digest_day", "person_id", "channel", name="uq_deliveries_digest"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Either an alert's notification or a family member's daily digest for `digest_day`.
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    digest_day: Mapped[date | None] = mapped_column(Date)
    step: Mapped[int] = mapped_column(Integer)
    person_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[int] = mapped_column(Integer)
    scheme: Mapped[str] = mapped_column(String(32))  # ntfy, tgram, mailto... for display
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|gave_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class DeadLetter(Base):
    """A payload we could not use, with the reason, so nothing is lost silently."""

    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    # The same as JSON [message id, {parameters}] (monitor.messages), for pages to translate.
    error_message: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(index=True)


class Person(Base):
    """Volunteers, staff and family from the community file (used by the alert flow)."""

    __tablename__ = "people"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    buildings: Mapped[list[Any]] = mapped_column(default=list)
    resident_id: Mapped[str | None] = mapped_column(String(64))
    consent: Mapped[date | None] = mapped_column(Date)
    notify: Mapped[list[Any]] = mapped_column(default=list)
    # [{"days": ["mon", ...], "from": "HH:MM", "to": "HH:MM"}]; empty = always on duty.
    rota: Mapped[list[Any]] = mapped_column(default=list)
    # {"from": "22:00", "to": "07:00"}: hold non-urgent messages until it ends.
    quiet_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Family: local time of the daily "all is well" digest, and when the next one is due.
    digest_at: Mapped[str | None] = mapped_column(String(5))
    digest_next_at: Mapped[datetime | None] = mapped_column(index=True)
    consented_at: Mapped[datetime | None]
    consent_version: Mapped[str | None] = mapped_column(String(32))
    opted_out_at: Mapped[datetime | None]


class Silence(Base):
    """Staff-set quiet for a building or one resident (e.g. a planned power cut): alerts
    are still recorded but nobody is notified while it lasts."""

    __tablename__ = "silences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building: Mapped[str | None] = mapped_column(String(64))
    resident_id: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]


class AppSetting(Base):
    """Small pieces of state every instance must share, e.g. the key that signs links."""

    __tablename__ = "app_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


ROLES = ("admin", "staff", "volunteer", "family")


class User(Base):
    """Someone who signs in to the web interface. `role` decides what they see (see
    monitor.access): a volunteer or family member is tied to their Person (buildings, or
    the one relative); staff and admins may be. `api_token_hash` is a SHA-256 of the API
    token, which is shown once when made."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(8))  # None: from the browser
    api_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class AlertNote(Base):
    """A note someone added to an alert (what they did, who they called), oldest first."""

    __tablename__ = "alert_notes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class AuditEntry(Base):
    """Who changed what through the web interface (residents, routines, devices, people,
    users, imports), so a community office can answer "who changed her window?"."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


def table(model: type[Base]) -> Table:
    """The Core table of a model, typed as one (for set-based statements)."""
    return cast(Table, model.__table__)
