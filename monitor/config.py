"""Settings read from the environment, with defaults that work on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///curtainwatch.db"
DEFAULT_TOPICS = (
    "zigbee2mqtt/#",
    "stat/+/POWER",
    "tele/+/STATE",
    "tele/+/LWT",
    "shellies/+/relay/0",
    "+/status/switch:0",
    "curtainwatch/+/event",
)


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_client_id: str = "curtainwatch"
    # MQTT 5 shared subscription group ("" = plain subscriptions, one instance).
    mqtt_share_group: str = ""
    mqtt_topics: tuple[str, ...] = field(default=DEFAULT_TOPICS)
    # "3.1.1" or "5". Both keep a persistent session; 3.1.1 is ~30% faster in paho (no
    # per-message properties) and talks to small brokers; 5 is needed for shared subscriptions.
    mqtt_protocol: str = "3.1.1"
    # "commit": acknowledge a reading only once it is stored (a crash means redelivery);
    # "receipt": acknowledge on arrival (faster on brokers with a small in-flight window).
    mqtt_ack: str = "commit"
    settle_interval_s: float = 30.0
    health_interval_s: float = 300.0
    catch_up_s: float = 2.0
    notify_interval_s: float = 5.0
    # Where links in notifications point (the web app).
    base_url: str = "http://127.0.0.1:8000"
    # Signs the one-tap links in notifications; empty = generated once, kept in the database.
    secret_key: str = ""
    # A claim not resolved in this time reminds the claimer, then staff.
    claim_timeout_s: float = 3600.0
    web_host: str = "127.0.0.1"
    web_port: int = 8000

    def __post_init__(self) -> None:
        if self.mqtt_protocol not in ("5", "3.1.1"):
            raise ValueError(
                f"CURTAINWATCH_MQTT_PROTOCOL must be 5 or 3.1.1, not {self.mqtt_protocol!r}"
            )
        if self.mqtt_ack not in ("commit", "receipt"):
            raise ValueError(
                f"CURTAINWATCH_MQTT_ACK must be commit or receipt, not {self.mqtt_ack!r}"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        topics = e.get("CURTAINWATCH_MQTT_TOPICS")
        return cls(
            database_url=e.get("CURTAINWATCH_DATABASE_URL", DEFAULT_DATABASE_URL),
            mqtt_host=e.get("CURTAINWATCH_MQTT_HOST", "127.0.0.1"),
            mqtt_port=int(e.get("CURTAINWATCH_MQTT_PORT", "1883")),
            mqtt_username=e.get("CURTAINWATCH_MQTT_USERNAME") or None,
            mqtt_password=e.get("CURTAINWATCH_MQTT_PASSWORD") or None,
            mqtt_client_id=e.get("CURTAINWATCH_MQTT_CLIENT_ID", "curtainwatch"),
            mqtt_share_group=e.get("CURTAINWATCH_MQTT_SHARE_GROUP", ""),
            mqtt_topics=tuple(t.strip() for t in topics.split(",")) if topics else DEFAULT_TOPICS,
            mqtt_protocol=e.get("CURTAINWATCH_MQTT_PROTOCOL", "3.1.1"),
            mqtt_ack=e.get("CURTAINWATCH_MQTT_ACK", "commit"),
            settle_interval_s=float(e.get("CURTAINWATCH_SETTLE_INTERVAL", "30")),
            health_interval_s=float(e.get("CURTAINWATCH_HEALTH_INTERVAL", "300")),
            notify_interval_s=float(e.get("CURTAINWATCH_NOTIFY_INTERVAL", "5")),
            base_url=e.get("CURTAINWATCH_BASE_URL", "http://127.0.0.1:8000"),
            secret_key=e.get("CURTAINWATCH_SECRET_KEY", ""),
            claim_timeout_s=float(e.get("CURTAINWATCH_CLAIM_TIMEOUT", "3600")),
            web_host=e.get("CURTAINWATCH_WEB_HOST", "127.0.0.1"),
            web_port=int(e.get("CURTAINWATCH_WEB_PORT", "8000")),
        )
