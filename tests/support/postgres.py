"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary directory, a
``postgres`` server on a free loopback port, and one fresh database per test.

Owns how the suite runs PostgreSQL (:data:`SERVER_SETTINGS`). The server is started once
per session (``tests/conftest.py``) and each test gets ``CREATE DATABASE`` of its own,
dropped afterwards, so tests never see each other's rows.

PostgreSQL refuses to run as root. Under root (CI, containers) the cluster's directory
is handed to an unprivileged user (``postgres`` if it exists, else ``nobody``) and
``initdb``/``postgres`` run as that user; as a normal user they simply run as you.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from support.mqtt import free_port
from support.requirements import find_postgres_bindir  # the lookup lives there; re-exported

__all__ = ["SERVER_SETTINGS", "PostgresCluster", "find_postgres_bindir"]

# Speed over durability: the cluster is thrown away at the end of the session.
SERVER_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # Leaked engines in a failing test must not starve later ones; each database's
    # connections are ended by DROP DATABASE ... WITH (FORCE) anyway.
    "max_connections": "200",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_min_error_statement": "panic",
    # The suite's clocks are all UTC-aware; a server zone makes mistakes visible
    # instead of hiding them behind UTC = local.
    "timezone": "Asia/Shanghai",
}

SUPERUSER = "cw"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _RunAs:
    """Whom the server processes run as: None = the current user."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_current_user(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return cls(entry.pw_uid, entry.pw_gid)
        raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")

    def popen_args(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


class PostgresCluster:
    """One PostgreSQL server in its own temporary directory, reachable over TCP on
    ``127.0.0.1:<port>`` with trust authentication for superuser ``cw``."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.run_as = _RunAs.for_current_user()
        self.port = 0
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: psycopg.Connection[Any] | None = None
        self._names = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> PostgresCluster:
        # Not pytest's tmp dirs: they are 0700 under root, so the server user could not
        # reach them. /tmp is world-traversable.
        self.root = Path(tempfile.mkdtemp(prefix="cw-postgres-"))
        try:
            self.run_as.own(self.root)
            self._initdb()
            for attempt in range(3):
                self.port = free_port(HOST)
                if self._serve():
                    return self
                if attempt == 2 or "could not bind" not in self.log_text():
                    break
            raise RuntimeError(f"PostgreSQL did not start:\n{self.log_text()[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown, then remove the directory. Safe to call twice."""
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None
        self._halt()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "cluster not started"
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "cluster not started"
        return self.root / "server.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _initdb(self) -> None:
        done = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            env=_server_env(),
            **self.run_as.popen_args(),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _serve(self) -> bool:
        """Start the server on ``self.port``; True once it accepts connections, False if
        it exited (the log says why)."""
        assert self.root is not None
        socket_dir = self.root / "socket"
        socket_dir.mkdir(exist_ok=True)
        self.run_as.own(socket_dir)
        settings = {
            **SERVER_SETTINGS,
            "port": str(self.port),
            "listen_addresses": HOST,
            "unix_socket_directories": str(socket_dir),
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                env=_server_env(),
                # Its own process group: a Ctrl-C meant for pytest does not hit the
                # server before the session's teardown stops it.
                start_new_session=True,
                **self.run_as.popen_args(),
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            try:
                self._admin = psycopg.connect(self.url_params("postgres"), autocommit=True)
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self._halt()
        raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT_S}s:\n{self.log_text()}")

    def _halt(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGINT = "fast shutdown": ends sessions, checkpoints, exits.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)  # immediate shutdown
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- databases -------------------------------------------------------------------

    def url_params(self, database: str) -> str:
        """libpq connection string for `database` (for psycopg directly)."""
        return f"host={HOST} port={self.port} user={SUPERUSER} dbname={database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of `database` on this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a new, empty database (no tables) and return its name."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self._execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending any connection a test left open to it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def databases(self) -> list[str]:
        """Names of the databases tests created and have not dropped."""
        with self._connection().cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")
            return sorted(row[0] for row in cur.fetchall() if row[0] != "postgres")

    def _execute(self, statement: sql.Composed) -> None:
        self._connection().execute(statement)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._admin is None or self._admin.closed or self._admin.broken:
            if not self.running:
                raise RuntimeError(f"PostgreSQL is not running:\n{self.log_text()[-4000:]}")
            self._admin = psycopg.connect(self.url_params("postgres"), autocommit=True)
        return self._admin


def _server_env() -> dict[str, str]:
    # PG* variables from the caller's shell (PGDATA, PGPORT...) must not steer the server.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env
