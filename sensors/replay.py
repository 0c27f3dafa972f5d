"""Replay: run a recorded event file (docs/contracts.md, "The event file") through the very
same ingestor, engine and alert code on a simulated clock, ticking as the live scheduler would.
Idle stretches are skipped by jumping to the next tick at which something is due, which
gives the same result as ticking every interval."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.clock import SimulatedClock
from monitor.rules.engine import Engine
from sensors.ingest import Ingestor, Message

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass(frozen=True)
class Line:
    number: int
    ts: datetime
    topic: str
    payload: bytes


class EventFileError(ValueError):
    pass


def read_events(path: Path) -> Iterator[Line | EventFileError]:
    """Lines of an event file; a bad line is yielded as an error naming it, not raised."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield parse_line(number, raw)
            except EventFileError as exc:
                yield exc


def parse_line(number: int, raw: bytes) -> Line:
    where = f"line {number}"
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise EventFileError(f"{where}: not JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str) or "payload" not in obj:
        raise EventFileError(f'{where}: needs "ts", "topic" and "payload"')
    try:
        ts = datetime.fromisoformat(str(obj.get("ts")))
    except ValueError:
        raise EventFileError(f'{where}: "ts" {obj.get("ts")!r} is not an ISO time') from None
    if ts.tzinfo is None:
        raise EventFileError(f'{where}: "ts" {obj["ts"]!r} has no UTC offset')
    payload = obj["payload"]
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return Line(number, ts.astimezone(UTC), obj["topic"], data)


def time_span(path: Path) -> tuple[datetime, datetime]:
    """The first and last event times of a file, in one pass."""
    first = last = None
    for item in read_events(path):
        if isinstance(item, Line):
            first = first or item.ts
            last = item.ts
    if first is None or last is None:
        raise EventFileError(f"{path}: no events")
    return first, last


@dataclass
class ReplayResult:
    lines: int = 0
    bad_lines: int = 0
    ticks: int = 0


class Replay:
    def __init__(
        self,
        ingestor: Ingestor,
        engine: Engine,
        clock: SimulatedClock,
        tick: timedelta = timedelta(seconds=30),
        health_every: timedelta = timedelta(minutes=5),
    ) -> None:
        self.ingestor, self.engine, self.clock = ingestor, engine, clock
        self.tick, self.health_every = tick, health_every
        self.buffer: list[Message] = []
        self.next_health = clock.now() + health_every
        self.next_due: datetime | None = None
        self.due_known = False
        self.result = ReplayResult()

    def run(self, path: Path, until: datetime) -> ReplayResult:
        start = self.clock.now()
        for item in read_events(path):
            if isinstance(item, EventFileError):
                log.warning("%s: %s", path, item)
                self.result.bad_lines += 1
                continue
            if item.ts < start:
                continue
            if item.ts > until:
                break
            self._ticks_through(item.ts)
            self.buffer.append(Message(item.topic, item.payload, item.ts))
            self.result.lines += 1
            if len(self.buffer) >= BATCH:
                self._flush(item.ts)
        self._ticks_through(until)
        self._flush(until)
        return self.result

    def _flush(self, at: datetime) -> None:
        if self.buffer:
            self.clock.set(max(at, self.clock.now()))
            self.ingestor.process(self.buffer)
            self.buffer = []
            self.due_known = False  # new activity may have re-armed an inactivity routine

    def _ticks_through(self, moment: datetime) -> None:
        """Run every scheduler tick at or before `moment` at which something is due."""
        while True:
            if not self.due_known:
                self.next_due, self.due_known = self.engine.next_due(), True
            settle_at = self._tick_at_or_after(self.next_due) if self.next_due else None
            at = min(t for t in (settle_at, self.next_health) if t is not None)
            if at > moment:
                return
            self._flush(at)
            self.clock.set(at)
            self.result.ticks += 1
            if at == self.next_health:
                self.engine.check_devices()
                self.next_health += self.health_every
            if settle_at is not None and at == settle_at:
                self.engine.settle_due()
                self.due_known = False

    def _tick_at_or_after(self, when: datetime) -> datetime:
        step = self.tick.total_seconds()
        epoch = when.timestamp()
        ticks = -(-epoch // step)
        return max(datetime.fromtimestamp(ticks * step, UTC), self.clock.now())
