"""The demo's embedded broker (sensors/embedded_broker.py, amqtt) with curtainwatch's real
MQTT source: QoS 1 readings acknowledged only once stored (PUBACKs sent in batches), a
persistent session that keeps readings while curtainwatch is away, and the clean fall back
from MQTT 5 to 3.1.1, which is all amqtt speaks."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from support.mqtt import MosquittoBroker, publish_many, wait_for
from support.watch import events
from support.world import BUILDING_3, World

import sensors.mqtt
from curtainwatch.runtime import Runtime
from sensors.embedded_broker import EmbeddedBroker


@pytest.fixture
def embedded() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(port=0)
    broker.start()
    yield broker
    broker.stop()


def started(db_url: str, port: int, client_id: str, **overrides: object) -> Runtime:
    settings = {"mqtt_host": "127.0.0.1", "mqtt_port": port, "mqtt_client_id": client_id}
    world = World(BUILDING_3, start="07:00", users=False, settings={**settings, **overrides})
    rt = world.runtime(db_url)
    rt.start(schedule=False)
    assert rt.source is not None and rt.source.connected.wait(10), "no connection"
    return rt


def doors(n: int) -> list[tuple[str, str]]:
    """n readings that each change the door's state (open, closed, open, ...)."""
    return [("zigbee2mqtt/door-301", json.dumps({"contact": i % 2 == 1})) for i in range(n)]


def test_qos1_readings_are_stored_and_acknowledged_in_batches(
    db_url: str, embedded: EmbeddedBroker
) -> None:
    rt = started(db_url, embedded.port, "cw-amqtt")
    try:
        assert publish_many("127.0.0.1", embedded.port, doors(2000), max_inflight=100) == 2000
        wait_for(lambda: rt.ingestor.stats.messages >= 2000, 60, message="all stored")
        assert len(events(rt, device_id="door-301")) == 2000
        # Stored in batches, so acknowledged in batches too (several PUBACKs in one write),
        # and amqtt understood every one of them.
        assert rt.ingestor.stats.batches < 2000
        wait_for(lambda: embedded.unacknowledged("cw-amqtt") == 0, 10, message="all acked")
    finally:
        rt.stop()


def test_readings_sent_while_curtainwatch_is_down_arrive_after_restart(
    db_url: str, embedded: EmbeddedBroker
) -> None:
    rt = started(db_url, embedded.port, "cw-amqtt-restart")
    rt.stop()
    publish_many("127.0.0.1", embedded.port, doors(50))
    rt = started(db_url, embedded.port, "cw-amqtt-restart")
    try:
        wait_for(lambda: rt.ingestor.stats.messages >= 50, 30, message="queued readings")
        assert len(events(rt, device_id="door-301")) == 50
    finally:
        rt.stop()


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sensors.mqtt"]


def test_mqtt5_against_amqtt_falls_back_to_311(
    db_url: str, embedded: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """amqtt misreads an MQTT 5 CONNECT with properties and waits for bytes that never
    come: no CONNACK, so after CONNACK_TIMEOUT_S the source goes on in 3.1.1."""
    caplog.set_level(logging.WARNING, logger="sensors.mqtt")
    rt = started(db_url, embedded.port, "cw-amqtt-v5", mqtt_protocol="5")
    try:
        publish_many("127.0.0.1", embedded.port, [("zigbee2mqtt/card-301", '{"contact": false}')])
        wait_for(lambda: events(rt, device_id="card-301"), 10, message="help card stored")
    finally:
        rt.stop()
    [line] = fallback_lines(caplog)
    assert "does not speak MQTT 5 (no CONNACK" in line and "falling back to MQTT 3.1.1" in line


class Not5:
    """A TCP proxy to a broker that treats an MQTT 5 CONNECT as a 3.1.1-only broker may:
    `refuse` answers CONNACK 0x01 (unacceptable protocol version), `drop` hangs up without
    a word. MQTT 3.1.1 passes through."""

    def __init__(self, port: int, mode: str) -> None:
        self.target, self.mode = port, mode
        self.turned_away = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        first = client.recv(4096)
        # CONNECT: fixed header, then "\0\x04MQTT" and the protocol level.
        level = first[first.find(b"MQTT") + 4] if b"MQTT" in first else 0
        if level == 5:
            self.turned_away += 1
            if self.mode == "refuse":
                client.sendall(b"\x20\x02\x00\x01")
            client.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))
        upstream.sendall(first)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize(
    ("mode", "attempts", "why"),
    [
        ("refuse", 1, "CONNACK: Unsupported protocol version"),
        # Once could be a broker restarting; twice in a row is the protocol.
        ("drop", 2, "closed the connection at CONNECT twice"),
    ],
)
def test_mqtt5_falls_back_when_a_broker_refuses_it(
    db_url: str,
    embedded: EmbeddedBroker,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    attempts: int,
    why: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="sensors.mqtt")
    proxy = Not5(embedded.port, mode)
    try:
        rt = started(db_url, proxy.port, f"cw-amqtt-{mode}", mqtt_protocol="5")
        try:
            publish_many("127.0.0.1", embedded.port, doors(3))
            wait_for(lambda: len(events(rt, device_id="door-301")) == 3, 10)
        finally:
            rt.stop()
    finally:
        proxy.close()
    assert proxy.turned_away == attempts
    [line] = fallback_lines(caplog)
    assert why in line and "falling back to MQTT 3.1.1" in line


def test_a_taken_port_falls_back_to_a_free_one_and_only_loopback(embedded: EmbeddedBroker) -> None:
    second = EmbeddedBroker(port=embedded.port)
    try:
        port = second.start()
        assert port != embedded.port
        assert publish_many("127.0.0.1", port, [("t/x", "1")]) == 1
    finally:
        second.stop()
    with pytest.raises(OSError):
        EmbeddedBroker(port=embedded.port, fallback=False).start()
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")


@pytest.mark.broker
def test_mqtt5_stays_mqtt5_on_a_broker_that_speaks_it(
    db_url: str,
    broker: MosquittoBroker,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sensors.mqtt, "CONNACK_TIMEOUT_S", 0.5)
    caplog.set_level(logging.WARNING, logger="sensors.mqtt")
    rt = started(db_url, broker.port, "cw-mosquitto-v5", mqtt_protocol="5")
    try:
        time.sleep(1.0)  # past the CONNACK timeout: an answered CONNECT is not a fallback
        assert rt.source is not None and rt.source.protocol == paho.MQTTv5
        publish_many(broker.host, broker.port, doors(3))
        wait_for(lambda: len(events(rt, device_id="door-301")) == 3, 10)
    finally:
        rt.stop()
    assert fallback_lines(caplog) == []
