"""The HTTP client a terminal (and a test) uses to talk to the relying party. Standard library only."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from harness.http_json import UNREACHABLE, HttpJsonError, call_json

DEFAULT_TIMEOUT = 10.0


class RpError(Exception):
    """The relying party refused (``code`` from its answer) or could not be reached (``code`` = ``unreachable``)."""

    def __init__(self, code: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class RelyingPartyClient:
    """One terminal's view of the platform; ``session`` is set by :meth:`login` and cleared by :meth:`logout`."""

    def __init__(self, url: str, terminal_id: str, kind: str = "", *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.terminal_id = terminal_id
        self.kind = kind
        self.timeout = timeout
        self.session: str | None = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"X-Terminal-Id": self.terminal_id}
        if self.kind:
            headers["X-Terminal-Kind"] = self.kind
        if self.session:
            headers["Authorization"] = f"Bearer {self.session}"
        try:
            return call_json(f"{self.url}{path}", method, body, headers=headers, timeout=self.timeout)
        except HttpJsonError as exc:
            if exc.code == UNREACHABLE:
                raise RpError(UNREACHABLE, f"relying party at {self.url} unreachable: {exc}") from None
            raise RpError(exc.code, str(exc), exc.status) from None

    # -- authentication ----------------------------------------------------------------------
    def challenge(self, service: str) -> tuple[str, bytes]:
        answer = self.call("POST", "/api/challenges", {"service": service})
        return answer["challenge_id"], base64.b64decode(answer["challenge"])

    def login(self, challenge_id: str, certificate: bytes, signature: bytes) -> dict[str, Any]:
        answer = self.call("POST", "/api/sessions", {"challenge_id": challenge_id, "certificate": _b64(certificate),
                                                     "signature": _b64(signature)})
        self.session = answer["session"]
        return answer

    def logout(self) -> None:
        if self.session:
            try:
                self.call("POST", "/api/logout", {})
            finally:
                self.session = None

    # -- services -------------------------------------------------------------------------------
    def health_records(self) -> list[dict[str, Any]]:
        return self.call("GET", "/api/health-records")["records"]

    def eligibility(self) -> dict[str, Any]:
        return self.call("POST", "/api/eligibility", {})

    def begin(self, service: str, params: dict[str, Any]) -> tuple[str, str, bytes]:
        """``(tx id, summary, confirmation bytes the card must sign)``."""
        answer = self.call("POST", "/api/transactions", {"service": service, "params": params})
        return answer["tx"], answer["summary"], base64.b64decode(answer["confirm"])

    def commit(self, tx: str, signature: bytes) -> dict[str, Any]:
        return self.call("POST", f"/api/transactions/{tx}/commit", {"signature": _b64(signature)})

    def abort(self, tx: str, reason: str) -> dict[str, Any]:
        return self.call("POST", f"/api/transactions/{tx}/abort", {"reason": reason})

    def transaction(self, tx: str) -> dict[str, Any]:
        return self.call("GET", f"/api/transactions/{tx}")

    # -- inspection (tests) -----------------------------------------------------------------------
    def audit(self, **filters: str | int) -> list[dict[str, Any]]:
        query = urlencode({k: v for k, v in filters.items() if v not in (None, "")})
        return self.call("GET", f"/api/audit{'?' + query if query else ''}")["records"]

    def state(self) -> dict[str, Any]:
        return self.call("GET", "/api/state")
