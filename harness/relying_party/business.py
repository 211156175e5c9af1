"""A registered business's inbox for address-change notices (planning document ⑤: 日本郵便, 生命保険, NHK …), over HTTP
on 127.0.0.1. It keeps each delivery once by its id, so a sender that retries after a lost acknowledgement is
still received exactly once; ``drop_acks`` makes it record and then hang up without answering, as a lost
acknowledgement looks to the sender."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 16_384


@dataclass(frozen=True)
class Received:
    delivery: str
    user: str
    new_address: str


class BusinessInbox:
    """Lifecycle: ``start()`` → :attr:`url` → ``stop()``. Port 0 picks a free port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: dict[str, Received] = {}
        self.attempts = 0
        self.drop_acks = 0  # the next N deliveries are recorded but never acknowledged
        self.refuse = 0  # the next N deliveries are refused with 503 (the business is down)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"inbox {self.name} not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> BusinessInbox:
        owner = self

        class Handler(_InboxHandler):
            inbox = owner

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"inbox-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def deliver(self, body: dict[str, Any]) -> tuple[int, bool]:
        """(HTTP status, whether to answer at all)."""
        with self._lock:
            self.attempts += 1
            if self.refuse:
                self.refuse -= 1
                return 503, True
            delivery = str(body.get("delivery", ""))
            if not delivery:
                return 400, True
            self.received.setdefault(delivery, Received(delivery, str(body.get("user", "")),
                                                        str(body.get("new_address", ""))))
            if self.drop_acks:
                self.drop_acks -= 1
                return 200, False
            return 200, True


class _InboxHandler(BaseHTTPRequestHandler):
    inbox: BusinessInbox
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(min(length, MAX_BODY)) or b"{}")
        except ValueError:
            body = {}
        status, answer = self.inbox.deliver(body if isinstance(body, dict) else {})
        if not answer:
            self.close_connection = True
            return
        data = json.dumps({"ok": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
