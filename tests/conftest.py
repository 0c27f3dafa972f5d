"""Session-wide fixtures: a real Mosquitto broker, ../shared/data (the shared/ folder beside
the checkout), a fresh database URL; and the test world (support.world): ``rt``, a runtime
on a fresh database with the fixture community, ``app`` and ``client`` over it, ``rx``, a
receiver standing in for the phones.

A test module changes the world by overriding the ``world`` fixture::

    @pytest.fixture
    def world(rx: Receiver) -> World:
        return World(community(notify=rx.url), users=False)

The database backend is chosen by ``CURTAINWATCH_TEST_DB``: ``sqlite`` (the default, a file
in the test's tmp_path) or ``postgresql`` (a throwaway cluster started once per session,
see support.postgres, and a new empty database per test). ``make test`` runs both.

Anything the suite needs from outside Python is looked up in ``support.requirements`` (as is
``make test``'s preflight) and goes through its ``require``: skipped on a developer machine
that lacks it, a failure under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.mqtt import ConfValue, MosquittoBroker, StartBroker
from support.postgres import PostgresCluster
from support.receiver import Receiver, receiver
from support.requirements import MOSQUITTO, POSTGRESQL, require
from support.web import web_app
from support.world import World

from curtainwatch.runtime import Runtime

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DB_BACKENDS = ("sqlite", "postgresql")

NewDbUrl = Callable[..., str]
"""Type of the ``new_db_url`` fixture: ``new_db_url("few") -> URL of a fresh, empty database``."""


def selected_backend() -> str:
    """The backend named by ``CURTAINWATCH_TEST_DB`` (``sqlite`` when unset)."""
    return os.environ.get("CURTAINWATCH_TEST_DB", "").strip().lower() or "sqlite"


def pytest_configure(config: pytest.Config) -> None:
    if selected_backend() not in DB_BACKENDS:
        raise pytest.UsageError(
            f"CURTAINWATCH_TEST_DB={os.environ['CURTAINWATCH_TEST_DB']!r}: "
            f"use one of {', '.join(DB_BACKENDS)}"
        )


# Fixtures of tests that belong to one pass of `make test`: several instances need
# PostgreSQL (SQLite serves one), as does a test asking for the cluster itself; the demo
# always runs on its own SQLite file.
ONLY_IN_PASS = {"pg_db_url": "postgresql", "postgres": "postgresql", "demo": "sqlite"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that belong to the other backend's pass are deselected, not skipped: each runs
    once in `make test`, and no test is skipped for a backend choice."""
    backend = selected_backend()
    keep, drop = [], []
    for item in items:
        names = getattr(item, "fixturenames", ())
        other = any(ONLY_IN_PASS.get(f, backend) != backend for f in names)
        (drop if other else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config: pytest.Config) -> str:
    return f"database backend: {selected_backend()} (CURTAINWATCH_TEST_DB)"


def _mosquitto_binary() -> str:
    return MOSQUITTO.require()


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


def pytest_itemcollected(item: pytest.Item) -> None:
    """Every test that uses ``shared_data`` carries the ``shared_data`` marker, so
    ``-m 'not shared_data'`` (the advice in the fixture's skip message) deselects them all."""
    if "shared_data" in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
        "shared_data"
    ):
        item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository (three van Kasteren homes)."""
    require(
        SHARED_DATA.is_dir(),
        f"shared data not found at {SHARED_DATA}",
        "it is the shared/ folder that sits beside the repository checkout (a sibling of "
        "the clone, holding data/kasteren-a, data/kasteren-b and data/kasteren-c: recorded "
        "homes whose event files follow docs/contracts.md); CI provides it. Put it there, "
        "or deselect the tests that need it with -m 'not shared_data' "
        """(make test PYTEST_ARGS="-m 'not shared_data'")""",
    )
    return SHARED_DATA


@pytest.fixture(scope="session")
def db_backend() -> str:
    """``sqlite`` or ``postgresql``: what ``db_url`` points at in this run."""
    return selected_backend()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session, on a free loopback port.

    Requested by ``db_url`` under ``CURTAINWATCH_TEST_DB=postgresql``; a test may also ask
    for it directly. Make databases with ``create_database``; do not stop it.
    """
    with PostgresCluster(POSTGRESQL.require()) as cluster:
        yield cluster


@pytest.fixture
def new_db_url(
    request: pytest.FixtureRequest, db_backend: str, tmp_path: Path
) -> Iterator[NewDbUrl]:
    """Factory for fresh, empty databases (no tables) on this run's backend:
    ``new_db_url("few")``. SQLite: ``<tmp_path>/<name>.db``; PostgreSQL: a new database on
    the session's cluster, dropped after the test (open connections and all)."""
    if db_backend == "sqlite":
        yield lambda name="cw": f"sqlite:///{tmp_path / f'{name}.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    made: list[str] = []

    def new(name: str = "cw") -> str:
        made.append(cluster.create_database(name))
        return cluster.url(made[-1])

    yield new
    for database in made:
        cluster.drop_database(database)


@pytest.fixture
def pg_db_url(new_db_url: NewDbUrl) -> str:
    """A fresh PostgreSQL database, for tests that only PostgreSQL can serve (several
    ingesting instances): they run in the suite's PostgreSQL pass (ONLY_IN_PASS)."""
    return new_db_url("several")


@pytest.fixture
def db_url(new_db_url: NewDbUrl) -> str:
    """URL of a fresh, empty database (no tables) on this run's backend (see module doc)."""
    return new_db_url("cw")


# -- the test world ----------------------------------------------------------------------


@pytest.fixture
def rx() -> Iterator[Receiver]:
    """A local HTTP server standing in for the phones' push services: a person notified at
    ``rx.url("v-li")`` has their messages in ``rx.to("v-li")``."""
    with receiver() as r:
        yield r


@pytest.fixture
def world() -> World:
    """What ``rt`` builds: the fixture community and its users, at 06:00 on DAY. A module
    overrides this fixture to build another (see the module doc)."""
    return World()


@pytest.fixture
def rt(db_url: str, world: World) -> Runtime:
    """A Runtime (not started) on a fresh database at a simulated clock, with the world's
    community imported (support.world.World.runtime)."""
    return world.runtime(db_url)


@pytest.fixture
def app(rt: Runtime, world: World) -> Flask:
    """The web app over ``rt``; its browsers ask for the world's language (English)."""
    return web_app(rt, language=world.language)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser on ``app``, not signed in (``signed_in(app, "staff")`` signs one in)."""
    return app.test_client()
