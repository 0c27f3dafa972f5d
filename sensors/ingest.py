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
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.db import upsert
from monitor.engine import BATTERY_SILENCE, NewEvent
from monitor.models import DeadLetter, Device, Event, UnknownDevice
from sensors.adapters import parse
from sensors.interpret import interpret
from sensors.readings import IgnoredTopic, PayloadError, Reading

log = logging.getLogger(__name__)

D = Device.__table__
Ack = Callable[[], None]


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


OnEvents = Callable[[Session, Sequence[NewEvent]], None]


class Ingestor:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, on_events: OnEvents,
                 batch_size: int = 2000, max_delay: float = 0.05,
                 registry_refresh: float = 60.0) -> None:
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

    # -- registry ------------------------------------------------------------------------

    def reload_registry(self) -> None:
        with self.sessions() as session:
            self._registry = {
                r.id: _DeviceState(r.resident_id, r.kind, r.light_threshold, r.state, r.battery,
                                   r.online, r.last_seen)
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
        self.stats.events += len(batch.events)
        self.stats.dead_letters += len(batch.dead)
        self.stats.unknown += len(batch.unknown)
        self.stats.batches += 1
        for m in messages:
            if m.ack:
                m.ack()

    def _read(self, m: Message, batch: _Batch) -> None:
        try:
            readings = parse(m.topic, m.payload)
        except IgnoredTopic as exc:
            self.stats.ignored += 1
            log.debug("ignored %s: %s", m.topic, exc)
            return
        except PayloadError as exc:
            self._dead(batch, m, str(exc))
            return
        for reading in readings:
            self.stats.readings += 1
            device = self._registry.get(reading.device_id)
            if device is None:
                if reading.kind == "seen":  # every message ends with one: count it once
                    self._unknown(batch, m, reading.device_id)
                continue
            try:
                self._apply(reading, device, m.received_at, batch, reading.device_id)
            except PayloadError as exc:
                self._dead(batch, m, str(exc))

    def _apply(self, reading: Reading, device: _DeviceState, received_at: datetime,
               batch: _Batch, device_id: str) -> None:
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
        batch.events.append(NewEvent(device.resident_id, device_id, device.kind, value,
                                     reading.ts or received_at, received_at))

    def _dead(self, batch: _Batch, m: Message, error: str) -> None:
        log.warning("dead letter on %s: %s", m.topic, error)
        batch.dead.append({"topic": m.topic, "payload": m.payload, "error": error,
                           "received_at": m.received_at})

    def _unknown(self, batch: _Batch, m: Message, device_id: str) -> None:
        seen = batch.unknown.get(device_id)
        if seen is None:
            log.info("unknown device %s on %s", device_id, m.topic)
            seen = batch.unknown[device_id] = {
                "id": device_id[:200], "topic": m.topic[:400], "first_seen": m.received_at,
                "messages": 0}
        seen["messages"] = int(str(seen["messages"])) + 1
        seen["last_seen"] = m.received_at
        seen["last_payload"] = m.payload[:1000].decode("utf-8", "replace")

    def _write(self, session: Session, batch: _Batch) -> None:
        if batch.events:
            session.execute(insert(Event.__table__), [
                {"resident_id": e.resident_id, "device_id": e.device_id, "kind": e.kind,
                 "value": e.value, "ts": e.ts, "received_at": e.received_at}
                for e in batch.events])
        if batch.devices:
            session.execute(
                update(D).where(D.c.id == bindparam("did")).values(
                    state=bindparam("s"), last_seen=bindparam("seen"), battery=bindparam("b"),
                    online=bindparam("on"), alive_until=bindparam("until")),
                [{"did": did, "s": d.state, "seen": d.last_seen, "b": d.battery, "on": d.online,
                  "until": _alive_until(d)} for did, d in batch.devices.items()])
        if batch.dead:
            session.execute(insert(DeadLetter.__table__), batch.dead)
        upsert(session, UnknownDevice.__table__, list(batch.unknown.values()), ["id"],
               lambda ex: {"last_seen": ex.last_seen, "last_payload": ex.last_payload,
                           "messages": UnknownDevice.__table__.c.messages + ex.messages})
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
            deadline = time_mod.monotonic() + self.max_delay
            while len(pending) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time_mod.monotonic()))
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
                log.exception("could not store %d messages; retrying in %.1fs", len(pending), delay)
                time_mod.sleep(delay)
                delay = min(delay * 2, 30.0)
        with self._done:
            self._stored += len(pending)
            self._done.notify_all()


def _alive_until(d: _DeviceState) -> datetime | None:
    # Battery devices report at least daily; mains devices are judged by availability only.
    if d.battery is None or d.last_seen is None:
        return None
    return d.last_seen + BATTERY_SILENCE
