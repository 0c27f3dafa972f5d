"""The ingestor: payloads in, stored changes out. Keeps an in-memory copy of the device
registry so a reading that changes nothing costs no query; writes each batch of messages in
one transaction (events, the day marks they move, device state, dead letters, unknown
devices), then lets the engine react to the new events inside that same transaction. The
writer thread that gathers the batches is sensors.writer; what a batch holds and the
statements that write it are sensors.batch.

A batch that fails to commit is not acknowledged: the registry is reloaded from the database
and the batch is tried again, so a database hiccup loses nothing.

Duplicates and several instances (QoS 1 delivers a message at least once; MQTT 5 shared
subscriptions spread one device's messages over several instances, in no guaranteed order):
- A reading with its own time (curtainwatch/<device>/event with "ts") is an event by
  contract: stored once per (device, ts, kind, value) whatever the order it arrives in. A
  redelivery, to this or another instance, is recognised against the database (a unique
  index backs the check) and counted in `stats.duplicates`. The device's state follows the
  newest such reading by its time, so a late one does not overwrite a newer state.
- A reading without a time (zigbee2mqtt, Tasmota, Shelly) is stored only when it changes the
  device's state. On PostgreSQL that state is read from the database under a row lock in
  the batch's own transaction, so two instances never both store the same change and a
  redelivery of a reading already stored changes nothing, as long as the device did not
  change in between. Its order is the order of arrival: a stale redelivery after a newer
  change (a crashed instance's unacknowledged messages, redelivered at its restart) is taken
  as a new change. SQLite serves one ingesting process, whose in-memory state is exact."""

from __future__ import annotations

import logging
import time as time_mod
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.db import upsert
from monitor.messages import N_, dump
from monitor.models import DeadLetter, UnknownDevice, table
from monitor.rules import day_marks
from monitor.rules.findings import NewEvent
from monitor.tables import DEVICES, EVENTS
from sensors.adapters import parse
from sensors.batch import (
    INSERT_EVENTS,
    LOCK_DEVICES,
    MARK_COLUMNS,
    MERGE_MARKS,
    UPDATE_DEVICES,
    Batch,
    DeviceState,
    IngestStats,
    Key,
    Parsed,
    alive_until,
    state_of,
)
from sensors.interpret import interpret
from sensors.readings import IgnoredTopic, PayloadError, Reading
from sensors.writer import BatchWriter, Message, acknowledge

log = logging.getLogger(__name__)

# A payload's own time must be near its arrival: readings queued through a long outage
# may be old, but a time from another era is a broken sensor or a typo, not an event.
MAX_EVENT_AGE = timedelta(days=30)
MAX_EVENT_AHEAD = timedelta(hours=1)


OnEvents = Callable[[Session, Sequence[NewEvent]], None]

# Messages per transaction at most. Bigger batches write a busy device's row (and re-arm a
# resident's inactivity) once for more of its readings: draining a backlog, 4000 stores
# ~7% more readings a second than 2000 (bench/README.md). The broker's in-flight window is
# twice this (deploy/mosquitto.conf) so the next batch arrives while one commits.
BATCH_SIZE = 4000


class Ingestor(BatchWriter):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        on_events: OnEvents,
        batch_size: int = BATCH_SIZE,
        max_delay: float = 0.05,
        registry_refresh: float = 60.0,
    ) -> None:
        super().__init__(clock, batch_size, max_delay)
        self.sessions = sessions
        self.on_events = on_events
        self.registry_refresh = registry_refresh
        self.stats = IngestStats()
        self._registry: dict[str, DeviceState] = {}
        self._loaded_at = 0.0
        # Told of each committed batch's new events (the runtime wakes the notifier for help).
        self.after_commit: Callable[[Sequence[NewEvent]], None] | None = None

    # -- registry ------------------------------------------------------------------------

    def reload_registry(self) -> None:
        with self.sessions() as session:
            self._registry = {r.id: state_of(r) for r in session.execute(select(DEVICES))}
        self._loaded_at = time_mod.monotonic()

    def _lock_devices(self, session: Session, parsed: Sequence[Parsed]) -> None:
        """Several instances may ingest into this database: lock the batch's device rows
        (in id order, so two batches cannot deadlock) and take their state from the
        database, not from this process's copy. Also learns devices registered since the
        last reload, and forgets deleted ones."""
        ids = sorted(
            {
                r.device_id
                for readings in parsed
                if isinstance(readings, list)
                for r in readings
                if _sendable(r.device_id)
            }
        )
        if not ids:
            return
        found = set()
        for row in session.execute(LOCK_DEVICES, {"ids": ids}):
            self._registry[row.id] = state_of(row)
            found.add(row.id)
        for gone in set(ids) - found:
            self._registry.pop(gone, None)

    def _find_stored(self, session: Session, parsed: Sequence[tuple[Message, Parsed]]) -> set[Key]:
        """The stored events of the batch's timestamped readings' (device, time) pairs: QoS 1
        redeliveries, or a publisher's retry. One query, only for batches that carry such
        readings; `_apply` matches each reading's full key against them."""
        wanted = {
            (r.device_id, r.ts.astimezone(UTC))
            for m, readings in parsed
            if isinstance(readings, list)
            for r in readings
            # Registered devices only (no stray id, NUL and all, goes to the database), and
            # plausible times (others are dead letters, and may not even convert to UTC).
            if r.ts is not None
            and r.kind == "event"
            and r.device_id in self._registry
            and _near(r.ts, m.received_at)
        }
        if not wanted:
            return set()
        rows = session.execute(
            select(EVENTS.c.device_id, EVENTS.c.ts, EVENTS.c.kind, EVENTS.c.value).where(
                EVENTS.c.stamped, tuple_(EVENTS.c.device_id, EVENTS.c.ts).in_(wanted)
            )
        )
        return {(d, ts, k, v) for d, ts, k, v in rows}

    # -- synchronous path (replay, tests, the writer thread) -----------------------------

    def process(self, messages: Sequence[Message]) -> None:
        """Store one batch. Raises if the database refuses it (nothing is acknowledged)."""
        if not messages:
            return
        if not self._registry or time_mod.monotonic() - self._loaded_at > self.registry_refresh:
            self.reload_registry()
        batch = Batch()
        parsed = [(m, _parse(m)) for m in messages]  # pure: outside the transaction
        try:
            with self.sessions.begin() as session:
                if session.get_bind().dialect.name != "sqlite":
                    self._lock_devices(session, [p for _, p in parsed])
                batch.stored_keys = self._find_stored(session, parsed)
                for m, readings in parsed:
                    self._read(m, readings, batch)
                self._write(session, batch)
        except Exception:
            self.reload_registry()  # the in-memory changes of this batch never happened
            raise
        redelivered = sum(m.redelivered for m in messages)
        self.stats.messages += len(messages)
        self.stats.readings += batch.readings
        self.stats.ignored += batch.ignored
        self.stats.events += len(batch.events)
        self.stats.dead_letters += len(batch.dead)
        self.stats.unknown += len(batch.unknown)
        self.stats.batches += 1
        self.stats.redelivered += redelivered
        self.stats.duplicates += batch.duplicates
        if redelivered or batch.duplicates:
            log.info(
                "batch of %d messages: %d redelivered by the broker; "
                "%d readings already stored, not stored again",
                len(messages),
                redelivered,
                batch.duplicates,
            )
        acknowledge(messages)
        if self.after_commit and batch.events:
            self.after_commit(batch.events)

    def _read(self, m: Message, readings: Parsed, batch: Batch) -> None:
        if readings is None:
            batch.ignored += 1
            return
        if isinstance(readings, PayloadError):
            self._dead(batch, m, readings)
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
                self._dead(batch, m, exc)

    def _apply(
        self,
        reading: Reading,
        device: DeviceState,
        received_at: datetime,
        batch: Batch,
        device_id: str,
    ) -> None:
        if reading.ts is not None and not _near(reading.ts, received_at):
            raise PayloadError.on(
                device_id,
                PayloadError(
                    N_(
                        "event time %(ts)s is too far from its arrival at %(arrival)s "
                        "(allowed: 30 days before to 1 hour after)"
                    ),
                    ts=reading.ts.isoformat(),
                    arrival=received_at.isoformat(),
                ),
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
        if value is None:
            return
        if reading.ts is not None and reading.kind == "event":
            # An event by contract, with its own time: stored once, in whatever order the
            # broker delivers it; the state follows the newest by time.
            key = (device_id, reading.ts.astimezone(UTC), device.kind, value)
            if key in batch.stored_keys:
                batch.duplicates += 1
                return
            batch.stored_keys.add(key)
            if device.state_at is None or reading.ts >= device.state_at:
                device.state, device.state_at = value, reading.ts
                batch.moved.add(device_id)
            batch.events.append(
                NewEvent(device.resident_id, device_id, device.kind, value, reading.ts, received_at)
            )
            batch.stamped.append(True)
            return
        if value == device.state:
            return
        device.state, device.state_at = value, received_at
        batch.moved.add(device_id)
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
        batch.stamped.append(False)

    def _dead(self, batch: Batch, m: Message, error: PayloadError) -> None:
        log.warning("dead letter on %s: %s", m.topic, error)
        batch.dead.append(
            {
                "topic": storable(m.topic),
                "payload": m.payload,
                "error": storable(str(error)),
                "error_message": storable(dump(error.what)),
                "received_at": m.received_at,
            }
        )

    def _unknown(self, batch: Batch, m: Message, device_id: str) -> None:
        # Keyed by the id as stored: one row per key in the batch's upsert (PostgreSQL
        # refuses to update the same row twice in one statement).
        key = storable(device_id)[:200]
        seen = batch.unknown.get(key)
        if seen is None:
            log.info("unknown device %s on %s", device_id, m.topic)
            seen = batch.unknown[key] = {
                "id": key,
                "topic": storable(m.topic)[:400],
                "first_seen": m.received_at,
                "messages": 0,
            }
        seen["messages"] = int(str(seen["messages"])) + 1
        seen["last_seen"] = m.received_at
        seen["last_payload"] = storable(m.payload[:1000].decode("utf-8", "replace"))

    def _write(self, session: Session, batch: Batch) -> None:
        if batch.events:
            INSERT_EVENTS.execute(
                session,
                [
                    (e.resident_id, e.device_id, e.kind, e.value, e.ts, e.received_at, stamped)
                    for e, stamped in zip(batch.events, batch.stamped, strict=True)
                ],
            )
            if any((e.kind, e.value) in day_marks.FEEDS for e in batch.events):
                # The zone read here, not cached: an import may change it at any time.
                marks = day_marks.marks_of(batch.events, day_marks.community_zone(session))
                # In key order, as the device locks: two instances' batches that touch the
                # same residents' marks take their row locks in the same order (PostgreSQL).
                marks.sort(key=lambda m: (m["resident_id"], m["day"]))
                MERGE_MARKS.execute(session, [tuple(m[c] for c in MARK_COLUMNS) for m in marks])
        if batch.devices:
            moved = batch.moved
            UPDATE_DEVICES.execute(
                session,
                [
                    (
                        did,
                        d.state,
                        # NULL keeps the stored time: no datetime to bind for most devices
                        d.state_at if did in moved else None,
                        d.last_seen,
                        d.battery,
                        d.online,
                        alive_until(d),
                    )
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

    # -- what the writer thread (sensors.writer) calls -----------------------------------

    def bury(self, m: Message, exc: Exception) -> None:
        # the topic itself may be what the database cannot take: store it escaped
        topic = storable(m.topic.encode("utf-8", "backslashreplace").decode("utf-8"))
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

    def database_up(self) -> bool:
        try:
            with self.sessions() as session:
                session.execute(select(1))
            return True
        except Exception:
            return False


def storable(text: str) -> str:
    """`text` as every supported database can hold it: PostgreSQL text cannot contain NUL,
    so U+0000 is stored as the four characters \\x00 (on SQLite too, so both agree)."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def _near(ts: datetime, received_at: datetime) -> bool:
    """Is a payload's own time plausible for a reading that arrived at `received_at`?"""
    return received_at - MAX_EVENT_AGE <= ts <= received_at + MAX_EVENT_AHEAD


def _parse(m: Message) -> Parsed:
    try:
        return parse(m.topic, m.payload)
    except IgnoredTopic as exc:
        log.debug("ignored %s: %s", m.topic, exc)
        return None
    except PayloadError as exc:
        # Kept until the batch commits: drop the traceback and the frames it holds.
        return exc.with_traceback(None)


def _sendable(device_id: str) -> bool:
    """Can this id be a query parameter at all? (PostgreSQL text holds no NUL, and no
    database takes a lone surrogate; such an id is never a registered device.)"""
    if "\x00" in device_id:
        return False
    try:
        device_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
