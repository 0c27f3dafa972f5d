"""The writer thread: messages from the MQTT thread are queued, gathered into batches (as many
as arrive within max_delay, up to batch_size) and stored by `process` in one transaction
each. A batch the database refuses is retried: after a conflict with another instance at
once, after an outage with back-off, and when the database is up but refuses the batch,
message by message, burying the ones it refuses alone. The ingestor (sensors.ingest) says
what storing and burying mean."""

from __future__ import annotations

import logging
import queue
import threading
import time as time_mod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import DBAPIError

from monitor.clock import Clock

log = logging.getLogger("sensors.ingest")

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
    # The broker sent it before (MQTT DUP flag): a QoS 1 redelivery, perhaps already stored.
    redelivered: bool = False


_CONFLICT_RETRIES = 5


class BatchWriter:
    """Queues messages and stores them in batches on a thread of its own."""

    def __init__(self, clock: Clock, batch_size: int, max_delay: float) -> None:
        self.clock = clock
        self.batch_size = batch_size
        self.max_delay = max_delay
        self._queue: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._done = threading.Condition()
        self._submitted = 0
        self._stored = 0

    def process(self, messages: Sequence[Message]) -> None:
        """Store `messages` in one transaction and acknowledge them, or raise."""
        raise NotImplementedError

    def bury(self, m: Message, exc: Exception) -> None:
        """Keep a message the database refused on its own, where staff can see it."""
        raise NotImplementedError

    def database_up(self) -> bool:
        raise NotImplementedError

    def submit(
        self, topic: str, payload: bytes, ack: Ack | None = None, redelivered: bool = False
    ) -> None:
        """Queue one message from the MQTT thread; the writer stores it within max_delay."""
        with self._done:
            self._submitted += 1
        self._queue.put(Message(topic, payload, self.clock.now(), ack, redelivered))

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
        conflicts = 0
        while True:
            try:
                self.process(pending)
                break
            except Exception as exc:
                if transient(exc) and conflicts < _CONFLICT_RETRIES:
                    # Another instance's transaction got in the way (a deadlock, a lock or
                    # serialization timeout): not a bad message, so no isolating it.
                    conflicts += 1
                    log.warning(
                        "batch of %d hit a database conflict, retrying: %s", len(pending), exc
                    )
                    time_mod.sleep(0.05 * conflicts)
                    continue
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
        batch is to blame: store the messages one by one and bury the ones refused alone,
        so one bad payload cannot stop the stream. False if the database is down (then the
        whole batch waits and is retried)."""
        if not self.database_up():
            return False
        for m in pending:
            try:
                self.process([m])
            except Exception as exc:
                self.bury(m, exc)
                acknowledge([m])
        return True


def acknowledge(messages: Sequence[Message]) -> None:
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


def transient(exc: BaseException) -> bool:
    """A failure caused by concurrent transactions, gone on a retry: PostgreSQL deadlock,
    serialization failure or lock timeout; SQLite's busy lock."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in ("40P01", "40001", "55P03"):
        return True
    return "database is locked" in str(exc.orig)
