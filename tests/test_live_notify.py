"""A help card over a real Mosquitto reaches the volunteer's phone (a local HTTP receiver)
without waiting for a scheduled tick: the ingestor wakes the notifier after committing."""

from __future__ import annotations

import time

import pytest
from support.mqtt import MosquittoBroker, publish_many, wait_for
from support.receiver import receiver
from support.watch import local

from curtainwatch.runtime import Runtime
from monitor.clock import SimulatedClock
from monitor.config import Settings

pytestmark = pytest.mark.broker


def test_help_card_notifies_the_volunteer_without_waiting_for_a_tick(
    db_url: str, broker: MosquittoBroker
) -> None:
    with receiver() as rx:
        clock = SimulatedClock(local("2026-11-23", "10:00"))
        settings = Settings(
            database_url=db_url,
            mqtt_host=broker.host,
            mqtt_port=broker.port,
            mqtt_client_id="cw-live-notify",
            notify_interval_s=600,
            settle_interval_s=600,
            health_interval_s=600,
        )
        rt = Runtime(settings, clock)
        rt.import_community(f"""
timezone: Asia/Shanghai
residents:
  - {{id: r-301, name: Wang Shulan, building: "3", unit: "301",
      devices: [{{id: card-301, kind: help}}]}}
people:
  - {{id: v-li, name: Li Ming, role: volunteer, buildings: ["3"], language: en,
      notify: ["{rx.url("v-li")}"]}}
""")
        rt.start()
        try:
            assert rt.source is not None and rt.source.connected.wait(10)
            time.sleep(0.3)  # the notify loop's first (empty) round has run
            sent = time.monotonic()
            publish_many(broker.host, broker.port, [("zigbee2mqtt/card-301", '{"contact": false}')])
            [msg] = wait_for(lambda: rx.to("v-li"), timeout=30)
            latency = time.monotonic() - sent
        finally:
            rt.stop()
    print(f"help card -> phone: {latency * 1000:.0f} ms")
    assert msg["title"] == "Wang Shulan (3-301): asked for help (help card)"
    # The regular round is every 600 s: only the wake-up can have sent it this soon.
    assert latency < 600
