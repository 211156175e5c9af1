"""The relying-party platform over HTTP on 127.0.0.1: a JSON API for terminals, and the audit log for tests.

Terminals identify themselves with ``X-Terminal-Id`` (and ``X-Terminal-Kind``), sessions travel as
``Authorization: Bearer <token>``, bytes as base64. Errors are ``{"error": code, "message": …}``.

===========================================  ====================================================
``POST /api/challenges`` {service}            a challenge for the card to sign
``POST /api/sessions`` {challenge_id, certificate, signature}   login: checks, OCSP, CRL, platform ID
``POST /api/logout``                          ends the session
``GET  /api/health-records``                  the holder's records (audited)
``POST /api/eligibility``                     insurance linked to the auth certificate serial
``POST /api/transactions`` {service, params}  begin: pending, with the text the card signs
``POST /api/transactions/<id>/commit`` {signature}   apply everything or nothing
``POST /api/transactions/<id>/abort`` {reason}
``GET  /api/transactions/<id>``               status of one transaction
``GET  /api/audit?terminal=&event=&tx=&since=``   the audit log
``GET  /api/state``                           every committed effect (bookings, payments, …)
===========================================  ====================================================
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .ocsp import OcspResponder
from .platform import Platform, PlatformConfig
from .records import Refused

MAX_BODY = 65_536


class RelyingParty:
    """The platform, its HTTP API and (unless ``ocsp_url`` is given) its own OCSP responder.

    Lifecycle: ``start()`` → :attr:`url` → ``stop()``; or a context manager. Port 0 picks a free port.
    """

    def __init__(self, config: PlatformConfig | None = None, *, port: int = 0) -> None:
        self.config = config or PlatformConfig()
        self.requested_port = port
        self.ocsp: OcspResponder | None = None
        self.platform: Platform | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("relying party not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 5.0) -> RelyingParty:
        config = self.config
        if not config.ocsp_url:
            self.ocsp = OcspResponder().start(timeout)
            config = replace(config, ocsp_url=self.ocsp.url)
        self.platform = Platform(config)
        owner = self

        class Handler(_ApiHandler):
            rp = owner

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.requested_port), Handler)
        except OSError:
            if self.ocsp is not None:
                self.ocsp.stop()
            raise
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"relying-party-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout)
            self._server = self._thread = None
        if self.ocsp is not None:
            self.ocsp.stop(timeout)
            self.ocsp = None

    def __enter__(self) -> RelyingParty:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def require_platform(self) -> Platform:
        if self.platform is None:
            raise RuntimeError("relying party not started")
        return self.platform


def _b64decode(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise Refused("bad_request", f"{name} must be a base64 string", 400)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("bad_request", f"{name} is not base64", 400) from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _ApiHandler(BaseHTTPRequestHandler):
    rp: RelyingParty
    protocol_version = "HTTP/1.1"
    server_version = "JPKI-HIL-RP/1"

    def log_message(self, format: str, *args: object) -> None:  # silence the default stderr log
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise Refused("bad_request", f"body of {length} bytes is too large", 413)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise Refused("bad_request", f"body is not JSON: {exc}", 400) from None
        if not isinstance(body, dict):
            raise Refused("bad_request", "body must be a JSON object", 400)
        return body

    def _terminal(self) -> str:
        terminal = self.headers.get("X-Terminal-Id", "")
        if not terminal:
            raise Refused("bad_request", "X-Terminal-Id header missing", 400)
        return terminal

    def _session(self):
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        return self.rp.require_platform().session(token, self._terminal())

    def _dispatch(self, method: str) -> None:
        try:
            parts = urlsplit(self.path)
            segments = [s for s in parts.path.split("/") if s]
            if segments[:1] != ["api"]:
                raise Refused("not_found", f"no resource {parts.path}", 404)
            status, body = self._route(method, segments[1:], parse_qs(parts.query))
            self._send(status, body)
        except Refused as exc:
            self._send(exc.http_status, {"error": exc.code, "message": str(exc)})
        except (KeyError, TypeError, ValueError) as exc:
            self._send(400, {"error": "bad_request", "message": f"{type(exc).__name__}: {exc}"})
        except Exception as exc:  # a bug here must still answer, in one line, not drop the connection
            self._send(500, {"error": "internal", "message": " ".join(f"{type(exc).__name__}: {exc}".split())})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- routes ------------------------------------------------------------------------------------
    def _route(self, method: str, path: list[str], query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        platform = self.rp.require_platform()
        route = (method, *path[:1])
        if route == ("GET", "health"):
            return 200, {"ok": True}
        if route == ("GET", "audit"):
            def one(key: str) -> str | None:
                return query.get(key, [None])[0]
            records = platform.audit(terminal=one("terminal"), event=one("event"), tx=one("tx"),
                                     since=int(one("since") or 0))
            return 200, {"records": [r.as_dict() for r in records]}
        if route == ("GET", "state"):
            return 200, platform.snapshot()
        if route == ("POST", "challenges"):
            body = self._body()
            challenge = platform.challenge(self._terminal(), str(body.get("service", "")))
            return 201, {"challenge_id": challenge.id, "challenge": _b64(challenge.value)}
        if route == ("POST", "sessions"):
            body = self._body()
            session = platform.authenticate(self._terminal(), str(body.get("challenge_id", "")),
                                            _b64decode(body.get("certificate"), "certificate"),
                                            _b64decode(body.get("signature"), "signature"))
            identity = session.identity
            return 201, {"session": session.token, "platform_id": identity.platform_id,
                         "serial": f"{identity.serial:x}", "cn": identity.cn}
        if route == ("POST", "logout"):
            session = self._session()
            platform.end_session(session.token, session.terminal)
            return 200, {"ok": True}
        if route == ("GET", "health-records"):
            return 200, {"records": platform.read_health_records(self._session())}
        if route == ("POST", "eligibility"):
            return 200, platform.eligibility(self._session())
        if path[:1] == ["transactions"]:
            return self._transactions(method, path[1:], platform)
        raise Refused("not_found", f"no {method} /api/{'/'.join(path)}", 404)

    def _transactions(self, method: str, rest: list[str], platform: Platform) -> tuple[int, dict[str, Any]]:
        if method == "POST" and not rest:
            body = self._body()
            params = body.get("params", {})
            if not isinstance(params, dict):
                raise Refused("bad_request", "params must be an object", 400)
            tx = platform.begin(self._session(), str(body.get("service", "")), params,
                                self.headers.get("X-Terminal-Kind", ""))
            return 201, {"tx": tx.id, "summary": tx.summary, "confirm": _b64(tx.confirm)}
        if method == "GET" and len(rest) == 1:
            platform.expire()
            tx = platform.transactions.get(rest[0])
            if tx is None:
                raise Refused("no_transaction", f"no transaction {rest[0]}", 404)
            return 200, tx.public()
        if method == "POST" and len(rest) == 2 and rest[1] == "commit":
            body = self._body()
            tx = platform.commit(rest[0], self._terminal(), _b64decode(body.get("signature"), "signature"))
            return 200, tx.public()
        if method == "POST" and len(rest) == 2 and rest[1] == "abort":
            body = self._body()
            tx = platform.abort(rest[0], self._terminal(), str(body.get("reason", "")))
            return 200, tx.public()
        raise Refused("not_found", f"no {method} /api/transactions/{'/'.join(rest)}", 404)
