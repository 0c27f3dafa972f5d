"""A running curtainwatch instance, as the pages and the health checks see it.

curtainwatch.runtime.Runtime is the one real instance; web/ and monitor.pages read it only
through this protocol, so neither has to import the package that wires everything
(curtainwatch/ sits above all the rooms). Read-only properties, so that the runtime's more
specific types (an MqttSource, an Ingestor) fit."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import Clock
from monitor.config import Settings


class IngestCounts(Protocol):
    """What this process has ingested so far (for /metrics)."""

    @property
    def messages(self) -> int: ...
    @property
    def readings(self) -> int: ...
    @property
    def events(self) -> int: ...
    @property
    def dead_letters(self) -> int: ...
    @property
    def unknown(self) -> int: ...
    @property
    def ignored(self) -> int: ...
    @property
    def batches(self) -> int: ...


class Ingestion(Protocol):
    @property
    def stats(self) -> IngestCounts: ...

    def reload_registry(self) -> None:
        """Read the device registry again (after staff add, move or remove a device)."""


class Source(Protocol):
    @property
    def connected(self) -> threading.Event: ...


class Scheduler(Protocol):
    @property
    def running(self) -> bool: ...


class Instance(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def sessions(self) -> sessionmaker[Session]: ...
    @property
    def ingestor(self) -> Ingestion: ...
    @property
    def source(self) -> Source | None:
        """The MQTT connection, or None where this process runs no ingestion."""

    @property
    def scheduler(self) -> Scheduler | None:
        """The job scheduler, or None where this process runs no scheduled jobs."""

    @property
    def scheduler_started(self) -> float | None:
        """time.monotonic() when the scheduler started."""

    @property
    def last_settle_round(self) -> float | None:
        """time.monotonic() when the settle job last finished a round."""

    @property
    def last_settle_at(self) -> datetime | None:
        """The same moment on the instance's clock, for people to read."""
