"""The phone app's HTTP client for the issuing authority (standard library only)."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import Any

from harness.http_json import UNREACHABLE, HttpJsonError, call_json

DEFAULT_TIMEOUT = 10.0


class AuthorityError(Exception):
    """The authority refused (``code`` from its answer) or gave no answer (``code`` = ``unreachable``)."""

    def __init__(self, code: str, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.body = body or {}

    @property
    def unreachable(self) -> bool:
        return self.code == "unreachable"


class AuthorityClient:
    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return call_json(f"{self.url}{path}", method, body, timeout=self.timeout)
        except HttpJsonError as exc:
            if exc.code == UNREACHABLE:
                raise AuthorityError(UNREACHABLE, f"authority at {self.url} gave no answer: {exc}") from None
            raise AuthorityError(exc.code, str(exc), exc.status, exc.body) from None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, body)

    def get(self, path: str) -> dict[str, Any]:
        return self.call("GET", path)

    def ocsp(self, kind: str, request_der: bytes) -> bytes:
        """POSTs a DER OCSP request to ``/ocsp/<kind>`` and returns the DER response."""
        request = urllib.request.Request(f"{self.url}/ocsp/{kind}", data=request_der, method="POST",
                                         headers={"Content-Type": "application/ocsp-request"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return answer.read()
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise AuthorityError("unreachable", f"authority OCSP at {self.url} gave no answer: {exc}") from None
