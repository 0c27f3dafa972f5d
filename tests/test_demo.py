"""`make demo`, as a visitor runs it: in a fresh clone with a fresh virtualenv, it prints a
URL and logins; signing in through the real login form shows the demo residents; within
the accelerated morning the simulated MQTT traffic makes at least one missed-routine alert
and one help alert; Ctrl-C stops everything and the command exits 0.

The project is a fresh `git clone` of this checkout (its committed state), or the directory
named by CURTAINWATCH_DEMO_PROJECT (to try uncommitted work: a copy you made). pip installs
from its cache; the fresh venv takes about a minute here."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
from support.requirements import require

REPO = Path(__file__).resolve().parents[1]
SPEED = 4  # real minutes per simulated day: an hour in 10 s, 09:15 about 40 s after start
NAMES = ("Wang Shulan", "Zhao Guiying", "Li Xiuying", "Tang Suzhen", "He Shufen")

pytestmark = pytest.mark.timeout(900)


class Output:
    """Collects a process's output lines in a thread, so waiting never blocks on a pipe."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, proc: subprocess.Popen[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), re.MULTILINE)
            if found:
                return found
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} in the output of make demo:\n{self.text()[-6000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def project(tmp_path: Path) -> Path:
    given = os.environ.get("CURTAINWATCH_DEMO_PROJECT")
    if given:
        return Path(given)
    require(shutil.which("git"), "git not installed", "apt-get install git")
    require((REPO / ".git").exists(), f"{REPO} is not a git checkout", "run from a clone")
    require(shutil.which("make"), "make not installed", "apt-get install make")
    clone = tmp_path / "cw"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    return clone


@pytest.fixture
def demo(project: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Output, Path]]:
    if os.environ.get("CURTAINWATCH_TEST_DB", "sqlite") == "postgresql":
        pytest.skip("the demo always runs on SQLite; the SQLite run covers it")
    db = project / "demo.db"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    env |= {"PYTHONUNBUFFERED": "1", "CURTAINWATCH_DATABASE_URL": "sqlite:///must-not-be-used"}
    cmd = [
        "make",
        "--no-print-directory",
        "demo",
        f"VENV={tmp_path / 'venv'}",
        f"DEMO_SPEED={SPEED}",
        f"DEMO_PORT={_free_port()}",
        "DEMO_MQTT_PORT=0",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, to clean up after a failure
    )
    out = Output(proc)
    try:
        yield proc, out, db
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        print(out.text()[-3000:])


def _count(db: Path, sql: str) -> int:
    # Read-only, beside the demo's own connections (SQLite in WAL mode allows it).
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return int(conn.execute(sql).fetchone()[0])


def _sign_in(base: str, username: str, password: str) -> requests.Session:
    http = requests.Session()
    form = http.get(f"{base}/login", timeout=10)
    assert form.status_code == 200, form.text[:500]
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
    assert token, "no CSRF token on the login page"
    done = http.post(
        f"{base}/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 302, f"sign-in failed: {done.status_code} {done.text[:500]}"
    return http


def test_make_demo_from_a_fresh_clone(demo: tuple[subprocess.Popen[str], Output, Path]) -> None:
    proc, out, db = demo
    began = time.monotonic()
    url = out.wait_for(r"curtainwatch demo: open (http://\S+?)/?$", proc, timeout=600).group(1)
    up = time.monotonic()
    password = out.wait_for(r"^\s+staff / (\S+)", proc, timeout=5).group(1)
    print(f"make demo: URL printed after {up - began:.0f} s (venv, install, start)")

    # Signed in as staff through the real form, the board lists the demo's residents.
    http = _sign_in(url, "staff", password)
    page = http.get(f"{url}/", timeout=10)
    assert page.status_code == 200
    shown = [n for n in NAMES if n in page.text]
    if not shown:  # a board that lists no names yet: the residents page must
        page = http.get(f"{url}/residents/", timeout=10)
        assert page.status_code == 200, f"/residents/ answered {page.status_code}"
        shown = [n for n in NAMES if n in page.text]
    assert shown, f"no demo resident on {page.url}: {page.text[:1000]}"
    # The page header marks the clock as simulated (web/templates/dash/base.html).
    assert 'class="clock simulated"' in page.text, "the page does not say time is simulated"
    print(f"make demo: residents {shown} listed on {page.url}")

    # Within the accelerated morning (09:15 comes about 40 s after the start at this speed),
    # the simulated MQTT traffic has made a missed curtain and a help alert.
    deadline = time.monotonic() + 240
    missed = help_ = 0
    while time.monotonic() < deadline and proc.poll() is None:
        missed = _count(db, "SELECT count(*) FROM alerts WHERE kind = 'missed_routine'")
        help_ = _count(db, "SELECT count(*) FROM alerts WHERE kind = 'help'")
        if missed and help_:
            break
        time.sleep(1)
    print(f"make demo: a missed routine and a help alert {time.monotonic() - up:.0f} s after")
    assert missed >= 1 and help_ >= 1, f"missed_routine: {missed}, help: {help_}"
    # ...made from sensor readings that came over MQTT, every one of them understood.
    assert _count(db, "SELECT count(*) FROM events WHERE kind = 'help' AND value = 'help'") >= 1
    assert _count(db, "SELECT count(*) FROM events WHERE kind = 'curtain' AND value = 'open'")
    assert _count(db, "SELECT count(*) FROM dead_letters") == 0
    assert _count(db, "SELECT count(*) FROM unknown_devices") == 0
    assert "ALERT help" in out.text() and "push >" in out.text()

    # Ctrl-C: the demo process gets SIGINT (make would die of it too, as make does, so it
    # goes to curtainwatch alone and make's exit code is curtainwatch's).
    children = psutil.Process(proc.pid).children(recursive=True)
    [cw] = [
        p
        for p in children
        if "demo" in p.cmdline() and any("curtainwatch" in a for a in p.cmdline())
    ]
    stopping = time.monotonic()
    cw.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, out.text()[-3000:]
    print(f"make demo: stopped {time.monotonic() - stopping:.1f} s after SIGINT")
    assert "demo stopped" in out.text()
    assert "Traceback" not in out.text(), out.text()
