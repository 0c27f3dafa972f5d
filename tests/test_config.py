"""Settings (issue 5, point 2): defaults, an optional TOML file, environment variables over
both, precise errors for unknown keys and bad values, and the README's table naming every
setting there is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import DEFAULT_TOPICS, Settings, settable

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_work_on_a_laptop() -> None:
    s = Settings.load({})
    assert s.database_url == "sqlite:///curtainwatch.db"
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_protocol) == ("127.0.0.1", 1883, "3.1.1")
    assert s.mqtt_topics == DEFAULT_TOPICS


def test_toml_file_then_environment(tmp_path: Path) -> None:
    conf = tmp_path / "cw.toml"
    conf.write_text(
        'database_url = "postgresql+psycopg://cw@db/cw"\n'
        "settle_interval = 10\n"
        'mqtt_topics = ["zigbee2mqtt/#", "curtainwatch/+/event"]\n'
        "mqtt_port = 1884\n",
        encoding="utf-8",
    )
    s = Settings.load({"CURTAINWATCH_MQTT_PORT": "1885"}, conf)
    assert s.database_url == "postgresql+psycopg://cw@db/cw"
    assert s.settle_interval_s == 10.0
    assert s.mqtt_topics == ("zigbee2mqtt/#", "curtainwatch/+/event")
    assert s.mqtt_port == 1885  # the environment wins over the file
    via_env = Settings.load({"CURTAINWATCH_CONFIG": str(conf)})
    assert via_env.mqtt_port == 1884


def test_empty_variables_mean_unset_except_for_text() -> None:
    s = Settings.load({"CURTAINWATCH_MQTT_PORT": "", "CURTAINWATCH_MQTT_USERNAME": ""})
    assert s.mqtt_port == 1883 and s.mqtt_username is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("mqtt_hots = 'x'\n", "unknown setting 'mqtt_hots'"),
        ("mqtt_port = 'abc'\n", "mqtt_port: 'abc' is not a valid int"),
        ("mqtt_port = true\n", "mqtt_port: True is not a valid int"),
        ("mqtt_port = \n", "not valid TOML"),
    ],
)
def test_bad_file_names_the_setting(tmp_path: Path, toml: str, message: str) -> None:
    conf = tmp_path / "cw.toml"
    conf.write_text(toml, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.load({}, conf)


def test_bad_variable_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"\$CURTAINWATCH_SETTLE_INTERVAL: 'soon'"):
        Settings.load({"CURTAINWATCH_SETTLE_INTERVAL": "soon"})
    with pytest.raises(ValueError, match="must be text or json"):
        Settings.load({"CURTAINWATCH_LOG_FORMAT": "xml"})


def test_readme_table_lists_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [
        f.metadata["env"] for f in settable() if f"CURTAINWATCH_{f.metadata['env']}`" not in text
    ]
    assert missing == [], f"README configuration table lacks {missing}"
