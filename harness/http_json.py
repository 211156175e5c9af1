"""JSON over HTTP with the standard library: the one request loop the harness's service clients share.

The relying party and the issuing authority answer ``{"error": code, "message": …}`` on refusal; a client
turns :class:`HttpJsonError` into its own error type, so callers see one vocabulary per service.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from typing import Any

UNREACHABLE = "unreachable"


class HttpJsonError(Exception):
    """A refusal (``code`` from the answer, ``status`` its HTTP status) or no answer (``code`` = ``unreachable``)."""

    def __init__(self, code: str, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.body = body or {}


def call_json(url: str, method: str, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None,
              timeout: float) -> dict[str, Any]:
    """Sends ``body`` as JSON (if given) and returns the decoded JSON answer; raises :class:`HttpJsonError`."""
    sent = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read().decode("utf-8"))
        except (ValueError, OSError):
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        raise HttpJsonError(detail.get("error", "http_error"), detail.get("message", str(exc)), exc.code,
                            detail) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise HttpJsonError(UNREACHABLE, str(exc)) from None
