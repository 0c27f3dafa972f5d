"""The MQTT edge: subscribes to the sensor topic families with a persistent session and
hands every message to the ingestor. Acknowledges a QoS 1 message only after the ingestor
has committed it, so a crash means redelivery, never loss. Reconnects by itself."""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.config import Settings
from sensors.ingest import Ack, Ingestor

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600  # keep queued readings for a week of downtime


def subscriptions(settings: Settings) -> list[str]:
    """Topic filters, prefixed for an MQTT 5 shared subscription when a group is set."""
    prefix = f"$share/{settings.mqtt_share_group}/" if settings.mqtt_share_group else ""
    return [prefix + t for t in settings.mqtt_topics]


class MqttSource:
    def __init__(self, settings: Settings, ingestor: Ingestor) -> None:
        self.settings = settings
        self.ingestor = ingestor
        self.protocol = mqtt.MQTTv5 if settings.mqtt_protocol == "5" else mqtt.MQTTv311
        self.ack_on_commit = settings.mqtt_ack == "commit"
        self.connected = threading.Event()
        self._connected_at = 0.0
        self.client = self._make_client(self.protocol)

    def _make_client(self, protocol: mqtt.MQTTProtocolVersion) -> mqtt.Client:
        kwargs: dict[str, Any] = {}
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = False
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.settings.mqtt_client_id,
            protocol=protocol,
            manual_ack=self.ack_on_commit,
            **kwargs,
        )
        if self.settings.mqtt_username:
            client.username_pw_set(self.settings.mqtt_username, self.settings.mqtt_password)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect (asynchronously; retried until the broker answers) and start the loop."""
        kwargs: dict[str, Any] = {}
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            kwargs = {"clean_start": False, "properties": props}
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, 30, **kwargs)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect, keeping the session on the broker so readings queue up meanwhile."""
        self.ingestor.wait_idle()
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection: %s", reason)
            return
        log.info(
            "connected to MQTT %s:%s (session present: %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            flags.session_present,
        )
        client.subscribe([(t, 1) for t in subscriptions(self.settings)])
        self._connected_at = time.monotonic()
        self.connected.set()

    def catching_up(self, seconds: float) -> bool:
        """True during the first `seconds` after a (re)connect, while the broker hands over
        the readings that queued for our session while we were away."""
        return self.connected.is_set() and time.monotonic() - self._connected_at < seconds

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("lost the MQTT broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        mid, qos = msg.mid, msg.qos
        if qos == 1 and self.ack_on_commit:
            self.ingestor.submit(msg.topic, bytes(msg.payload), _PubAck(client, mid, self._ack_all))
            return

        def ack() -> None:
            client.ack(mid, qos)

        needs_ack = qos > 0 and self.ack_on_commit
        self.ingestor.submit(msg.topic, bytes(msg.payload), ack if needs_ack else None)

    def _ack_all(self, acks: list[Ack]) -> None:
        """Acknowledge a stored batch: its PUBACKs go out as one write, not one write (and
        one wake-up of the network thread) each. Byte for byte what client.ack() sends."""
        queue_packet = getattr(self.client, "_packet_queue", None)  # paho 2.x internal
        pubacks = [a for a in acks if isinstance(a, _PubAck) and a.client is self.client]
        if queue_packet is None or len(pubacks) != len(acks):
            for a in acks:
                a()
            return
        packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, a.mid) for a in pubacks])
        queue_packet(mqtt.PUBACK, packet, 0, 1)


_PUBACK = struct.Struct("!BBH")  # fixed header, remaining length 2, packet id (MQTT 3.1.1 and 5)


class _PubAck:
    """The ack of one QoS 1 message; `ack_together` lets the ingestor ack a batch at once."""

    __slots__ = ("client", "mid", "ack_together")

    def __init__(self, client: mqtt.Client, mid: int,
                 ack_together: Callable[[list[Ack]], None]) -> None:
        self.client = client
        self.mid = mid
        self.ack_together = ack_together

    def __call__(self) -> None:
        self.client.ack(self.mid, 1)
