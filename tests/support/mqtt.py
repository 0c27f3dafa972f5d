"""MQTT tools for tests and benchmarks: a throwaway Mosquitto broker, a capped publisher,
a collecting subscriber and a polling ``wait_for``.

Owns the broker settings the test suite runs with (:data:`BROKER_DEFAULTS`); keep them
in step with ``bench/mosquitto-bench.conf`` and ``deploy/mosquitto.conf``.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

# The lookup lives with the other external dependencies; re-exported for tests and benches.
from support.requirements import find_mosquitto

__all__ = [
    "BROKER_DEFAULTS",
    "Collector",
    "ConfValue",
    "MosquittoBroker",
    "StartBroker",
    "find_mosquitto",
    "free_port",
    "publish_many",
    "render_conf",
    "wait_for",
]

T = TypeVar("T")

ConfValue = str | int | bool | Sequence[str] | None
"""A mosquitto.conf value: a sequence repeats the directive, ``None`` leaves it out."""

BROKER_DEFAULTS: dict[str, ConfValue] = {
    "allow_anonymous": True,
    "persistence": False,
    # The default (1000) silently drops QoS 0 and QoS 1 messages for a subscriber that
    # is offline or behind. 0 = no count limit; the byte cap bounds memory instead.
    "max_queued_messages": 0,
    "max_queued_bytes": 256 * 1024 * 1024,
    # Outgoing QoS 1/2 messages in flight per client (default 20). For MQTT 5 clients
    # it is also the Receive Maximum the broker announces for incoming QoS 1/2. Twice the
    # ingestor's batch, as deploy/mosquitto.conf (tests/test_infra.py holds them together).
    "max_inflight_messages": 8000,
    "log_type": ["error", "warning", "notice", "information"],
    "log_timestamp_format": "%Y-%m-%dT%H:%M:%S",
}

StartBroker = Callable[..., "MosquittoBroker"]
"""Type of the ``start_broker`` fixture: ``start_broker(**conf_overrides) -> MosquittoBroker``."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller retries if it loses the race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _conf_lines(key: str, value: ConfValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return [f"{key} {'true' if value else 'false'}"]
    if isinstance(value, str | int):
        return [f"{key} {value}"]
    return [f"{key} {item}" for item in value]


def render_conf(
    port: int,
    workdir: Path,
    host: str = "127.0.0.1",
    overrides: Mapping[str, ConfValue] | None = None,
) -> str:
    """The text of a mosquitto.conf for a test broker on ``host:port`` living in ``workdir``.

    ``overrides`` replace entries of :data:`BROKER_DEFAULTS` (``None`` removes one).
    """
    settings: dict[str, ConfValue] = {
        **BROKER_DEFAULTS,
        # Started as root, mosquitto switches to the "mosquitto" user, which cannot
        # write into pytest's 0700 temp dirs; "user" is ignored when not root.
        "user": pwd.getpwuid(os.geteuid()).pw_name,
        "persistence_location": f"{workdir}/",
        **(overrides or {}),
    }
    lines = [
        "# written by tests/support/mqtt.py",
        f"listener {port} {host}",
        f"log_dest file {workdir / 'mosquitto.log'}",
    ]
    for key, value in settings.items():
        lines.extend(_conf_lines(key, value))
    return "\n".join(lines) + "\n"


class MosquittoBroker:
    """One mosquitto process on a free loopback port, configured by :func:`render_conf`."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        overrides: Mapping[str, ConfValue] | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 5.0,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.host = host
        self.port = 0
        self.overrides = dict(overrides or {})
        self.start_timeout = start_timeout
        self.conf_path = workdir / "mosquitto.conf"
        self.log_path = workdir / "mosquitto.log"
        self.output_path = workdir / "mosquitto.out"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<MosquittoBroker {self.host}:{self.port} running={self.running}>"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> MosquittoBroker:
        """Start on a new free port (first start) or on the same port (after stop)."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            port = self.port or free_port(self.host)
            if self._launch(port):
                self.port = port
                return self
        raise RuntimeError(f"mosquitto did not start: {self._diagnostics()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file), SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, nothing is saved."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> MosquittoBroker:
        """Stop and start again on the same port. Sessions survive only with persistence."""
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _launch(self, port: int) -> bool:
        self.conf_path.write_text(render_conf(port, self.workdir, self.host, self.overrides))
        with self.output_path.open("ab") as out:
            proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False  # e.g. port taken meanwhile; the caller tries another
            try:
                with socket.create_connection((self.host, port), timeout=0.2):
                    self._proc = proc
                    return True
            except OSError:
                time.sleep(0.02)
        proc.kill()
        proc.wait()
        return False

    def _diagnostics(self) -> str:
        out = self.output_path.read_text(errors="replace") if self.output_path.exists() else ""
        return f"output: {out[-2000:]!r} log: {self.log_text()[-2000:]!r}"


def publish_many(
    host: str,
    port: int,
    messages: Iterable[tuple[str, bytes | str]],
    qos: int = 1,
    max_inflight: int = 100,
    *,
    client_id: str = "",
    protocol: MQTTProtocolVersion = mqtt.MQTTv311,
    timeout: float = 120.0,
) -> int:
    """Publish ``messages`` and return once the broker acknowledged every one.

    At most ``max_inflight`` messages are unacknowledged at any time (paho refuses
    more than 65,535 with ``MQTT_ERR_QUEUE_SIZE``; an MQTT 5 broker's Receive Maximum
    caps it further). paho rescans every unacknowledged message on each PUBACK, so
    bigger windows are slower: measured here, 100 gives ~8-10k msg/s, 1000 ~4.5k,
    10,000 under 1k. For QoS 0, "acknowledged" means written to the socket.
    Returns the number of messages published; raises ``TimeoutError`` if the whole
    run takes longer than ``timeout`` seconds.
    """
    if not 1 <= max_inflight <= 65535:
        raise ValueError("max_inflight must be between 1 and 65535")
    deadline = time.monotonic() + timeout
    connected = threading.Event()
    connack: dict[str, Any] = {}
    cond = threading.Condition()
    outstanding = 0
    failures: list[str] = []

    def on_connect(
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        connack["reason_code"] = reason_code
        connack["receive_maximum"] = getattr(properties, "ReceiveMaximum", None)
        connected.set()

    def on_publish(
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        nonlocal outstanding
        with cond:
            if reason_code.is_failure:
                failures.append(f"mid {mid}: {reason_code}")
            outstanding -= 1
            cond.notify_all()

    def remaining() -> float:
        return max(0.0, deadline - time.monotonic())

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
    )
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    sent = 0
    try:
        if not connected.wait(remaining()):
            raise TimeoutError(f"no CONNACK from {host}:{port}")
        if connack["reason_code"].is_failure:
            raise ConnectionError(f"{host}:{port} refused the connection: {connack['reason_code']}")
        cap = min(max_inflight, connack["receive_maximum"] or max_inflight)

        def has_room() -> bool:
            return outstanding < cap

        for topic, payload in messages:
            with cond:
                if not cond.wait_for(has_room, remaining()):
                    raise TimeoutError(f"{outstanding} messages unacknowledged after {sent} sent")
                outstanding += 1
            info = client.publish(topic, payload, qos=qos)
            # NO_CONN with QoS > 0: paho keeps the message and resends it on reconnect.
            if info.rc != mqtt.MQTT_ERR_SUCCESS and not (qos and info.rc == mqtt.MQTT_ERR_NO_CONN):
                raise RuntimeError(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
            sent += 1
        with cond:
            if not cond.wait_for(lambda: outstanding <= 0, remaining()):
                raise TimeoutError(f"{outstanding} of {sent} messages never acknowledged")
        if failures:
            raise RuntimeError(f"{len(failures)} publishes rejected, first: {failures[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
    return sent


class Collector:
    """A subscriber that records every message it receives (for assertions).

    ``persistent=True`` asks for a session that outlives the connection: MQTT 3.1.1
    ``clean_session=False``, or MQTT 5 ``clean_start=False`` with a session expiry.
    Reconnecting means creating a new ``Collector`` with the same ``client_id``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str],
        *,
        client_id: str = "",
        qos: int = 1,
        persistent: bool = False,
        protocol: MQTTProtocolVersion = mqtt.MQTTv311,
        session_expiry: int = 3600,
    ) -> None:
        self.host, self.port, self.topics, self.qos = host, port, list(topics), qos
        self.messages: list[mqtt.MQTTMessage] = []
        self.session_present: bool | None = None
        self.subscribed = threading.Event()
        self._connected = threading.Event()
        self._lock = threading.Lock()
        v5 = protocol == mqtt.MQTTv5
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=None if v5 else not persistent,
        )
        self._connect_args: dict[str, Any] = {}
        if v5:
            # paho's default MQTT_CLEAN_START_FIRST_ONLY would wipe the session on the
            # first connect of every new Client object: say False explicitly.
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = session_expiry if persistent else 0
            self._connect_args = {"clean_start": not persistent, "properties": props}
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self, timeout: float = 10.0) -> Collector:
        """Connect, subscribe (if ``topics``) and wait for the SUBACK."""
        self.client.connect(self.host, self.port, **self._connect_args)
        self.client.loop_start()
        wait_for(self._connected.is_set, timeout, message="no CONNACK")
        if self.topics:
            wait_for(self.subscribed.is_set, timeout, message="no SUBACK")
        return self

    def stop(self) -> None:
        """Disconnect cleanly (a persistent session stays on the broker)."""
        self.client.disconnect()
        self.client.loop_stop()

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [bytes(m.payload) for m in self.messages]

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            return
        self.session_present = flags.session_present
        self._connected.set()
        if self.topics:
            client.subscribe([(topic, self.qos) for topic in self.topics])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10,
    interval: float = 0.05,
    message: str | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy and return that value.

    Raises ``AssertionError`` (naming the predicate and its last value) after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(interval)
