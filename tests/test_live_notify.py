"""A help card over a real Mosquitto reaches the volunteer's phone (a local HTTP receiver)
without waiting for a scheduled tick: the ingestor wakes the notifier after committing."""

from __future__ import annotations

import time

import pytest
from support.mqtt import MosquittoBroker, publish_many, wait_for
from support.receiver import Receiver
from support.world import World, community, on_broker, person, resident

pytestmark = pytest.mark.broker


def test_help_card_notifies_the_volunteer_without_waiting_for_a_tick(
    db_url: str, broker: MosquittoBroker, rx: Receiver
) -> None:
    text = community(
        residents=[resident(devices=("help",), routines=None)],
        people=[person("v-li")],
        escalation=None,
        notify=rx.url,
    )
    settings = on_broker(
        broker,
        "cw-live-notify",
        notify_interval_s=600,
        settle_interval_s=600,
        health_interval_s=600,
    )
    rt = World(text, start="10:00", users=False, settings=settings).runtime(db_url)
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
