"""The phone's secure element before and during the download ceremony (JPKI-FACTS §8): an unprovisioned JPKI
applet that generates its own key pairs, stores the certificates the authority issued and takes its first PINs.

States: ``empty`` → ``keys_generated`` → ``certificates_stored`` → ``pins_set``. Once a PIN is set the applet is
personalised: keys and certificates can no longer change, and it answers like ``phone.toml``.

UNCERTAIN (the real command set of the phone's secure element is not public; a lab maps its own):
- GENERATE ASYMMETRIC KEY PAIR, ISO 7816-8: SELECT the key EF (``0017`` auth, ``001A`` sign), then
  ``00 46 80 00`` (generate) or ``00 46 81 00`` (read the public key), extended Le; the answer is the public key
  template ``7F49 { 81 modulus, 82 exponent }``.
- Certificates: UPDATE BINARY ``00 D6 <offset> Lc <bytes>`` on the selected EF (profile option
  ``certificate_command = "update_binary"``, the default) or PUT DATA ``00 DA <FID> Lc <whole DER>``
  (``"put_data"``). A certificate counts as stored only when its key matches the key the applet generated.
- First PINs: CHANGE REFERENCE DATA with P1 = ``01`` (new value only, no old value) on an unset PIN EF,
  ``00 24 01 80 Lc <new>``; allowed once both certificates are stored.
- An unset PIN answers VERIFY and the retry query with ``6A88``; a provisioning command after personalisation
  answers ``6985``; no secure channel is modelled (a real SE would demand one for all of this).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import Enum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.iso import tlv

from .applets import (
    AID_JPKI,
    EF_AUTH_CA,
    EF_AUTH_CERT,
    EF_AUTH_KEY,
    EF_AUTH_PIN,
    EF_SIGN_CA,
    EF_SIGN_CERT,
    EF_SIGN_KEY,
    EF_SIGN_PIN,
    EF_TOKEN,
    digits,
    sign_password_ok,
    token_info,
)
from .cardos import SW_OK, Applet, CardOptions, CardOS, ElementaryFile, FileKind, PinObject, sw
from .profile import CardProfile, ProfileError

CERT_OF_KEY = {EF_AUTH_KEY: EF_AUTH_CERT, EF_SIGN_KEY: EF_SIGN_CERT}
PIN_FIDS = (EF_AUTH_PIN, EF_SIGN_PIN)
WRITABLE = (EF_AUTH_CERT, EF_SIGN_CERT, EF_AUTH_CA, EF_SIGN_CA)
CERTIFICATE_COMMANDS = ("update_binary", "put_data")


class State(Enum):
    EMPTY = "empty"
    KEYS_GENERATED = "keys_generated"
    CERTIFICATES_STORED = "certificates_stored"
    PINS_SET = "pins_set"


@dataclass(frozen=True)
class ProvisioningOptions:
    """The ``[provisioning]`` table of a profile: which UNCERTAIN command forms this secure element takes."""

    certificate_command: str = "update_binary"
    first_pin_p1: int = 0x01


def load_options(profile: CardProfile) -> ProvisioningOptions | None:
    """The profile's ``[provisioning]`` table, or None for an already provisioned card or phone."""
    if profile.source is None:
        return None
    try:
        data = tomllib.loads(profile.source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{profile.source}: {exc}") from None
    table = data.get("provisioning")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ProfileError(f"{profile.source}: 'provisioning' must be a table")
    command = table.get("certificate_command", "update_binary")
    if command not in CERTIFICATE_COMMANDS:
        raise ProfileError(f"{profile.source}: 'provisioning.certificate_command' must be one of "
                           f"{', '.join(CERTIFICATE_COMMANDS)}, got {command!r}")
    p1 = table.get("first_pin_p1", 1)
    if not isinstance(p1, int) or isinstance(p1, bool) or not 0 <= p1 <= 0xFF:
        raise ProfileError(f"{profile.source}: 'provisioning.first_pin_p1' must be a byte")
    return ProvisioningOptions(command, p1)


@dataclass
class UnsetPin(PinObject):
    """A PIN object that holds no reference data until the first CHANGE REFERENCE DATA."""

    is_set: bool = False


def public_key_template(key: rsa.RSAPublicKey) -> bytes:
    """ISO 7816-8 public key data object: ``7F49 { 81 modulus, 82 public exponent }``."""
    numbers = key.public_numbers()
    modulus = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    exponent = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return tlv.encode(0x7F49, tlv.encode(0x81, modulus) + tlv.encode(0x82, exponent))


def _stored_certificate(content: bytes) -> x509.Certificate | None:
    if len(content) < 4 or content[0] != 0x30:
        return None
    try:
        total = tlv.der_total_length(content[:6])
        return x509.load_der_x509_certificate(content[:total])
    except ValueError:
        return None


class ProvisioningOS(CardOS):
    """The card OS of an unprovisioned phone applet, with the commands the ceremony needs."""

    def __init__(self, applet: Applet, options: ProvisioningOptions, ef_size: int,
                 card_options: CardOptions | None = None) -> None:
        super().__init__([applet], card_options)
        self.applet = applet
        self.provisioning = options
        self.ef_size = ef_size

    # -- state ------------------------------------------------------------------------------------------
    def _pins(self) -> list[UnsetPin]:
        return [self.applet.files[fid].pin for fid in PIN_FIDS]  # type: ignore[misc]

    def _certificate_matches(self, key_fid: int) -> bool:
        key = self.applet.files[key_fid].key
        cert = _stored_certificate(self.applet.files[CERT_OF_KEY[key_fid]].content)
        return key is not None and cert is not None and cert.public_key().public_numbers() == \
            key.public_key().public_numbers()  # type: ignore[union-attr]

    @property
    def state(self) -> State:
        if all(pin.is_set for pin in self._pins()):
            return State.PINS_SET
        if all(self._certificate_matches(fid) for fid in CERT_OF_KEY):
            return State.CERTIFICATES_STORED
        if all(self.applet.files[fid].key is not None for fid in CERT_OF_KEY):
            return State.KEYS_GENERATED
        return State.EMPTY

    def _personalising(self) -> bool:
        """Keys and certificates may change only while no PIN is set."""
        return not any(pin.is_set for pin in self._pins())

    # -- dispatch -----------------------------------------------------------------------------------------
    def _iso_handlers(self):
        handlers = super()._iso_handlers()
        handlers[0x46] = self._generate
        if self.provisioning.certificate_command == "update_binary":
            handlers[0xD6] = self._update_binary
        else:
            handlers[0xDA] = self._put_data
        return handlers

    def _generate(self, cmd) -> bytes:
        if cmd.p1 not in (0x80, 0x81) or cmd.p2 != 0x00:
            return sw(0x6A86)
        ef = self.current_ef
        if self.current_applet is not self.applet or ef is None:
            return sw(0x6986)
        if ef.kind is not FileKind.KEY or ef.fid not in CERT_OF_KEY:
            return sw(0x6981)
        if cmd.le is None:
            return sw(0x6700)
        if cmd.p1 == 0x80:
            if not self._personalising():
                return sw(0x6985)
            ef.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cert_ef = self.applet.files[CERT_OF_KEY[ef.fid]]
            cert_ef.content = bytes(len(cert_ef.content))  # a new key makes the old certificate worthless
        elif ef.key is None:
            return sw(0x6A88)
        template = public_key_template(ef.key.public_key())
        if cmd.le < len(template):
            return sw(0x6700)  # the template needs an extended Le (no GET RESPONSE chaining modelled)
        return template + SW_OK

    def _writable_ef(self) -> ElementaryFile | bytes:
        ef = self.current_ef
        if self.current_applet is not self.applet or ef is None:
            return sw(0x6986)
        if ef.fid not in WRITABLE:
            return sw(0x6981)
        if not self._personalising():
            return sw(0x6985)
        return ef

    def _update_binary(self, cmd) -> bytes:
        if cmd.p1 & 0x80:
            return sw(0x6A86)  # short EF identifiers: not modelled for writing
        if not cmd.data or cmd.le is not None:
            return sw(0x6700)
        ef = self._writable_ef()
        if isinstance(ef, bytes):
            return ef
        offset = (cmd.p1 << 8) | cmd.p2
        if offset + len(cmd.data) > len(ef.content):
            return sw(0x6700 if offset < len(ef.content) else 0x6B00)
        ef.content = ef.content[:offset] + cmd.data + ef.content[offset + len(cmd.data):]
        return SW_OK

    def _put_data(self, cmd) -> bytes:
        if not cmd.data or cmd.le is not None:
            return sw(0x6700)
        fid = (cmd.p1 << 8) | cmd.p2
        ef_or_sw = self.applet.files.get(fid)
        if ef_or_sw is None:
            return sw(0x6A88)
        self.current_ef = ef_or_sw
        ef = self._writable_ef()
        if isinstance(ef, bytes):
            return ef
        if len(cmd.data) > len(ef.content):
            return sw(0x6700)
        ef.content = cmd.data + bytes(len(ef.content) - len(cmd.data))
        return SW_OK

    def _verify(self, cmd) -> bytes:
        if cmd.p2 & 0x1F and self.current_applet is not None:  # 00 20 00 (80|SFI), no SELECT EF (§10)
            ef = self.current_applet.by_sfi(cmd.p2 & 0x1F)
            pin = ef.pin if ef is not None else None
        else:
            pin = self._current_pin()
        if isinstance(pin, UnsetPin) and not pin.is_set and cmd.p1 == 0x00 and cmd.p2 & 0x80:
            return sw(0x6A88)
        return super()._verify(cmd)

    def _change(self, cmd) -> bytes:
        pin = self._current_pin()
        if not (isinstance(pin, UnsetPin) and not pin.is_set):
            return super()._change(cmd)
        if cmd.p1 != self.provisioning.first_pin_p1 or cmd.p2 != 0x80:
            return sw(0x6A86)
        if not cmd.data or cmd.le is not None:
            return sw(0x6700)
        if self.state is not State.CERTIFICATES_STORED:
            return sw(0x6985)
        if not pin.policy(cmd.data):
            return sw(0x6A80)
        pin.value, pin.is_set, pin.tries_left = cmd.data, True, pin.max_tries
        return SW_OK


def blank_jpki_applet(profile: CardProfile) -> Applet:
    """The phone's JPKI applet as the secure element holds it before the ceremony: labels and access rules of
    the profile (§8), no keys, zero-filled certificate EFs, PINs without reference data."""
    size = profile.cert_ef_size
    applet = Applet("jpki", AID_JPKI)
    applet.add(ElementaryFile(EF_SIGN_CERT, content=bytes(size), read_pins=("sign",)))
    applet.add(ElementaryFile(EF_SIGN_CA, content=bytes(profile.sign_ca_ef_size)))
    applet.add(ElementaryFile(EF_TOKEN, content=token_info(profile.token_label)))
    applet.add(ElementaryFile(EF_AUTH_CERT, content=bytes(size),
                              read_pins=("auth",) if profile.auth_cert_needs_pin else ()))
    applet.add(ElementaryFile(EF_AUTH_CA, content=bytes(size)))
    applet.add(ElementaryFile(EF_AUTH_KEY, FileKind.KEY, key_pin="auth"))
    applet.add(ElementaryFile(EF_SIGN_KEY, FileKind.KEY, key_pin="sign"))
    for fid, name, policy in ((EF_AUTH_PIN, "auth", digits(4)), (EF_SIGN_PIN, "sign", sign_password_ok)):
        spec = profile.pins[name]
        applet.add(ElementaryFile(fid, FileKind.PIN, pin=UnsetPin(name, b"", spec.max_tries, policy=policy)))
    return applet


def provisioning_os(profile: CardProfile) -> ProvisioningOS | None:
    """The card OS for a profile with a ``[provisioning]`` table; None for every other profile."""
    options = load_options(profile)
    if options is None:
        return None
    if profile.kind != "phone" or profile.applets != ("jpki",):
        raise ProfileError(f"{profile.source}: [provisioning] is for a phone profile with only the jpki applet")
    return ProvisioningOS(blank_jpki_applet(profile), options, profile.cert_ef_size, profile.options)


def state_of(card_os: CardOS) -> State | None:
    """The provisioning state of a virtual card's OS, None when it is not a provisionable phone."""
    return card_os.state if isinstance(card_os, ProvisioningOS) else None
