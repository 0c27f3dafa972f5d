"""The ingestor: payloads in, stored changes out. Keeps an in-memory copy of the device
registry so a reading that changes nothing costs no query; writes each batch of messages in
one transaction (events, device state, dead letters, unknown devices), then lets the engine
react to the new events inside that same transaction.

A batch that fails to commit is not acknowledged: the registry is reloaded from the database
and the batch is tried again, so a database hiccup loses nothing."""

from __future__ import annotations

import logging
import queue
import threading
import time as time_mod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Dialect, Insert, Update, bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.db import upsert
from monitor.engine import BATTERY_SILENCE, NewEvent
from monitor.models import DeadLetter, Device, Event, UnknownDevice, table
from sensors.adapters import parse
from sensors.interpret import interpret
from sensors.readings import IgnoredTopic, PayloadError, Reading

log = logging.getLogger(__name__)

D = table(Device)
# A payload's own time must be near its arrival: readings queued through a long outage
# may be old, but a time from another era is a broken sensor or a typo, not an event.
MAX_EVENT_AGE = timedelta(days=30)
MAX_EVENT_AHEAD = timedelta(hours=1)
Ack = Callable[[], None]
"""Acknowledges one message once it is stored. An ack that also has an `ack_together`
attribute (a function taking a list of such acks) is acknowledged together with the others
of its batch, in one call (sensors.mqtt sends a batch's PUBACKs as one write that way)."""


@dataclass
class Message:
    topic: str
    payload: bytes
    received_at: datetime
    ack: Ack | None = None


@dataclass
class _DeviceState:
    resident_id: str
    kind: str
    light_threshold: float
    state: str | None
    battery: float | None
    online: bool | None
    last_seen: datetime | None


@dataclass
class IngestStats:
    messages: int = 0
    readings: int = 0
    events: int = 0
    dead_letters: int = 0
    ignored: int = 0
    unknown: int = 0
    batches: int = 0


@dataclass
class _Batch:
    events: list[NewEvent] = field(default_factory=list)
    devices: dict[str, _DeviceState] = field(default_factory=dict)
    dead: list[dict[str, object]] = field(default_factory=list)
    unknown: dict[str, dict[str, object]] = field(default_factory=dict)
    readings: int = 0
    ignored: int = 0


OnEvents = Callable[[Session, Sequence[NewEvent]], None]


class Ingestor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        on_events: OnEvents,
        batch_size: int = 2000,
        max_delay: float = 0.05,
        registry_refresh: float = 60.0,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.on_events = on_events
        self.batch_size = batch_size
        self.max_delay = max_delay
        self.registry_refresh = registry_refresh
        self.stats = IngestStats()
        self._registry: dict[str, _DeviceState] = {}
        self._loaded_at = 0.0
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self._submitted = 0
        self._stored = 0
        # Told of each committed batch's new events (the runtime wakes the notifier for help).
        self.after_commit: Callable[[Sequence[NewEvent]], None] | None = None

    # -- registry ------------------------------------------------------------------------

    def reload_registry(self) -> None:
        with self.sessions() as session:
            self._registry = {
                r.id: _DeviceState(
                    r.resident_id,
                    r.kind,
                    r.light_threshold,
                    r.state,
                    r.battery,
                    r.online,
                    r.last_seen,
                )
                for r in session.execute(select(D))
            }
        self._loaded_at = time_mod.monotonic()

    # -- synchronous path (replay, tests, the writer thread) -----------------------------

    def process(self, messages: Sequence[Message]) -> None:
        """Store one batch. Raises if the database refuses it (nothing is acknowledged)."""
        if not messages:
            return
        if not self._registry or time_mod.monotonic() - self._loaded_at > self.registry_refresh:
            self.reload_registry()
        batch = _Batch()
        for m in messages:
            self._read(m, batch)
        try:
            with self.sessions.begin() as session:
                self._write(session, batch)
        except Exception:
            self.reload_registry()  # the in-memory changes of this batch never happened
            raise
        self.stats.messages += len(messages)
        self.stats.readings += batch.readings
        self.stats.ignored += batch.ignored
        self.stats.events += len(batch.events)
        self.stats.dead_letters += len(batch.dead)
        self.stats.unknown += len(batch.unknown)
        self.stats.batches += 1
        _acknowledge(messages)
        if self.after_commit and batch.events:
            self.after_commit(batch.events)

    def _read(self, m: Message, batch: _Batch) -> None:
        try:
            readings = parse(m.topic, m.payload)
        except IgnoredTopic as exc:
            batch.ignored += 1
            log.debug("ignored %s: %s", m.topic, exc)
            return
        except PayloadError as exc:
            self._dead(batch, m, str(exc))
            return
        unknown_here: set[str] = set()
        for reading in readings:
            batch.readings += 1
            device = self._registry.get(reading.device_id)
            if device is None:
                if reading.device_id not in unknown_here:  # one message, counted once
                    unknown_here.add(reading.device_id)
                    self._unknown(batch, m, reading.device_id)
                continue
            try:
                self._apply(reading, device, m.received_at, batch, reading.device_id)
            except PayloadError as exc:
                self._dead(batch, m, str(exc))

    def _apply(
        self,
        reading: Reading,
        device: _DeviceState,
        received_at: datetime,
        batch: _Batch,
        device_id: str,
    ) -> None:
        if reading.ts is not None and not (
            received_at - MAX_EVENT_AGE <= reading.ts <= received_at + MAX_EVENT_AHEAD
        ):
            raise PayloadError(
                f"{device_id}: event time {reading.ts.isoformat()} is too far from its arrival "
                f"at {received_at.isoformat()} (allowed: 30 days before to 1 hour after)"
            )
        batch.devices[device_id] = device
        if device.last_seen is None or received_at > device.last_seen:
            device.last_seen = received_at
        if reading.kind == "availability":
            device.online = bool(reading.value)
            return
        device.online = True  # it just spoke
        if reading.kind == "battery":
            device.battery = float(reading.value)
            return
        value = interpret(device.kind, reading, device.light_threshold)
        if value is None or value == device.state:
            return
        device.state = value
        batch.events.append(
            NewEvent(
                device.resident_id,
                device_id,
                device.kind,
                value,
                reading.ts or received_at,
                received_at,
            )
        )

    def _dead(self, batch: _Batch, m: Message, error: str) -> None:
        log.warning("dead letter on %s: %s", m.topic, error)
        batch.dead.append(
            {"topic": m.topic, "payload": m.payload, "error": error, "received_at": m.received_at}
        )

    def _unknown(self, batch: _Batch, m: Message, device_id: str) -> None:
        seen = batch.unknown.get(device_id)
        if seen is None:
            log.info("unknown device %s on %s", device_id, m.topic)
            seen = batch.unknown[device_id] = {
                "id": device_id[:200],
                "topic": m.topic[:400],
                "first_seen": m.received_at,
                "messages": 0,
            }
        seen["messages"] = int(str(seen["messages"])) + 1
        seen["last_seen"] = m.received_at
        seen["last_payload"] = m.payload[:1000].decode("utf-8", "replace")

    def _write(self, session: Session, batch: _Batch) -> None:
        if batch.events:
            _INSERT_EVENTS.execute(
                session,
                [
                    (e.resident_id, e.device_id, e.kind, e.value, e.ts, e.received_at)
                    for e in batch.events
                ],
            )
        if batch.devices:
            _UPDATE_DEVICES.execute(
                session,
                [
                    (did, d.state, d.last_seen, d.battery, d.online, _alive_until(d))
                    for did, d in batch.devices.items()
                ],
            )
        if batch.dead:
            session.execute(insert(table(DeadLetter)), batch.dead)
        upsert(
            session,
            table(UnknownDevice),
            list(batch.unknown.values()),
            ["id"],
            lambda ex: {
                "last_seen": ex.last_seen,
                "last_payload": ex.last_payload,
                "messages": table(UnknownDevice).c.messages + ex.messages,
            },
        )
        self.on_events(session, batch.events)

    # -- threaded path (live MQTT) --------------------------------------------------------

    def submit(self, topic: str, payload: bytes, ack: Ack | None = None) -> None:
        """Queue one message from the MQTT thread; the writer stores it within max_delay."""
        with self._done:
            self._submitted += 1
        self._queue.put(Message(topic, payload, self.clock.now(), ack))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="curtainwatch-ingest", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Store what is queued, then end the writer thread."""
        if self._thread:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Until everything submitted so far is stored (tests and benchmarks use it)."""
        with self._done:
            return self._done.wait_for(lambda: self._stored >= self._submitted, timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if first is None:
                break
            pending = [first]
            # Gather what arrives within max_delay: one transaction for many messages.
            # Take what is already queued without a timed wait (cheaper per message).
            deadline = time_mod.monotonic() + self.max_delay
            get_nowait, get = self._queue.get_nowait, self._queue.get
            while len(pending) < self.batch_size:
                try:
                    item = get_nowait()
                except queue.Empty:
                    try:
                        item = get(timeout=max(0.0, deadline - time_mod.monotonic()))
                    except queue.Empty:
                        break
                if item is None:
                    stopping = True
                    break
                pending.append(item)
            self._flush(pending)

    def _flush(self, pending: list[Message]) -> None:
        delay = 0.5
        while True:
            try:
                self.process(pending)
                break
            except Exception:
                log.exception("could not store %d messages", len(pending))
                if self._isolate(pending):
                    break
                log.warning("database unavailable; retrying in %.1fs", delay)
                time_mod.sleep(delay)
                delay = min(delay * 2, 30.0)
        with self._done:
            self._stored += len(pending)
            self._done.notify_all()

    def _isolate(self, pending: list[Message]) -> bool:
        """The database refused a batch. If the database itself is up, some message in the
        batch is to blame: store the messages one by one and bury the ones refused alone in
        dead letters, so one bad payload cannot stop the stream. False if the database is
        down (then the whole batch waits and is retried)."""
        if not _database_up(self.sessions):
            return False
        for m in pending:
            try:
                self.process([m])
            except Exception as exc:
                # the topic itself may be what the database cannot take: store it escaped
                topic = m.topic.encode("utf-8", "backslashreplace").decode("utf-8")
                log.error("burying a message on %s the database refused: %s", topic, exc)
                with self.sessions.begin() as session:
                    session.execute(
                        insert(table(DeadLetter)),
                        [
                            {
                                "topic": topic,
                                "payload": m.payload,
                                "received_at": m.received_at,
                                "error": f"{topic}: could not be stored: {str(exc)[:500]}",
                            }
                        ],
                    )
                self.stats.dead_letters += 1
                _acknowledge([m])
        return True


class _ManyRows:
    """A statement run for many rows in one DBAPI executemany, the hot path of every batch.

    Same SQL, same transaction and the same stored values as `session.execute(stmt, rows)`
    (each value but None goes through its type's bind processor for the dialect, as
    SQLAlchemy does; every processor here maps None to None),
    minus SQLAlchemy's per-row parameter assembly, which cost ~10 us a row: a fifth of the
    ingestor's time with 2000-message batches. Dialects with named paramstyles (psycopg) take
    the ordinary path. Rows are tuples in the order of `names` (the statement's bind names).
    """

    def __init__(self, stmt: Insert | Update, names: Sequence[str]) -> None:
        self.stmt = stmt
        self.names = tuple(names)
        self._plans: dict[str, _Plan | None] = {}

    def execute(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        conn = session.connection()
        dialect = conn.dialect
        if dialect.name not in self._plans:
            self._plans[dialect.name] = self._plan(dialect)
        plan = self._plans[dialect.name]
        if plan is None:
            session.execute(self.stmt, [dict(zip(self.names, row, strict=True)) for row in rows])
            return
        sql, columns = plan
        conn.exec_driver_sql(
            sql,
            [
                tuple(
                    [
                        row[i] if proc is None or row[i] is None else proc(row[i])
                        for i, proc in columns
                    ]
                )
                for row in rows
            ],
        )

    def _plan(self, dialect: Dialect) -> _Plan | None:
        """(SQL text, [(index in a row, bind processor)] in the SQL's parameter order), or
        None when the dialect does not take positional parameters."""
        compiled: Any = self.stmt.compile(dialect=dialect)
        order = compiled.positiontup
        if not compiled.positional or order is None or set(order) != set(self.names):
            return None
        columns: list[tuple[int, _Processor | None]] = []
        for name in order:
            impl = compiled.binds[name].type.dialect_impl(dialect)
            columns.append((self.names.index(name), impl.bind_processor(dialect)))
        return compiled.string, columns


_Processor = Callable[[Any], Any]
_Plan = tuple[str, list[tuple[int, _Processor | None]]]
_EVENT_COLUMNS = ("resident_id", "device_id", "kind", "value", "ts", "received_at")


_INSERT_EVENTS = _ManyRows(
    insert(table(Event)).values({c: bindparam(c) for c in _EVENT_COLUMNS}), _EVENT_COLUMNS
)
_UPDATE_DEVICES = _ManyRows(
    update(D)
    .where(D.c.id == bindparam("did"))
    .values(
        state=bindparam("s"),
        last_seen=bindparam("seen"),
        battery=bindparam("b"),
        online=bindparam("on"),
        alive_until=bindparam("until"),
    ),
    ("did", "s", "seen", "b", "on", "until"),
)


def _acknowledge(messages: Sequence[Message]) -> None:
    """Call each message's ack, in order; acks that can go together (`ack_together`) are
    handed over as one list per group instead of one call each."""
    together: dict[Callable[[list[Ack]], None], list[Ack]] = {}
    for m in messages:
        if m.ack is None:
            continue
        group = getattr(m.ack, "ack_together", None)
        if group is None:
            m.ack()
        else:
            together.setdefault(group, []).append(m.ack)
    for ack_all, acks in together.items():
        ack_all(acks)


def _database_up(sessions: sessionmaker[Session]) -> bool:
    try:
        with sessions() as session:
            session.execute(select(1))
        return True
    except Exception:
        return False


def _alive_until(d: _DeviceState) -> datetime | None:
    # Battery devices report at least daily; mains devices are judged by availability only.
    if d.battery is None or d.last_seen is None:
        return None
    return d.last_seen + BATTERY_SILENCE
