"""Session-wide fixtures: a real Mosquitto broker, ../shared/data, a fresh database URL.

Anything the suite needs from outside Python goes through ``support.requirements.require``:
skipped on a developer machine that lacks it, a failure under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mqtt import ConfValue, MosquittoBroker, StartBroker, find_mosquitto
from support.requirements import require

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _mosquitto_binary() -> str:
    binary = find_mosquitto()
    require(binary, "mosquitto not installed", "apt-get install mosquitto")
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One broker for the whole session (test settings, see support.mqtt.BROKER_DEFAULTS).

    Shared: use unique client ids and topic prefixes, and do not stop it.
    """
    binary = _mosquitto_binary()
    instance = MosquittoBroker(binary, tmp_path_factory.mktemp("mosquitto")).start()
    yield instance
    instance.stop()


@pytest.fixture
def start_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartBroker]:
    """Factory for brokers of this test's own: ``start_broker(persistence=True)``.

    Each call starts a new broker on a new port; all are stopped after the test.
    """
    binary = _mosquitto_binary()
    started: list[MosquittoBroker] = []

    def start(**conf_overrides: ConfValue) -> MosquittoBroker:
        instance = MosquittoBroker(binary, tmp_path_factory.mktemp("mosquitto"), conf_overrides)
        started.append(instance)
        return instance.start()

    yield start
    for instance in started:
        instance.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (three van Kasteren homes)."""
    require(
        SHARED_DATA.is_dir(),
        f"shared data not found at {SHARED_DATA}",
        "check out shared/ beside the repository (see DESIGN.md, 'Data to test against')",
    )
    return SHARED_DATA


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """URL of a fresh, empty SQLite database file in this test's tmp_path (no tables)."""
    return f"sqlite:///{tmp_path / 'cw.db'}"
