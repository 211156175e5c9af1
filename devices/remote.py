"""``remote:http://HOST:PORT``: a reader on another machine, served there by ``hil remote serve``.

The reader host speaks Robot Framework's remote library protocol (XML-RPC: ``get_keyword_names``,
``run_keyword``) with a small device-level vocabulary (describe, wait for card, power, transmit, and the
guarded PIN steps), so the suites run unchanged on the controller and only bytes cross the wire. Every
request carries the shared token of ``HIL_REMOTE_TOKEN`` in a header; the host refuses any other.

A failure on the host comes back as the same typed, one-line device error a local backend raises; a
host that stops answering is :class:`~devices.base.DeviceGone` naming it, so that test fails and the run
goes on. PIN values never travel: VERIFY with data is built on the host (``harness.remote``).
"""

from __future__ import annotations

import http.client
import os
import socket
import xmlrpc.client
from typing import Any
from urllib.parse import urlsplit

from . import base
from .base import DeviceError, DeviceGone, Reader, ReaderCapabilities
from .uri import BadDeviceUri, DeviceUri, Option

TOKEN_ENV = "HIL_REMOTE_TOKEN"
TOKEN_HEADER = "X-HIL-Token"
DEFAULT_TIMEOUT = 90.0  # above the channel's 60 s backstop: the controller's deadline decides first
OPTIONS = (Option("timeout", "float", low=0.1, high=3600),)
# Errors a host may name, mapped back to the local classes (anything else: RemoteFailure with its kind).
DEVICE_ERRORS: dict[str, type[DeviceError]] = {
    cls.__name__: cls for cls in (base.UnknownDevice, base.BackendUnavailable, base.NoReader, base.NoCard,
                                  base.CardRemoved, base.DeviceTimeout, base.DeviceGone, base.DeviceBusy,
                                  base.ProtocolError, DeviceError)
}


class RemoteRefused(DeviceError):
    """The reader host refused the request (no or a wrong token)."""


class RemoteFailure(DeviceError):
    """A step on the reader host failed with an error that is not a device error; ``kind`` names its class."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def remote_token(side: str) -> str:
    """The shared token; refuses, in one line, to go on without one."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteRefused(f"{side}: set {TOKEN_ENV} (the same shared token on the controller and the reader host)")
    return token


def parse_remote_uri(uri: str) -> tuple[str, dict[str, Any]]:
    """``remote:http://127.0.0.2:8270[?timeout=S]`` → (endpoint URL, options), refusing anything else."""
    parsed = DeviceUri.parse(uri)
    values = parsed.typed(OPTIONS, "for remote:")
    parts = urlsplit(parsed.body)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise BadDeviceUri(f"{uri}: a reader host is remote:http://HOST:PORT (the host and port hil remote serve "
                           "listens on)")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise BadDeviceUri(f"{uri}: a reader host address has no path; options go after '?'")
    return f"http://{parts.hostname}:{parts.port}/", values


class _TokenTransport(xmlrpc.client.Transport):
    def __init__(self, token: str, timeout: float) -> None:
        super().__init__()
        self._token, self._timeout = token, timeout

    def make_connection(self, host):  # type: ignore[no-untyped-def]
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection

    def send_headers(self, connection, headers):  # type: ignore[no-untyped-def]
        super().send_headers(connection, headers)
        connection.putheader(TOKEN_HEADER, self._token)


class RemoteReader(Reader):
    """The controller's side of a reader host: each call is one remote keyword."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.endpoint, options = parse_remote_uri(uri)
        token = remote_token(uri)
        self._proxy = xmlrpc.client.ServerProxy(
            self.endpoint, transport=_TokenTransport(token, float(options.get("timeout", DEFAULT_TIMEOUT))),
            allow_none=True)
        self.description: dict[str, Any] = self.call("describe")
        caps = dict(self.description.get("capabilities") or {})
        self._capabilities = ReaderCapabilities(
            extended_apdu=bool(caps.get("extended_apdu")), max_command_data=int(caps.get("max_command_data", 255)),
            max_response=int(caps.get("max_response", 256)), contactless=bool(caps.get("contactless")),
            pin_pad=bool(caps.get("pin_pad")),
            details={**{str(k): str(v) for k, v in dict(caps.get("details") or {}).items()}, "host": self.endpoint})

    # -- the wire --------------------------------------------------------------------------------
    def call(self, keyword: str, *args: Any) -> Any:
        """Runs ``keyword`` on the host (Robot's remote protocol) and returns its value, or raises the
        device error it reported."""
        try:
            result = self._proxy.run_keyword(keyword, list(args), {})
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 403:
                raise RemoteRefused(f"{self.uri}: the reader host refused the token (set the same "
                                    f"{TOKEN_ENV} on both sides)") from None
            raise DeviceGone(f"{self.uri}: the reader host answered HTTP {exc.errcode} {exc.errmsg}") from None
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, socket.timeout | TimeoutError):
                raise base.DeviceTimeout(f"{self.uri}: the reader host did not answer in time") from None
            raise DeviceGone(f"{self.uri}: the reader host went away ({reason.splitlines()[0]})") from None
        if not isinstance(result, dict):
            raise base.ProtocolError(f"{self.uri}: the reader host answered {type(result).__name__}, not a result")
        if result.get("status") == "PASS":
            return result.get("return")
        kind = str(result.get("hil_error") or "")
        message = str(result.get("error") or "failed on the reader host").splitlines()[0]
        if kind in DEVICE_ERRORS:
            raise DEVICE_ERRORS[kind](message)
        raise RemoteFailure(message, kind)

    # -- Reader ----------------------------------------------------------------------------------
    @property
    def capabilities(self) -> ReaderCapabilities:
        return self._capabilities

    def wait_for_card(self, timeout: float) -> None:
        self.call("wait_for_card", float(timeout))

    def power_on(self) -> bytes:
        return bytes.fromhex(str(self.call("power_on")))

    def transmit(self, apdu: bytes) -> bytes:
        return bytes.fromhex(str(self.call("transmit", apdu.hex())))

    def power_off(self) -> None:
        self.call("power_off")

    def release(self) -> None:
        """The host keeps its reader open for the next controller; nothing to release here."""
        self._proxy("close")()

    def describe(self) -> str:
        return f"{self.uri} ({self.description.get('device', '?')} on the reader host)"


def open_remote(uri: str) -> RemoteReader:
    return RemoteReader(uri)


def check_remote_uri(uri: str) -> None:
    parse_remote_uri(uri)


def discover() -> list[base.DeviceInfo]:
    return []  # reader hosts are named in the inventory; there is nothing to scan for
