"""The phone app's HTTP client for the issuing authority (standard library only)."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

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
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read().decode("utf-8"))
            except (ValueError, OSError):
                detail = {}
            raise AuthorityError(detail.get("error", "http_error"), detail.get("message", str(exc)), exc.code,
                                 detail) from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            raise AuthorityError("unreachable", f"authority at {self.url} gave no answer: {exc}") from None

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
