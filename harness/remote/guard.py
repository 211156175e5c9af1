"""The controller's PIN guard for a ``remote:`` device: each guarded step runs on the reader host.

It offers the :class:`~harness.pin_guard.PinGuard` methods the keywords call, but never holds or sends a
PIN value: the host builds every VERIFY from its own PINs and returns the status word and the exchanges
(PIN bytes masked), which go into this run's trace as if the controller had sent them. A step that needs
a value from the controller (another profile's PIN, a PIN change) is refused in one line.
"""

from __future__ import annotations

from typing import Any

from devices.base import DeviceError
from devices.remote import DEVICE_ERRORS, RemoteReader
from harness import fixtures, pin_guard
from harness.channel import CardChannel
from harness.credentials import DeviceFacts, MissingSecret, expected_certificates
from harness.iso.apdu import ResponseApdu
from harness.jpki import CardStatusError, PinKind, VerifyResult
from harness.pin_guard import PinGuardRefusal, PinTarget

from .wire import target_to_wire

SEALED = "****"  # what the controller holds in place of a PIN: it fits no PIN format, so no local guard sends it
REFUSALS: dict[str, type[Exception]] = {
    cls.__name__: cls for cls in (PinGuardRefusal, pin_guard.NeedsExpendableCard, pin_guard.ConfiguredPinWrong,
                                  pin_guard.PinStateUnknown, pin_guard.PinFormatError, pin_guard.RawSecretRefused,
                                  MissingSecret, ValueError)
}


def remote_reader_of(channel: CardChannel | None) -> RemoteReader | None:
    reader = None if channel is None else channel.reader
    return reader if isinstance(reader, RemoteReader) else None


def remote_facts(reader: RemoteReader, lab_device: Any | None) -> DeviceFacts:
    """What the host says of its card, made stricter by the controller's inventory entry where it speaks.

    PINs stay on the host: the controller knows only which ones it has (as :data:`SEALED`)."""
    told = dict(reader.description.get("facts") or {})
    holder = str(told.get("holder") or "") or (lab_device.holder if lab_device is not None else "") or ""
    expendable = bool(told.get("expendable")) and (lab_device is None or lab_device.expendable)
    facts = DeviceFacts(kind=str(told.get("kind") or "card"), expendable=expendable, virtual=False,
                        holder=fixtures.load_holder(holder) if holder else None,
                        expected_certificates=expected_certificates(holder) if holder else {},
                        pins={str(kind): SEALED for kind in told.get("pins") or ()}, sealed=True)
    facts.pin_reserve.update({str(k): int(v) for k, v in dict(told.get("pin_reserve") or {}).items()})
    return facts


class RemotePinGuard:
    """Stands where a :class:`PinGuard` would; each method is one guarded step on the reader host."""

    def __init__(self, channel: CardChannel, reader: RemoteReader, device: str) -> None:
        self.channel, self.reader, self.device = channel, reader, device

    def _step(self, step: str, **params: Any) -> Any:
        outcome = self.reader.call("guarded", step, params)
        trace = self.channel.trace
        for command_hex, response_hex, elapsed_ms, failure in outcome.get("exchanges") or ():
            trace.command(bytes.fromhex(command_hex), "on the reader host")
            if failure:
                trace.failure(failure, float(elapsed_ms))
            else:
                trace.response(bytes.fromhex(response_hex), float(elapsed_ms))
            self.channel.apdu_count += 1
        if outcome.get("ok"):
            return outcome.get("value")
        kind, message = str(outcome.get("kind") or ""), str(outcome.get("error") or "failed on the reader host")
        if kind == "CardStatusError" and outcome.get("sw") is not None:
            sw = int(outcome["sw"])
            raise CardStatusError(message.split(" failed:")[0], ResponseApdu(b"", sw >> 8, sw & 0xFF))
        if kind in DEVICE_ERRORS:
            raise DEVICE_ERRORS[kind](message)
        raise REFUSALS.get(kind, DeviceError)(message)

    # -- the PinGuard methods the keywords use ---------------------------------------------------
    def configured(self, name: str) -> str:
        return SEALED

    def query(self, target: PinTarget, *, select: bool = True) -> int:
        return int(self._step("query", target=target_to_wire(target), select=select))

    def query_tries(self, kind: PinKind, *, select: bool = True) -> int:
        return self.query(PinTarget.of(kind), select=select)

    def verify_configured(self, kind: PinKind) -> VerifyResult:
        return VerifyResult(int(self._step("verify_configured", kind=kind.name.lower())))

    def verify_value(self, target: PinTarget, value: str, *, configured: bool | None = None,
                     select: bool = True) -> VerifyResult:
        if not configured:
            self._no_values("a VERIFY with a value given on the controller")
        return VerifyResult(int(self._step("verify_value", target=target_to_wire(target), select=select)))

    def verify(self, kind: PinKind, value: str, *, select: bool = True) -> VerifyResult:
        self._no_values("a VERIFY with a value given on the controller (a keypad entry, another profile's PIN)")
        raise AssertionError("unreachable")

    def verify_other(self, kind: PinKind, value: str) -> VerifyResult:
        return self.verify(kind, value)

    def verify_wrong(self, kind: PinKind, *, select: bool = True) -> VerifyResult:
        return VerifyResult(int(self._step("verify_wrong", kind=kind.name.lower(), select=select)))

    def prove_configured(self, target: PinTarget) -> None:
        self._step("prove_configured", target=target_to_wire(target))

    def probe_blocked(self, target: PinTarget, value: str = "0000") -> VerifyResult:
        return VerifyResult(int(self._step("probe_blocked", target=target_to_wire(target))))

    def pin_is_unset(self, target: PinTarget) -> bool:
        return bool(self._step("pin_is_unset", target=target_to_wire(target)))

    def change(self, kind: PinKind, old: str, new: str) -> ResponseApdu:
        self._no_values("a PIN change")
        raise AssertionError("unreachable")

    def change_without_verify(self, kind: PinKind, new: str) -> ResponseApdu:
        return self.change(kind, SEALED, new)

    def set_initial_pin(self, target: PinTarget, value: str, *, p1: int = 0x01) -> ResponseApdu:
        return self.change(PinKind.AUTH, SEALED, value)

    def _no_values(self, what: str) -> None:
        raise PinGuardRefusal(f"{what} is not done through the reader host of {self.device}: PIN values never "
                              "cross the wire; run it on the reader host itself")
