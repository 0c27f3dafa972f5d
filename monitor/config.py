"""Settings: defaults that work on a laptop, overridden by an optional TOML file, overridden
in turn by environment variables. Each setting is declared once, below, with its variable
name and a one-line help; the README's configuration table lists the same (a test checks).

TOML keys are the variable names without the prefix, in lower case:
``database_url = "postgresql+psycopg://..."``, ``settle_interval = 30``. The file is
``--config FILE`` on the command line or ``CURTAINWATCH_CONFIG``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PREFIX = "CURTAINWATCH_"
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


def _opt(default: Any, env: str | None, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    database_url: str = _opt(
        DEFAULT_DATABASE_URL,
        "DATABASE_URL",
        "SQLAlchemy URL: sqlite:///file.db or postgresql+psycopg://user:pw@host/db",
    )
    mqtt_host: str = _opt("127.0.0.1", "MQTT_HOST", "MQTT broker host")
    mqtt_port: int = _opt(1883, "MQTT_PORT", "MQTT broker port")
    mqtt_username: str | None = _opt(None, "MQTT_USERNAME", "MQTT user (empty: anonymous)")
    mqtt_password: str | None = _opt(None, "MQTT_PASSWORD", "MQTT password")
    mqtt_client_id: str = _opt(
        "curtainwatch", "MQTT_CLIENT_ID", "client id of the persistent session; unique per instance"
    )
    mqtt_share_group: str = _opt(
        "",
        "MQTT_SHARE_GROUP",
        "MQTT 5 shared subscription group for several instances (empty: one instance)",
    )
    mqtt_topics: tuple[str, ...] = _opt(
        DEFAULT_TOPICS, "MQTT_TOPICS", "comma-separated topic filters to subscribe to"
    )
    # 3.1.1 is ~30% faster in paho (no per-message properties) and talks to small brokers;
    # 5 is needed for shared subscriptions. Both keep a persistent session.
    mqtt_protocol: str = _opt("3.1.1", "MQTT_PROTOCOL", "3.1.1 or 5 (5 for shared subscriptions)")
    # "commit": acknowledge a reading only once stored (a crash means redelivery);
    # "receipt": on arrival (faster on brokers with a small in-flight window).
    mqtt_ack: str = _opt("commit", "MQTT_ACK", "commit (ack after storing) or receipt")
    settle_interval_s: float = _opt(30.0, "SETTLE_INTERVAL", "seconds between settle rounds")
    health_interval_s: float = _opt(
        300.0, "HEALTH_INTERVAL", "seconds between device health checks"
    )
    catch_up_s: float = _opt(2.0, None, "")
    notify_interval_s: float = _opt(
        5.0, "NOTIFY_INTERVAL", "seconds between escalation/notification rounds"
    )
    base_url: str = _opt(
        "http://127.0.0.1:8000", "BASE_URL", "public address of the web app (links in messages)"
    )
    secret_key: str = _opt(
        "", "SECRET_KEY", "signs links and sessions (empty: generated once, kept in the database)"
    )
    claim_timeout_s: float = _opt(
        3600.0,
        "CLAIM_TIMEOUT",
        "seconds before an unresolved claim reminds the claimer, then staff",
    )
    web_host: str = _opt("127.0.0.1", "WEB_HOST", "address the web server listens on")
    web_port: int = _opt(8000, "WEB_PORT", "port the web server listens on")
    web_threads: int = _opt(8, "WEB_THREADS", "web server threads")
    log_format: str = _opt("text", "LOG_FORMAT", "text or json (one JSON object per line)")
    metrics_token: str = _opt("", "METRICS_TOKEN", "bearer token /metrics requires (empty: open)")

    def __post_init__(self) -> None:
        if self.mqtt_protocol not in ("5", "3.1.1"):
            raise ValueError(
                f"CURTAINWATCH_MQTT_PROTOCOL must be 5 or 3.1.1, not {self.mqtt_protocol!r}"
            )
        if self.mqtt_ack not in ("commit", "receipt"):
            raise ValueError(
                f"CURTAINWATCH_MQTT_ACK must be commit or receipt, not {self.mqtt_ack!r}"
            )
        if self.log_format not in ("text", "json"):
            raise ValueError(
                f"CURTAINWATCH_LOG_FORMAT must be text or json, not {self.log_format!r}"
            )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from the environment only (and CURTAINWATCH_CONFIG if it names a file)."""
        return cls.load(env)

    @classmethod
    def load(cls, env: dict[str, str] | None = None, path: Path | None = None) -> Settings:
        """Defaults, then the TOML file (`path` or CURTAINWATCH_CONFIG), then the environment.
        A bad value or an unknown key raises ValueError naming where it came from."""
        e = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        path = path or (Path(e[PREFIX + "CONFIG"]) if e.get(PREFIX + "CONFIG") else None)
        if path is not None:
            values.update(_from_toml(path))
        for f in settable():
            raw = e.get(PREFIX + f.metadata["env"])
            if raw is not None and (raw != "" or f.type in ("str", "str | None")):
                values[f.name] = _convert(f, raw, f"${PREFIX}{f.metadata['env']}")
        return cls(**values)


def settable() -> list[Any]:
    """The settings a deployment may set (each with its variable name and help)."""
    return [f for f in fields(Settings) if f.metadata.get("env")]


def _from_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    by_key = {f.metadata["env"].lower(): f for f in settable()}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        f = by_key.get(key)
        if f is None:
            raise ValueError(
                f"{path}: unknown setting {key!r} (known: {', '.join(sorted(by_key))})"
            )
        values[f.name] = _convert(f, raw, f"{path}: {key}")
    return values


def _convert(f: Any, raw: Any, where: str) -> Any:
    kind = str(f.type)
    try:
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind.startswith("tuple"):
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(t).strip() for t in items if str(t).strip())
        if not isinstance(raw, str | int | float):
            raise ValueError
        text = str(raw)
        return (text or None) if kind == "str | None" else text
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {raw!r} is not a valid {kind}") from None
