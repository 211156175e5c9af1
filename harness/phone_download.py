"""The phone app's side of the download ceremony (スマホ用電子証明書の搭載, JPKI-FACTS §8), over any two devices.

The app reads the card over NFC (or any reader), has the card's sign key sign the application, and talks to the
phone's secure element and to the issuing authority. Steps, in order, each resumable:

1. authority ``open`` → ceremony id and nonce
2. phone: read each key pair's public key, generating the pair only if there is none (a retry keeps the keys)
3. card: sign password VERIFY (through the PIN guard), read the sign certificate, sign the application
4. authority ``apply`` → 5. authority ``issue`` → 6. phone: store the four certificates
7. phone: set the two first PINs (skipped for a PIN already set) → 8. authority ``complete``

Every authority call carries a request id fixed per attempt and step, so a retry after a lost answer is applied
once. A wrong sign password is sent once, ends the attempt and cancels the ceremony at the authority.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devices.base import DeviceError
from harness.authority import protocol
from harness.authority.client import AuthorityClient, AuthorityError
from harness.channel import CardChannel
from harness.iso import tlv
from harness.iso.apdu import CommandApdu, ResponseApdu, sw_hex
from harness.jpki import (
    EF_AUTH_CA,
    EF_AUTH_CERT,
    EF_SIGN_CA,
    EF_SIGN_CERT,
    CardStatusError,
    JpkiClient,
    PinKind,
    VerifyResult,
)
from harness.pin_guard import PinGuard, PinGuardRefusal, PinTarget
from harness.pki import checks

KEY_EFS = {"auth": 0x0017, "sign": 0x001A}
PIN_EFS = {"auth": 0x0018, "sign": 0x001B}
PIN_TARGETS = {which: PinTarget(which, "jpki", fid) for which, fid in PIN_EFS.items()}
SW_UNSET = 0x6A88  # UNCERTAIN (provisioning.py): an unset PIN or absent key


class PhoneError(Exception):
    """The phone's secure element refused a provisioning command."""


@dataclass
class PinSource:
    """Who types a PIN and what the guard must know about the card (from the device's facts)."""

    value: Callable[[], str]
    expendable: bool
    reserve: dict[str, int]
    device: str
    configured: Callable[[str], str] | None = field(default=None, repr=False)  # the device's PIN by name


def verify_card_pin(client: JpkiClient, kind: PinKind, source: PinSource) -> VerifyResult:
    """The one place the app VERIFYs a card PIN: always through the PIN guard (tries queried first on a card that
    is not expendable). Kept small so the guard can be re-pointed in one place."""
    guard = PinGuard(client, expendable=source.expendable, reserve=source.reserve, device=source.device,
                     configured=source.configured)
    return guard.verify(kind, source.value())


class PhoneSecureElement:
    """Host side of the (UNCERTAIN) provisioning commands of ``devices/virtual/provisioning.py``."""

    def __init__(self, channel: CardChannel, certificate_command: str = "update_binary",
                 first_pin_p1: int = 0x01, device: str = "phone") -> None:
        self.jpki = JpkiClient(channel)
        self.channel = channel
        self.certificate_command = certificate_command
        self.first_pin_p1 = first_pin_p1
        self.guard = PinGuard(self.jpki, expendable=False, device=device)

    def _send(self, cmd: CommandApdu, note: str) -> ResponseApdu:
        return self.channel.transmit(cmd, note)

    def public_key(self, which: str) -> bytes:
        """The SubjectPublicKeyInfo DER of the ``auth`` or ``sign`` key pair, generated only when absent."""
        self.jpki.select_jpki()
        self.jpki.select_ef(KEY_EFS[which])
        response = self._send(CommandApdu(0x00, 0x46, 0x81, 0x00, le=65536), f"read {which} public key")
        if response.sw == SW_UNSET:
            response = self._send(CommandApdu(0x00, 0x46, 0x80, 0x00, le=65536), f"GENERATE {which} key pair")
        if not response.ok:
            raise PhoneError(f"phone refused the {which} key pair: {sw_hex(response.sw)} {response.sw_name}")
        return _spki_from_template(response.data)

    def store(self, fid: int, der: bytes) -> None:
        """Writes a certificate into its EF with UPDATE BINARY chunks or one PUT DATA (profile option)."""
        self.jpki.select_jpki()
        if self.certificate_command == "put_data":
            response = self._send(CommandApdu(0x00, 0xDA, fid >> 8, fid & 0xFF, der), f"PUT DATA {fid:04X}")
            self._check(response, f"storing EF {fid:04X}")
            return
        self.jpki.select_ef(fid)
        chunk = min(self.channel.capabilities.max_command_data, 0x7FFF)
        for offset in range(0, len(der), chunk):
            part = der[offset: offset + chunk]
            cmd = CommandApdu(0x00, 0xD6, offset >> 8, offset & 0xFF, part)
            self._check(self._send(cmd, f"UPDATE BINARY {fid:04X} at {offset}"), f"storing EF {fid:04X}")

    def pin_is_set(self, which: str) -> bool:
        self.jpki.select_jpki()
        self.jpki.select_ef(PIN_EFS[which])
        try:
            return not self.guard.pin_is_unset(PIN_TARGETS[which])
        except CardStatusError as exc:
            raise PhoneError(f"phone {which} PIN query answered {sw_hex(exc.sw)}") from None

    def set_first_pin(self, which: str, value: str) -> None:
        """CHANGE REFERENCE DATA with no old value, built by the PIN guard: sent only when :meth:`pin_is_set` just
        found the PIN unset (the trace masks its data like every INS 24)."""
        self.jpki.select_jpki()
        self.jpki.select_ef(PIN_EFS[which])
        self._check(self.guard.set_initial_pin(PIN_TARGETS[which], value, p1=self.first_pin_p1),
                    f"setting the phone {which} PIN")

    @staticmethod
    def _check(response: ResponseApdu, action: str) -> None:
        if not response.ok:
            raise PhoneError(f"{action}: {sw_hex(response.sw)} {response.sw_name}")


def _spki_from_template(data: bytes) -> bytes:
    outer = tlv.parse_one(data)
    if outer.tag != 0x7F49:
        raise PhoneError(f"public key template starts with {outer.tag:X}, expected 7F49")
    parts = {item.tag: item.value for item in outer.children()}
    if 0x81 not in parts or 0x82 not in parts:
        raise PhoneError("public key template lacks modulus (81) or exponent (82)")
    numbers = rsa.RSAPublicNumbers(int.from_bytes(parts[0x82], "big"), int.from_bytes(parts[0x81], "big"))
    return numbers.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class CeremonyResult:
    """How an attempt ended: ``ok``, ``wrong_pin``, ``pin_blocked``, ``refused``, ``card_removed``, ``phone_lost``,
    ``phone_refused``, ``card_refused``, ``guard_refused`` (the PIN guard kept a real card's tries) or
    ``authority_unreachable``; ``step`` is where it stopped."""

    outcome: str
    step: str
    ceremony: str = ""
    detail: str = ""
    tries_left: int | None = None
    certificates: dict[str, bytes] = field(default_factory=dict, repr=False)
    card_serial: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class _Stop(Exception):
    def __init__(self, outcome: str, detail: str, tries_left: int | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.tries_left = tries_left


@dataclass
class _Progress:
    ceremony: str = ""
    nonce: bytes = b""
    keys: dict[str, bytes] = field(default_factory=dict)
    card_cert: bytes = b""
    signature: bytes = b""
    applied: bool = False
    issued: dict[str, Any] = field(default_factory=dict)
    stored: bool = False
    pins_set: bool = False


class PhoneDownloadApp:
    """One app on one phone, one attempt at a time; :meth:`run` again continues the same attempt."""

    def __init__(self, card: CardChannel, phone: PhoneSecureElement, authority: AuthorityClient, *,
                 card_sign_password: PinSource, phone_pins: dict[str, str], phone_id: str) -> None:
        self.card = JpkiClient(card)
        self.phone = phone
        self.authority = authority
        self.sign_password = card_sign_password
        self.phone_pins = phone_pins
        self.phone_id = phone_id
        self.request_base = f"{phone_id}-{uuid.uuid4().hex[:12]}"
        self.progress = _Progress()
        self.finished: CeremonyResult | None = None

    def _rid(self, step: str) -> str:
        return protocol.step_request_id(self.request_base, step)

    def run(self) -> CeremonyResult:
        if self.finished is not None and self.finished.outcome in ("ok", "wrong_pin", "pin_blocked", "refused"):
            return self.finished  # a finished attempt is not run again: start a new one
        steps: list[tuple[str, Callable[[], None]]] = [
            ("open", self._open), ("keys", self._keys), ("card", self._card), ("apply", self._apply),
            ("issue", self._issue), ("store", self._store), ("pins", self._pins), ("complete", self._complete)]
        p = self.progress
        for step, action in steps:
            try:
                action()
            except _Stop as stop:
                result = CeremonyResult(stop.outcome, step, p.ceremony, str(stop), stop.tries_left,
                                        self._issued(), self._card_serial())
                self.finished = result
                return result
        self.finished = CeremonyResult("ok", "complete", p.ceremony, "", None, self._issued(), self._card_serial())
        return self.finished

    def _issued(self) -> dict[str, bytes]:
        """The certificates the authority issued in this attempt (also when a later step stopped it)."""
        issued = self.progress.issued
        return {key: protocol.unb64(issued[f"{key}_certificate"], key) for key in ("auth", "sign")} if issued else {}

    def _card_serial(self) -> str:
        cert = self.progress.card_cert
        return f"{checks.load_certificate(cert).serial_number:x}" if cert else ""

    # -- each step is safe to run again -------------------------------------------------------------------
    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.authority.post(path, body)
        except AuthorityError as exc:
            if exc.unreachable:
                raise _Stop("authority_unreachable", str(exc)) from None
            raise _Stop("refused", f"{exc.code}: {exc}") from None

    def _on_card(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except DeviceError as exc:
            raise _Stop("card_removed", f"{type(exc).__name__}: {exc}") from None
        except CardStatusError as exc:
            raise _Stop("card_refused", str(exc)) from None

    def _on_phone(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except DeviceError as exc:
            raise _Stop("phone_lost", f"{type(exc).__name__}: {exc}") from None
        except PhoneError as exc:
            raise _Stop("phone_refused", str(exc)) from None

    def _open(self) -> None:
        if self.progress.ceremony:
            return
        answer = self._call("/api/ceremonies", {"request_id": self._rid("open"), "phone_id": self.phone_id})
        self.progress.ceremony, self.progress.nonce = answer["ceremony"], protocol.unb64(answer["nonce"], "nonce")

    def _keys(self) -> None:
        for which in ("auth", "sign"):
            if which not in self.progress.keys:
                self.progress.keys[which] = self._on_phone(lambda w=which: self.phone.public_key(w))

    def _card(self) -> None:
        p = self.progress
        if p.signature:
            return
        data = protocol.application_bytes(p.ceremony, p.nonce, self.phone_id, p.keys["auth"], p.keys["sign"])

        def sign_on_card() -> tuple[bytes, bytes]:
            self.card.select_jpki()
            result = verify_card_pin(self.card, PinKind.SIGN, self.sign_password)
            if result.blocked:
                raise _Stop("pin_blocked", "the card's sign password is blocked", 0)
            if not result.ok:
                raise _Stop("wrong_pin", f"wrong sign password ({result.tries_left} tries left)", result.tries_left)
            cert = self.card.read_certificate("sign")
            response = self.card.sign("sign", checks.digest_info(data))
            return cert, response.data

        try:
            p.card_cert, p.signature = self._on_card(sign_on_card)
        except PinGuardRefusal as refusal:
            raise _Stop("guard_refused", str(refusal)) from None
        except _Stop as stop:
            if stop.outcome in ("wrong_pin", "pin_blocked"):
                self._cancel("wrong_pin")
            raise

    def _cancel(self, reason: str) -> None:
        with contextlib.suppress(AuthorityError):  # if unreachable, the authority's TTL undoes the ceremony
            self.authority.post(f"/api/ceremonies/{self.progress.ceremony}/cancel",
                                {"request_id": self._rid("cancel"), "reason": reason})

    def _apply(self) -> None:
        p = self.progress
        if p.applied:
            return
        self._call(f"/api/ceremonies/{p.ceremony}/application", {
            "request_id": self._rid("apply"), "card_certificate": protocol.b64(p.card_cert),
            "auth_public_key": protocol.b64(p.keys["auth"]), "sign_public_key": protocol.b64(p.keys["sign"]),
            "signature": protocol.b64(p.signature)})
        p.applied = True

    def _issue(self) -> None:
        if not self.progress.issued:
            self.progress.issued = self._call(f"/api/ceremonies/{self.progress.ceremony}/issue",
                                              {"request_id": self._rid("issue")})

    def _store(self) -> None:
        p = self.progress
        if p.stored:
            return
        issued = p.issued

        def write() -> None:
            if self.phone.pin_is_set("auth") or self.phone.pin_is_set("sign"):
                return  # personalisation began in an earlier run: the certificates are in
            for fid, key in ((EF_AUTH_CERT, "auth_certificate"), (EF_SIGN_CERT, "sign_certificate"),
                             (EF_AUTH_CA, "auth_ca"), (EF_SIGN_CA, "sign_ca")):
                self.phone.store(fid, protocol.unb64(issued[key], key))

        self._on_phone(write)
        p.stored = True

    def _pins(self) -> None:
        if self.progress.pins_set:
            return

        def set_pins() -> None:
            for which in ("auth", "sign"):
                if not self.phone.pin_is_set(which):
                    self.phone.set_first_pin(which, self.phone_pins[which])

        self._on_phone(set_pins)
        self.progress.pins_set = True

    def _complete(self) -> None:
        self._call(f"/api/ceremonies/{self.progress.ceremony}/complete", {"request_id": self._rid("complete")})
