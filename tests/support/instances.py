"""Several curtainwatch instances as real processes, for failover tests: start, stop (SIGTERM),
kill (SIGKILL) and restart `curtainwatch serve` with an environment of its own, the way an
orchestrator would; and a TCP proxy that can hold back what a client sends to the broker
(its PUBACKs lost in the network) while the broker's messages still reach it.

Owns nothing of the product: it drives `python -m curtainwatch.cli` like an operator."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from support.mqtt import free_port, wait_for

__all__ = ["HoldingProxy", "Instance", "serve_env"]

CLI = (sys.executable, "-m", "curtainwatch.cli")


def serve_env(
    database_url: str,
    mqtt_host: str,
    mqtt_port: int,
    client_id: str,
    **settings: str | int | float,
) -> dict[str, str]:
    """The environment of one instance: this process's, plus CURTAINWATCH_* settings
    (`settle_interval=1` becomes CURTAINWATCH_SETTLE_INTERVAL=1)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURTAINWATCH_")}
    env.update(
        {
            "CURTAINWATCH_DATABASE_URL": database_url,
            "CURTAINWATCH_MQTT_HOST": mqtt_host,
            "CURTAINWATCH_MQTT_PORT": str(mqtt_port),
            "CURTAINWATCH_MQTT_CLIENT_ID": client_id,
            "CURTAINWATCH_WEB_PORT": str(free_port()),
        }
    )
    env.update({f"CURTAINWATCH_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 120) -> str:
    """Run one curtainwatch command to completion; its standard output (raises on failure)."""
    done = subprocess.run(
        [*CLI, *args], env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"curtainwatch {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class Instance:
    """One `curtainwatch serve` process. Every start appends to the same log file; the
    `*_since_start` helpers look only at what the current run wrote."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        workdir: Path,
        args: Sequence[str] = ("serve",),
    ) -> None:
        self.name = name
        self.env = dict(env)
        self.args = list(args)
        self.log_path = workdir / f"{name}.log"
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def __repr__(self) -> str:
        return f"<Instance {self.name} pid={self.pid} running={self.running}>"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Instance:
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} of {self.name}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [*CLI, *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        return self

    def wait_connected(self, timeout: float = 60) -> None:
        """Until this run has connected to the broker (and so subscribed)."""
        wait_for(
            lambda: "connected to MQTT" in self.log_since_start() or not self.running,
            timeout,
            message=f"{self.name} to connect",
        )
        if not self.running:
            raise RuntimeError(f"{self.name} exited:\n{self.log_since_start()[-3000:]}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a clean shutdown; the exit code."""
        proc = self._proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash; nothing is flushed, nothing acknowledged."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_since_start(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(self._offset)
            return f.read().decode(errors="replace")


class HoldingProxy:
    """A TCP proxy on a free loopback port in front of `target`. `hold()` stops passing what
    the clients send (MQTT PUBACKs, pings) while the broker's messages still flow to them;
    `sever()` drops every connection without passing on what was held back. New connections
    made after `release()` pass both ways again."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self._server = socket.create_server((host, 0))
        self.port: int = self._server.getsockname()[1]
        self._holding = False
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def hold(self) -> None:
        with self._lock:
            self._holding = True
            for link in self._links:
                link.held.set()

    def release(self) -> None:
        """Connections made from now on pass both ways (held ones stay held)."""
        with self._lock:
            self._holding = False

    def sever(self) -> None:
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self.sever()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            link = _Link(client, upstream)
            with self._lock:
                if self._holding:
                    link.held.set()
                self._links.append(link)
            link.start()


class _Link:
    """One proxied connection: two pumps, one per direction."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.held = threading.Event()
        self.closed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._up, daemon=True, name="proxy-up").start()
        threading.Thread(target=self._down, daemon=True, name="proxy-down").start()

    def _up(self) -> None:
        """Client to broker, unless held: then nothing is read, so nothing passes."""
        try:
            while not self.closed.is_set():
                if self.held.is_set():
                    time.sleep(0.05)
                    continue
                readable, _, _ = select.select([self.client], [], [], 0.05)
                if not readable or self.held.is_set():
                    continue
                data = self.client.recv(65536)
                if not data:
                    break
                self.upstream.sendall(data)
        except (OSError, ValueError):  # ValueError: select on a socket closed meanwhile
            pass
        self.close()

    def _down(self) -> None:
        try:
            while not self.closed.is_set():
                data = self.upstream.recv(65536)
                if not data:
                    break
                self.client.sendall(data)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                # RST, not FIN: what was held back is discarded, never sent on.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                sock.close()
