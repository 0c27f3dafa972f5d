"""A local HTTP receiver standing in for phone push services: Apprise `json://` URLs
pointing at it deliver here. Paths containing "fail" answer 500."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.refused = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if "fail" in self.path:
                    with outer.lock:
                        outer.refused += 1
                    self.send_response(500)
                else:
                    with outer.lock:
                        outer.received.append((self.path.strip("/"), json.loads(body)))
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def to(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [msg for p, msg in self.received if p == path]


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    t = threading.Thread(target=r.server.serve_forever, daemon=True)
    t.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
