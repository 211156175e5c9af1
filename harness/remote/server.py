"""The reader host: one device, served over Robot's remote library protocol (XML-RPC) to a controller.

The PIN guard sits here, beside the PINs: the controller asks for a guarded step by the PIN's name
("verify the configured auth PIN", "a wrong sign password"), this host builds the VERIFY from its own
inventory and environment through :mod:`harness.pin_guard` and returns the status word and the
exchanges it made, with the PIN bytes masked. What the guard learns (a refused PIN, the counters) lives
here for as long as the host serves, whichever controller asks.
"""

from __future__ import annotations

import hmac
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from devices import DeviceError, open_device
from devices.base import Reader, ReaderCapabilities
from devices.remote import TOKEN_HEADER, remote_token
from harness import lab
from harness.channel import CardChannel
from harness.credentials import DeviceFacts, MissingSecret, card_facts_of, facts_for_device
from harness.fixtures import number_b
from harness.iso.redact import redact_text
from harness.jpki import CardStatusError, JpkiClient, PinKind
from harness.pin_guard import PIN_FORMATS, PinGuard, PinGuardRefusal
from harness.trace import ApduTrace

from .wire import mask_secret, target_from_wire

HOLDER_VALUES = {"number_a": "my_number", "visual_a": "my_number", "number_b": "b", "visual_b": "b"}
PIN_NAMES = tuple(PIN_FORMATS)


class _Recorder(Reader):
    """The host's reader, keeping each exchange of a guarded step (PIN data masked) for the controller's trace."""

    def __init__(self, reader: Reader) -> None:
        self.inner, self.uri = reader, reader.uri
        self.exchanges: list[list[Any]] = []
        self.answers_in_caller = reader.answers_in_caller
        self.bounded_by_protocol = reader.bounded_by_protocol

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self.inner.capabilities

    def wait_for_card(self, timeout: float) -> None:
        self.inner.wait_for_card(timeout)

    def power_on(self) -> bytes:
        return self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        start = time.perf_counter()
        try:
            answer = self.inner.transmit(apdu)
        except DeviceError as exc:
            self.exchanges.append([mask_secret(apdu).hex(), "", (time.perf_counter() - start) * 1000,
                                   f"{type(exc).__name__}: {exc}"])
            raise
        self.exchanges.append([mask_secret(apdu).hex(), answer.hex(), (time.perf_counter() - start) * 1000, ""])
        return answer


@dataclass
class ReaderHost:
    """The served device: opened once, with the facts (PINs, expendability, holder) of this host."""

    name: str
    reader: Reader
    facts: DeviceFacts
    recorder: _Recorder = field(init=False)
    channel: CardChannel = field(init=False)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.recorder = _Recorder(self.reader)
        self.channel = CardChannel(self.recorder, ApduTrace())

    @classmethod
    def open(cls, name: str) -> ReaderHost:
        uri, lab_device = lab.resolve(name)
        reader = open_device(uri)
        return cls(name, reader, facts_for_device(card_facts_of(reader), lab_device))

    # -- what only this host knows ---------------------------------------------------------------
    def pin_value(self, name: str) -> str:
        """The configured value of PIN ``name`` (a collation number from the holder record)."""
        if name in HOLDER_VALUES:
            holder = self.facts.holder
            if holder is None:
                raise MissingSecret(f"the holder of {self.name} is unknown on the reader host (lab inventory)")
            return holder.my_number if HOLDER_VALUES[name] == "my_number" else number_b(holder)
        return self.facts.pin(name, self.name)

    def pins_known(self) -> list[str]:
        known = []
        for name in ("auth", "sign", "text"):
            try:
                self.pin_value(name)
            except MissingSecret:
                continue
            known.append(name)
        return known

    def guard(self) -> PinGuard:
        return PinGuard(JpkiClient(self.channel), expendable=self.facts.expendable, reserve=self.facts.pin_reserve,
                        device=self.name, configured=self.pin_value)

    # -- the keywords --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        caps = self.reader.capabilities
        holder = self.facts.holder
        return {"device": self.name, "capabilities": {
            "extended_apdu": caps.extended_apdu, "max_command_data": caps.max_command_data,
            "max_response": caps.max_response, "contactless": caps.contactless, "pin_pad": caps.pin_pad,
            "details": dict(caps.details)},
            "facts": {"kind": self.facts.kind, "expendable": self.facts.expendable,
                      "holder": holder.record if holder is not None else "",
                      "pin_reserve": dict(self.facts.pin_reserve),
                      "pins": self.pins_known()}}

    def wait_for_card(self, timeout: float) -> None:
        self.reader.wait_for_card(float(timeout))

    def power_on(self) -> str:
        return self.reader.power_on().hex()

    def power_off(self) -> None:
        self.reader.power_off()

    def transmit(self, apdu_hex: str) -> str:
        return self.reader.transmit(bytes.fromhex(apdu_hex)).hex()

    def guarded(self, step: str, params: dict[str, Any]) -> dict[str, Any]:
        """One step of the PIN guard, by name; never fails on the wire: the outcome travels as data."""
        self.recorder.exchanges = []
        outcome: dict[str, Any] = {"ok": True, "value": None}
        try:
            outcome["value"] = GUARD_STEPS[step](self.guard(), params)
        except (PinGuardRefusal, CardStatusError, DeviceError, MissingSecret, ValueError, KeyError) as exc:
            outcome.update(ok=False, kind=type(exc).__name__, error=redact_text(str(exc)).splitlines()[0],
                           sw=getattr(exc, "sw", None))
        outcome["exchanges"] = self.recorder.exchanges
        return outcome

    def close(self) -> None:
        self.channel.close()
        self.reader.close()


def _target(params: dict[str, Any]):
    return target_from_wire(params["target"])


GUARD_STEPS: dict[str, Callable[[PinGuard, dict[str, Any]], Any]] = {
    "query": lambda g, p: g.query(_target(p), select=bool(p.get("select", True))),
    "verify_configured": lambda g, p: g.verify_configured(PinKind.named(p["kind"])).sw,
    "verify_value": lambda g, p: g.verify_value(_target(p), g.configured(_target(p).name), configured=True,
                                                select=bool(p.get("select", True))).sw,
    "verify_wrong": lambda g, p: g.verify_wrong(PinKind.named(p["kind"]), select=bool(p.get("select", True))).sw,
    "prove_configured": lambda g, p: g.prove_configured(_target(p)),
    "probe_blocked": lambda g, p: g.probe_blocked(_target(p)).sw,
    "pin_is_unset": lambda g, p: g.pin_is_unset(_target(p)),
}
KEYWORDS = ("describe", "wait_for_card", "power_on", "power_off", "transmit", "guarded", "close")


class RemoteLibrary:
    """Robot's remote library protocol over one :class:`ReaderHost` (calls one at a time: one card)."""

    def __init__(self, host: ReaderHost) -> None:
        self.host = host

    def get_keyword_names(self) -> list[str]:
        return list(KEYWORDS)

    def get_keyword_arguments(self, name: str) -> list[str]:
        return ["*args"]

    def get_keyword_documentation(self, name: str) -> str:
        return "" if name not in KEYWORDS else (getattr(ReaderHost, name).__doc__ or "").strip()

    def run_keyword(self, name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
        if name not in KEYWORDS:
            return {"status": "FAIL", "error": f"no keyword {name!r} on this reader host", "hil_error": "ValueError"}
        if name == "close":
            return {"status": "PASS", "return": None}  # the host keeps its reader for the next controller
        with self.host.lock:
            try:
                value = getattr(self.host, name)(*args)
            except Exception as exc:  # every failure travels as one line; the host keeps serving
                message = redact_text(str(exc) or type(exc).__name__).splitlines()[0]
                return {"status": "FAIL", "error": message, "hil_error": type(exc).__name__}
        return {"status": "PASS", "return": value}


class _TokenHandler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/", "/RPC2")
    protocol_version = "HTTP/1.1"  # keep-alive: a new TCP connection per APDU would cost more than the APDU
    token = ""

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        offered = self.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(offered.encode("utf-8"), self.token.encode("utf-8")):
            self.send_error(403, "token refused")
            return False
        return True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per APDU would drown the host's console."""


class _Server(ThreadingMixIn, SimpleXMLRPCServer):
    """A thread per connection (a kept-alive controller must not block the next); the host's lock
    still lets one call at a time reach the card."""

    daemon_threads = True
    allow_reuse_address = True


def make_server(host: ReaderHost, address: str, port: int, token: str) -> SimpleXMLRPCServer:
    handler = type("HostHandler", (_TokenHandler,), {"token": token})
    server = _Server((address, port), requestHandler=handler, allow_none=True, logRequests=False)
    server.register_instance(RemoteLibrary(host))
    return server


def serve(device: str, address: str, port: int, announce: Callable[[str], None] = print) -> int:
    """``hil remote serve``: open ``device``, serve it until SIGTERM or Ctrl-C, then close it."""
    token = remote_token("hil remote serve")
    host = ReaderHost.open(device)
    try:
        server = make_server(host, address, port, token)
    except OSError as exc:
        host.close()
        raise OSError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    bound = server.server_address
    announce(f"serving {device} on remote:http://{bound[0]}:{bound[1]}")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        host.close()
    return 0
