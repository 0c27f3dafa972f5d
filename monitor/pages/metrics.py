"""Prometheus metrics of one curtainwatch instance (web/ops.py serves them at /metrics).

Two sources:
- this process's ingestor counters (``curtainwatch_ingest_*_total``: messages, readings,
  stored events, dead letters, unknown device ids, ignored topics, batches). They start
  at zero with the process and stay zero in a process that runs no ingestion; use rate().
- database totals, read at scrape time by `database_counts` in a constant number of
  statements (one of scalar counts, three grouped COUNTs), whatever the community's size:
  events and dead letters stored, unknown devices, devices (offline, low battery),
  settlements by outcome, alerts by kind and status, notification deliveries by status
  (``gave_up`` = notifications that failed for good). These are exact COUNTs: cheap for a
  community of thousands, but a scan of events and settlements per scrape at city scale
  (tens of millions of rows), where a longer scrape interval is advisable.

Known labels (alert kinds and statuses, outcomes, delivery statuses) are always exported,
at 0 when there are none, so a dashboard's series do not appear from nowhere. If the
database does not answer, ``curtainwatch_database_up`` is 0 and the database totals are left
out rather than failing the scrape.

`MetricsCollector` is a prometheus_client custom collector: register it in a
CollectorRegistry of its own per app (not the global default registry)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.instance import Instance
from monitor.models import (
    Alert,
    DeadLetter,
    Delivery,
    Device,
    Event,
    Settlement,
    UnknownDevice,
)
from monitor.rules.device_health import device_low_battery, device_offline

log = logging.getLogger(__name__)
K = TypeVar("K")

# The contract's alert kinds (docs/contracts.md, replay's alert output) and the lifecycle's
# statuses.
ALERT_KINDS = ("missed_routine", "help", "inactivity", "device_offline", "low_battery", "system")
ALERT_STATUSES = ("open", "claimed", "resolved")
SETTLEMENT_OUTCOMES = ("satisfied", "missed", "away", "unknown")
DELIVERY_STATUSES = ("pending", "sent", "gave_up")


@dataclass
class DatabaseCounts:
    events: int = 0
    dead_letters: int = 0
    unknown_devices: int = 0
    devices: int = 0
    devices_offline: int = 0
    devices_low_battery: int = 0
    settlements: dict[str, int] = field(default_factory=dict)  # outcome -> n
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, status) -> n
    deliveries: dict[str, int] = field(default_factory=dict)  # status -> n


def database_counts(session: Session, now: datetime) -> DatabaseCounts:
    """Totals over the whole database at `now` (devices offline by the engine's rule)."""

    def count(model: type, *where: Any) -> Any:
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    row = session.execute(
        select(
            count(Event),
            count(DeadLetter),
            count(UnknownDevice),
            count(Device),
            count(Device, device_offline(now)),
            count(Device, device_low_battery()),
        )
    ).one()
    events, dead, unknown, devices, offline, low = (int(v or 0) for v in row)
    counts = DatabaseCounts(events, dead, unknown, devices, offline, low)
    counts.settlements = {
        outcome: n
        for outcome, n in session.execute(
            select(Settlement.outcome, func.count()).group_by(Settlement.outcome)
        )
    }
    counts.alerts = {
        (kind, status): n
        for kind, status, n in session.execute(
            select(Alert.kind, Alert.status, func.count()).group_by(Alert.kind, Alert.status)
        )
    }
    counts.deliveries = {
        status: n
        for status, n in session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)
        )
    }
    return counts


class MetricsCollector(Collector):
    """Reads the runtime's counters and the database at every scrape."""

    def __init__(self, runtime: Instance) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        source = self.runtime.source
        if source is not None:
            yield GaugeMetricFamily(
                "curtainwatch_broker_connected",
                "1 while this process is connected to the MQTT broker",
                value=1 if source.connected.is_set() else 0,
            )
        try:
            with self.runtime.sessions() as session:
                counts = database_counts(session, self.runtime.clock.now())
        except Exception:
            log.exception("metrics: the database did not answer")
            yield GaugeMetricFamily(
                "curtainwatch_database_up", "1 if the database answered this scrape", value=0
            )
            return
        yield GaugeMetricFamily(
            "curtainwatch_database_up", "1 if the database answered this scrape", value=1
        )
        yield from _database(counts)

    def _ingest(self) -> Iterator[Metric]:
        stats = self.runtime.ingestor.stats
        for name, value, help_text in (
            ("messages", stats.messages, "MQTT messages this process handled"),
            ("readings", stats.readings, "readings parsed from those messages"),
            ("events", stats.events, "state changes this process stored as events"),
            ("dead_letters", stats.dead_letters, "payloads this process could not use"),
            ("unknown", stats.unknown, "unknown device ids seen (once per batch)"),
            ("ignored", stats.ignored, "messages on topics that carry no readings"),
            ("batches", stats.batches, "transactions the ingestor committed"),
        ):
            yield CounterMetricFamily(
                f"curtainwatch_ingest_{name}", f"Ingestion: {help_text}", value=value
            )


def _database(c: DatabaseCounts) -> Iterator[Metric]:
    for name, value, help_text in (
        ("events_stored", c.events, "Events (state changes) in the database"),
        ("dead_letters_stored", c.dead_letters, "Dead letters in the database"),
        ("unknown_devices", c.unknown_devices, "Device ids seen on MQTT that no resident has"),
        ("devices", c.devices, "Registered devices"),
        ("devices_offline", c.devices_offline, "Registered devices that count as offline"),
        ("devices_low_battery", c.devices_low_battery, "Registered devices with a low battery"),
    ):
        yield GaugeMetricFamily(f"curtainwatch_{name}", help_text, value=value)

    settlements = GaugeMetricFamily(
        "curtainwatch_settlements", "Settled routine windows by outcome", labels=["outcome"]
    )
    for outcome in _known_first(SETTLEMENT_OUTCOMES, c.settlements):
        settlements.add_metric([outcome], c.settlements.get(outcome, 0))
    yield settlements

    alerts = GaugeMetricFamily(
        "curtainwatch_alerts", "Alerts by kind and status", labels=["kind", "status"]
    )
    keys = [(k, s) for k in ALERT_KINDS for s in ALERT_STATUSES]
    for kind, status in _known_first(keys, c.alerts):
        alerts.add_metric([kind, status], c.alerts.get((kind, status), 0))
    yield alerts

    deliveries = GaugeMetricFamily(
        "curtainwatch_notification_deliveries",
        "Notification deliveries by status (gave_up: failed after every retry)",
        labels=["status"],
    )
    for status in _known_first(DELIVERY_STATUSES, c.deliveries):
        deliveries.add_metric([status], c.deliveries.get(status, 0))
    yield deliveries


def _known_first(known: tuple[K, ...] | list[K], found: dict[K, int]) -> list[K]:
    """Every known key (0 if absent), then anything else the database holds."""
    return list(known) + sorted((k for k in found if k not in known), key=str)
