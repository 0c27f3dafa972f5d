"""The one source of "now". Everything takes a Clock; nothing calls datetime.now() directly,
so replay and tests can run the very same code on simulated time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A clock that moves only when told to. Thread-safe: ingestion threads read it."""

    def __init__(self, start: datetime) -> None:
        self._now = _aware(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = _aware(when).astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now


def _aware(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError(f"clock time must carry a time zone, got {when.isoformat()}")
    return when.astimezone(UTC)


class AcceleratedClock:
    """Simulated time that runs by itself, `factor` times faster than real time, from
    `start` (the demo: one simulated day in ten minutes is factor 144). Monotonic: a jump of
    the system clock does not move it. Created `paused`, it shows `start` until `resume()`
    (the demo sets up its community at the start time, then lets time run)."""

    def __init__(
        self,
        start: datetime,
        factor: float,
        timer: Callable[[], float] = time.monotonic,
        paused: bool = False,
    ) -> None:
        if not factor > 0:
            raise ValueError(f"an accelerated clock needs a factor above 0, got {factor!r}")
        self.start = _aware(start)
        self.factor = float(factor)
        self._timer = timer  # real seconds, monotonic (tests give their own)
        self._origin: float | None = None if paused else timer()

    def resume(self) -> None:
        """Let a paused clock run from `start`, now (once; later calls change nothing)."""
        if self._origin is None:
            self._origin = self._timer()

    def now(self) -> datetime:
        origin = self._origin  # one read: resume() may run in another thread
        if origin is None:
            return self.start
        return self.start + timedelta(seconds=(self._timer() - origin) * self.factor)

    def real_seconds(self, simulated: timedelta) -> float:
        """How many real seconds `simulated` time takes on this clock."""
        return simulated.total_seconds() / self.factor
