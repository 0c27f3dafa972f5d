"""`curtainwatch record`: capture live MQTT traffic as an event file that replay reads."""

from __future__ import annotations

import base64
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

from monitor.clock import Clock
from monitor.config import Settings


def event_line(ts: datetime, topic: str, payload: bytes) -> str:
    """One event-file line; the payload as the JSON value it was, else as the string it was."""
    line: dict[str, Any] = {"ts": ts.isoformat(), "topic": topic}
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        # Not text: keep the bytes (additive field) so nothing is lost.
        line["payload"] = ""
        line["payload_b64"] = base64.b64encode(payload).decode()
        return json.dumps(line)
    try:
        line["payload"] = json.loads(text)
    except ValueError:
        line["payload"] = text
    return json.dumps(line, ensure_ascii=False)


class Recorder:
    def __init__(
        self, settings: Settings, clock: Clock, out: IO[str], tz: ZoneInfo, count: int | None = None
    ) -> None:
        self.settings, self.clock, self.out, self.tz, self.count = settings, clock, out, tz, count
        self.written = 0
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"curtainwatch-record-{os.getpid()}",
        )
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()

    def run(self, timeout: float | None = None) -> int:
        self.client.connect(self.settings.mqtt_host, self.settings.mqtt_port, 30)
        self.client.loop_start()
        try:
            self.done.wait(timeout)
        finally:
            self.client.disconnect()
            self.client.loop_stop()
            self.out.flush()
        return self.written

    def _on_connect(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe([(t, 1) for t in self.settings.mqtt_topics])
        self.subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            if self.done.is_set():
                return
            ts = self.clock.now().astimezone(self.tz)
            self.out.write(event_line(ts, msg.topic, bytes(msg.payload)) + "\n")
            self.written += 1
            if self.count is not None and self.written >= self.count:
                self.done.set()


def open_out(path: Path) -> IO[str]:
    return path.open("a", encoding="utf-8", buffering=1)
