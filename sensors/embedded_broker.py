"""An MQTT broker inside the process, for the demo: amqtt (pure Python, asyncio) on its own
event loop in a background thread, listening on loopback only.

amqtt speaks MQTT 3.1.1 only (it answers an MQTT 5 CONNECT with "unsupported protocol
version", or not at all when the CONNECT carries properties) and handles a few thousand
messages a second: enough for a demo community, not for production, which runs Mosquitto
or EMQX (deploy/mosquitto.conf). Unlike those, amqtt 0.12 does not send again a QoS 1
message that was in flight (sent, not yet acknowledged) when the subscriber disconnected;
readings published while it is away are kept. In the demo the broker lives and dies with
curtainwatch's own process, so nothing is in flight across a reconnect that matters."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

log = logging.getLogger(__name__)

DEFAULT_PORT = 1883


class LoopbackAuth(BaseAuthPlugin):
    """Lets in any client connecting from this machine, without a password, and nobody else.

    Unlike amqtt's AnonymousAuthPlugin it does not mark the session anonymous: amqtt drops
    an anonymous session (and the QoS 1 messages queued for it) as soon as the client
    disconnects, and curtainwatch's persistent session relies on that queue across a
    reconnect."""

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Any) -> bool:
        address = getattr(session, "remote_address", None)
        try:
            return address is not None and ipaddress.ip_address(address).is_loopback
        except ValueError:
            return False


class EmbeddedBroker:
    """`start()` binds `host:port` (on loopback; port 0 = any free port, and with
    `fallback` a taken port also falls back to a free one) and returns the port it got;
    `stop()` closes it. Usable as a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, fallback: bool = True):
        if not ipaddress.ip_address(host).is_loopback:
            # Anyone who can reach the port may publish: only this machine can reach loopback.
            raise ValueError(f"the embedded broker listens on loopback only, not {host}")
        self.host = host
        self.port = port
        self.fallback = fallback
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Broker | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> int:
        if self._thread is not None:
            raise RuntimeError("the embedded broker is already running")
        # amqtt logs every connection and state change at INFO; only its problems are news.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="curtainwatch-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the embedded MQTT broker did not start in {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise OSError(f"the embedded MQTT broker could not start: {self._error}")
        log.info("embedded MQTT broker (amqtt, MQTT 3.1.1) on %s:%s", self.host, self.port)
        return self.port

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and the listener, then end the broker's thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def unacknowledged(self, client_id: str) -> int | None:
        """QoS 1 messages sent to `client_id` that it has not acknowledged yet (None: no
        such session). Read from another thread, so a moment's snapshot."""
        broker = self._broker
        entry = broker.sessions.get(client_id) if broker is not None else None
        return entry[0].inflight_out_count if entry is not None else None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # noqa: BLE001 - handed to start() to raise
                self._error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        port = self.port
        if not port or (self.fallback and not _bindable(self.host, port)):
            # Checked first: amqtt logs a failed bind as an error with a traceback.
            free = _free_port(self.host)
            if port:
                log.info("port %s is taken; the embedded MQTT broker takes %s", port, free)
            port = free
        broker = Broker(_config(self.host, port))
        await broker.start()
        self._broker, self.port = broker, port

    async def _shutdown(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            try:
                await broker.shutdown()
            except Exception:
                log.exception("the embedded MQTT broker did not shut down cleanly")
        # amqtt leaves per-connection tasks behind; end them so the loop closes quietly.
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _config(host: str, port: int) -> dict[str, Any]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Our own auth and nothing else: amqtt's default plugins log every packet and
        # publish $SYS topics, which the demo does not need.
        "plugins": {f"{__name__}.LoopbackAuth": {}},
    }


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _bindable(host: str, port: int) -> bool:
    """Whether a listener could bind `host:port` now (as asyncio binds: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
