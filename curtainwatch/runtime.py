"""The composition root: wires database, engine, alert book, ingestor, MQTT source and
scheduler into one running service. It lives in curtainwatch/, above the rooms it wires
(sensors/, monitor/, alerts/), so none of them has to import another against the flow;
web/ sees a Runtime through monitor.instance.Instance."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine as SqlEngine
from sqlalchemy.orm import Session, sessionmaker

from alerts.digest import Digester
from alerts.escalation import Escalator
from alerts.lifecycle import AlertBook
from alerts.notify import Notifier
from monitor.appsettings import secret_key
from monitor.clock import Clock, SystemClock
from monitor.config import Settings
from monitor.db import WAL_SAFETY_NET_PAGES, checkpoint, make_engine, session_factory, upgrade
from monitor.importing.apply import apply_community, import_community
from monitor.importing.load import load_community
from monitor.importing.spreadsheet.plan import community_plan
from monitor.rules.engine import Engine
from monitor.rules.findings import NewEvent
from sensors.ingest import Ingestor
from sensors.mqtt import MqttSource

log = logging.getLogger(__name__)
# APScheduler logs every run of every job at INFO; a tick every 30 s is not news.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
# SQLite only: how often the checkpoint job copies the WAL into the database file, so the
# WAL holds about this long of writes instead of growing (see monitor.db).
CHECKPOINT_INTERVAL_S = 60.0


class Runtime:
    """One curtainwatch instance. `start()` runs ingestion and the scheduled jobs in
    background threads; `stop()` ends them, leaving the MQTT session for the next start."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        on_raised: Callable[..., None] | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        if migrate:
            upgrade(settings.database_url)
        # The checkpoint job (SQLite) does what COMMIT would otherwise do past 1000 pages.
        self.db: SqlEngine = make_engine(
            settings.database_url, wal_autocheckpoint=WAL_SAFETY_NET_PAGES
        )
        self.sessions: sessionmaker[Session] = session_factory(self.db)
        self.alerts = AlertBook(on_raised)
        self.engine = Engine(self.sessions, self.clock, self.alerts)
        self.ingestor = Ingestor(self.sessions, self.clock, self.engine.on_events)
        self.escalator = Escalator(self.sessions, self.clock)
        self.digester = Digester(self.sessions, self.clock)
        self.notifier = Notifier(
            self.sessions,
            self.clock,
            settings.base_url,
            link_key=secret_key(self.sessions, settings.secret_key),
        )
        self.source: MqttSource | None = None
        self.scheduler: BackgroundScheduler | None = None
        self._notifying: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Liveness for /healthz (monitor.pages.health): when the scheduler started and when the
        # settle job last finished a round (one with nothing due counts). Monotonic seconds,
        # as the scheduler ticks in real time even on a simulated clock; last_settle_at is
        # the same moment on the runtime's clock, for people to read.
        self.scheduler_started: float | None = None
        self.last_settle_round: float | None = None
        self.last_settle_at: datetime | None = None
        # What the last checkpoint job saw: SQLite's (busy, WAL frames, frames copied).
        self.last_checkpoint: tuple[int, int, int] | None = None

    def import_community(
        self, text: str, actor: str | None = None, filename: str = ""
    ) -> dict[str, int]:
        """Import a community file's text; returns what was written. With an `actor` (the
        CLI) it goes the way the web's imports go, audited with the counts a preview of it
        would show; without one (tests and the demo setting up their world) it is only
        applied."""
        spec = load_community(text)
        with self.sessions.begin() as session:
            now = self.clock.now()
            if actor is None:
                counts = apply_community(session, spec, now)
            else:
                shown = community_plan(session, spec).counts()
                counts = import_community(session, spec, now, actor, filename, shown)
        self.ingestor.reload_registry()
        return counts

    def start(self, ingest: bool = True, schedule: bool = True) -> None:
        if ingest:
            self.ingestor.start()
            self.source = MqttSource(self.settings, self.ingestor)
            self.source.start()
        if schedule:
            self.scheduler = BackgroundScheduler(
                job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
            )
            self.scheduler.add_job(
                self._job(self.settle),
                "interval",
                seconds=self.settings.settle_interval_s,
                id="settle",
                next_run_time=datetime.now().astimezone(),
            )
            self.scheduler.add_job(
                self._job(self.engine.check_devices),
                "interval",
                seconds=self.settings.health_interval_s,
                id="devices",
                next_run_time=datetime.now().astimezone(),
            )
            if self.db.dialect.name == "sqlite":
                self.scheduler.add_job(
                    self._job(self.checkpoint),
                    "interval",
                    seconds=CHECKPOINT_INTERVAL_S,
                    id="checkpoint",
                )
            self.scheduler.start()
            self.scheduler_started = time.monotonic()
            # Notifications run in a loop of their own that a help card can wake at once,
            # rather than waiting for the next tick of a scheduled job.
            self._notifying = threading.Thread(
                target=self._notify_loop, daemon=True, name="curtainwatch-notify"
            )
            self._notifying.start()
            self.ingestor.after_commit = self._wake_for_help

    def settle(self) -> int:
        """The settle job: after a (re)connect, first store what queued on the broker while
        we were away, so a reading from inside a window is not mistaken for a missed one."""
        if self.source is not None:
            if self.source.catching_up(self.settings.catch_up_s):
                self._settle_round_done()
                return 0
            self.ingestor.wait_idle(timeout=60)
        settled = self.engine.settle_due()
        self._settle_round_done()
        return settled

    def checkpoint(self) -> tuple[int, int, int] | None:
        """The checkpoint job: copy the SQLite WAL into the database file in a thread of its
        own, not inside the COMMIT of whichever settle tick or ingest batch it would land on."""
        self.last_checkpoint = checkpoint(self.db)
        return self.last_checkpoint

    def _settle_round_done(self) -> None:
        self.last_settle_round = time.monotonic()
        self.last_settle_at = self.clock.now()

    def notify(self) -> None:
        """Climb the escalation ladders, queue due digests, then send what is queued."""
        self.escalator.escalate()
        self.digester.queue_due()
        self.notifier.send_due()

    def _notify_loop(self) -> None:
        run = self._job(self.notify)
        while not self._stopping.is_set():
            run()
            self._wake.wait(self.settings.notify_interval_s)
            self._wake.clear()

    def _wake_for_help(self, events: Sequence[NewEvent]) -> None:
        if any(e.kind == "help" and e.value == "help" for e in events):
            self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._notifying:
            self._notifying.join()
            self._notifying = None
        if self.scheduler:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        if self.source:
            self.source.stop()
            self.source = None
        self.ingestor.stop()
        self.db.dispose()

    @staticmethod
    def _job(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception:
                # A failed tick is retried by the next one; the due column remembers the work.
                log.exception("scheduled job %s failed", fn.__name__)

        return run
