"""`curtainwatch serve`: ingestion, the scheduled jobs and the web app in one process (or
`--only` some of them, for processes that share the database), until SIGINT or SIGTERM;
and the log format the service writes."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from typing import Any

from waitress.server import create_server

from curtainwatch.runtime import Runtime
from monitor.config import Settings
from web.app import create_app

log = logging.getLogger("curtainwatch")


def serve(settings: Settings, parts: set[str]) -> int:
    """All three parts in one process, or `--only` some, for separate processes that share
    the database (and, for ingestion, the broker through a shared subscription)."""
    # Only one kind of process should migrate at start; the web-only one never needs to.
    runtime = Runtime(settings, migrate=parts != {"web"})
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    web = web_server(runtime, settings) if "web" in parts else None
    runtime.start(ingest="ingest" in parts, schedule="schedule" in parts)
    log.info(
        "serving %s: MQTT %s:%s, database %s%s",
        ", ".join(sorted(parts)),
        settings.mqtt_host,
        settings.mqtt_port,
        _safe_url(settings.database_url),
        f", web http://{settings.web_host}:{settings.web_port}" if web else "",
    )
    stop.wait()
    log.info("stopping")
    if web is not None:
        web.close()
    runtime.stop()
    return 0


def _safe_url(url: str) -> str:
    """A database URL for the log, without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def web_server(runtime: Runtime, settings: Settings) -> Any:
    """The web app (dashboard, API, phone and family pages) under waitress, a
    production WSGI server, in a background thread."""
    server = create_server(
        create_app(runtime),
        host=settings.web_host,
        port=settings.web_port,
        threads=settings.web_threads,
    )
    # What is loaded by now lives as long as the process. Frozen, the cyclic GC stops
    # walking it again in each full collection, which a 10,000-tile board's allocations
    # set off (bench/board_render.py: ~10 ms of a 10,000-tile page).
    # Collected first, so that startup's garbage is not kept for good.
    gc.collect()
    gc.freeze()
    threading.Thread(target=server.run, name="curtainwatch-web", daemon=True).start()
    return server
