"""The issuing authority over HTTP on 127.0.0.1 (standard library), JSON in and out, bytes as base64.

==================================================  ===================================================
``POST /api/ceremonies`` {request_id, phone_id}      open: ceremony id and nonce
``POST /api/ceremonies/<id>/application``            {request_id, card_certificate, auth_public_key,
                                                      sign_public_key, signature}: checks, binds the keys
``POST /api/ceremonies/<id>/issue`` {request_id}     both phone certificates and the two CA certificates
``POST /api/ceremonies/<id>/complete`` {request_id}  the phone has stored them and set its PINs
``POST /api/ceremonies/<id>/cancel`` {request_id}    undo: whatever it issued is revoked
``GET  /api/ceremonies/<id>``                        status of one ceremony
``POST /api/cards/revoke`` {request_id, serial}      the card's certificate, and with it its phone
``POST /api/housekeeping`` {request_id}              undo ceremonies left unfinished past their time
``GET  /api/bindings?card=<serial>``                 card ↔ phone bindings
``GET  /api/certificates/<serial>``                  status of a certificate the authority issued
``GET  /api/revocations?since=N``                    card revocations (serial, reason) in order, for relying parties
``GET  /api/events?since=N``                         the event log
``POST /ocsp/auth``, ``/ocsp/sign`` (and GET)        OCSP (RFC 6960) for card and phone certificates
==================================================  ===================================================

Errors are ``{"error": code, "message": …}``. A restart (:meth:`AuthorityServer.restart`) keeps the database
file and the port, as a real service behind a fixed address would.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import protocol
from .service import Authority, AuthorityConfig, Refused

MAX_BODY = 65_536


class SimulatedCrash(Exception):
    """Raised at an armed fault point: the step's transaction is rolled back (or already committed) and the
    server dies without answering, like a process killed at that instant."""


class AuthorityServer:
    """Lifecycle: ``start()`` → :attr:`url` → ``stop()``; or a context manager. Port 0 picks a free port."""

    def __init__(self, config: AuthorityConfig, *, port: int = 0) -> None:
        self.config = config
        self.requested_port = port
        self.authority: Authority | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._crash_at: tuple[str, str] | None = None
        self._lifecycle = threading.RLock()
        self.crashed = threading.Event()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("authority not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> AuthorityServer:
        with self._lifecycle:
            if self._server is not None:
                return self
            self.authority = Authority(self.config)
            self.authority.fault = self._fault
            owner = self

            class Handler(_Handler):
                server_owner = owner

            self._server = ThreadingHTTPServer(("127.0.0.1", self.requested_port), Handler)
            self._server.daemon_threads = True
            self.requested_port = self.port  # a restart comes back on the same port
            self.authority.ocsp_base = f"{self.url}/ocsp"
            self.crashed.clear()
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"authority-{self.port}", daemon=True)
            self._thread.start()
            return self

    def stop(self, timeout: float = 5.0) -> None:
        server = self._server
        if server is not None:
            self._shut_down(server, timeout)

    def _shut_down(self, server: ThreadingHTTPServer, timeout: float = 5.0) -> None:
        """Stops ``server`` if it is still the running one (a crash and a restart may race)."""
        with self._lifecycle:
            if self._server is not server:
                return
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout)
            self._server = self._thread = None
            if self.authority is not None:
                self.authority.store.close()

    def restart(self) -> AuthorityServer:
        """Stops (if still up) and starts again on the same database and port: all state comes from the file."""
        with self._lifecycle:
            self.stop()
            self.authority = None
            return self.start()

    def crash_during(self, step: str, point: str = "before_commit") -> None:
        """The next time ``step`` reaches ``point`` (``before_commit``/``after_commit``), the server dies."""
        if step not in protocol.STEPS or point not in ("before_commit", "after_commit"):
            raise ValueError(f"crash point must be one of {protocol.STEPS} × before_commit/after_commit")
        self._crash_at = (step, point)

    def _fault(self, step: str, point: str) -> None:
        if self._crash_at == (step, point):
            self._crash_at = None
            self.crashed.set()
            server = self._server
            if server is not None:
                threading.Thread(target=self._shut_down, args=(server,), name="authority-crash", daemon=True).start()
            raise SimulatedCrash(f"authority crashed during {step} ({point})")

    def __enter__(self) -> AuthorityServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server_owner: AuthorityServer
    protocol_version = "HTTP/1.1"
    server_version = "JPKI-HIL-Authority/1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    @property
    def authority(self) -> Authority:
        authority = self.server_owner.authority
        if authority is None:
            raise Refused("unavailable", "authority not started", 503)
        return authority

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _raw_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise Refused("bad_request", f"body of {length} bytes is too large", 413)
        return self.rfile.read(length) if length else b""

    def _body(self) -> dict[str, Any]:
        raw = self._raw_body() or b"{}"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Refused("bad_request", f"body is not JSON: {exc}", 400) from None
        if not isinstance(body, dict):
            raise Refused("bad_request", "body must be a JSON object", 400)
        return body

    def _dispatch(self, method: str) -> None:
        try:
            parts = urlsplit(self.path)
            segments = [s for s in parts.path.split("/") if s]
            if segments[:1] == ["ocsp"] and len(segments) >= 2:
                self._ocsp(method, segments[1], segments[2:])
                return
            if segments[:1] != ["api"]:
                raise Refused("not_found", f"no resource {parts.path}", 404)
            status, body = self._route(method, segments[1:], parse_qs(parts.query))
            self._json(status, body)
        except SimulatedCrash:
            self.close_connection = True  # no answer at all: the process "died" here
        except Refused as exc:
            self._json(exc.http_status, exc.body())
        except (KeyError, TypeError, ValueError) as exc:
            self._json(400, {"error": "bad_request", "message": f"{type(exc).__name__}: {exc}"})
        except Exception as exc:  # answer in one line rather than drop the connection
            self._json(500, {"error": "internal", "message": " ".join(f"{type(exc).__name__}: {exc}".split())})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _ocsp(self, method: str, kind: str, rest: list[str]) -> None:
        if method == "POST":
            request = self._raw_body()
        else:
            try:
                request = base64.b64decode(unquote("/".join(rest)), validate=True)
            except ValueError:
                request = b""
        self._send(200, self.authority.ocsp.answer(kind, request), "application/ocsp-response")

    def _route(self, method: str, path: list[str], query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        authority = self.authority
        if (method, *path) == ("GET", "health"):
            return 200, {"ok": True}
        if path[:1] == ["ceremonies"]:
            return self._ceremonies(method, path[1:], authority)
        if (method, *path) == ("POST", "cards", "revoke"):
            body = self._body()
            return authority.revoke_card(body.get("request_id", ""), str(body.get("serial", "")),
                                         str(body.get("reason") or "card_revoked"))
        if (method, *path) == ("POST", "housekeeping"):
            return authority.housekeeping(self._body().get("request_id", ""))
        if (method, *path[:1]) == ("GET", "bindings"):
            card = query.get("card", [None])[0]
            return 200, {"bindings": [vars(b) for b in authority.store.bindings(card)]}
        if method == "GET" and len(path) == 2 and path[0] == "certificates":
            return 200, authority.certificate_status(path[1])
        if (method, *path) == ("GET", "revocations"):
            return 200, {"revocations": authority.store.card_revocations(int(query.get("since", ["0"])[0]))}
        if (method, *path) == ("GET", "events"):
            return 200, {"events": authority.store.events(int(query.get("since", ["0"])[0]))}
        raise Refused("not_found", f"no {method} /api/{'/'.join(path)}", 404)

    def _ceremonies(self, method: str, rest: list[str], authority: Authority) -> tuple[int, dict[str, Any]]:
        if method == "POST" and not rest:
            body = self._body()
            return authority.open(body.get("request_id", ""), body.get("phone_id", ""))
        if method == "GET" and len(rest) == 1:
            ceremony = authority.store.ceremony(rest[0])
            if ceremony is None:
                raise Refused("no_ceremony", f"no ceremony {rest[0]}", 404)
            return 200, {"ceremony": ceremony.id, "status": ceremony.status, "reason": ceremony.reason,
                         "phone_id": ceremony.phone_id, "card": ceremony.card_serial}
        if method != "POST" or len(rest) != 2:
            raise Refused("not_found", f"no {method} /api/ceremonies/{'/'.join(rest)}", 404)
        ceremony_id, action = rest
        body = self._body()
        request_id = body.get("request_id", "")
        if action == "application":
            return authority.apply(request_id, ceremony_id,
                                   protocol.unb64(body.get("card_certificate"), "card_certificate"),
                                   protocol.unb64(body.get("auth_public_key"), "auth_public_key"),
                                   protocol.unb64(body.get("sign_public_key"), "sign_public_key"),
                                   protocol.unb64(body.get("signature"), "signature"))
        if action == "issue":
            return authority.issue(request_id, ceremony_id)
        if action == "complete":
            return authority.complete(request_id, ceremony_id)
        if action == "cancel":
            return authority.cancel(request_id, ceremony_id, str(body.get("reason") or "cancelled"))
        raise Refused("not_found", f"no POST /api/ceremonies/{ceremony_id}/{action}", 404)
