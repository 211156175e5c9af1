"""A small card operating system: applets by AID, EFs by FID, PIN objects, security state.

It is deliberately generic: the JPKI behaviour comes from how the applets are
populated (see :mod:`devices.virtual.applets`), not from special cases here.
``CardOS.process`` answers every byte string with a response APDU and never raises.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from harness.apdu import ApduError, CommandApdu

SW_OK = b"\x90\x00"


def sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


class FileKind(Enum):
    BINARY = "binary"
    PIN = "pin"
    KEY = "key"


@dataclass
class PinObject:
    """Reference data with a retry counter. ``verified`` is volatile; the counter is not."""

    name: str
    value: bytes
    max_tries: int
    tries_left: int = -1
    verified: bool = False
    policy: Callable[[bytes], bool] = field(default=lambda value: True, repr=False)

    def __post_init__(self) -> None:
        if self.tries_left < 0:
            self.tries_left = self.max_tries

    @property
    def blocked(self) -> bool:
        return self.tries_left == 0

    def verify(self, candidate: bytes) -> int:
        """Compare raw bytes (JPKI-FACTS §3: the card does no case folding) and return the SW."""
        if self.blocked:
            return 0x6984
        if candidate == self.value:
            self.tries_left = self.max_tries
            self.verified = True
            return 0x9000
        self.tries_left -= 1
        self.verified = False
        return 0x63C0 | self.tries_left

    def query(self) -> int:
        # JPKI-FACTS §3 CONFIRMED: 63Cx even right after a successful VERIFY; 63C0 when blocked.
        return 0x63C0 | self.tries_left


@dataclass
class ElementaryFile:
    """An EF. Binary EFs are readable when any PIN named in ``read_pins`` is verified (empty: free)."""

    fid: int
    kind: FileKind = FileKind.BINARY
    content: bytes = b""
    read_pins: tuple[str, ...] = ()
    pin: PinObject | None = None
    key: RSAPrivateKey | None = None
    key_pin: str | None = None
    sfi: int | None = None


@dataclass
class Applet:
    """A DF selected by AID, holding EFs and PIN objects."""

    name: str
    aid: bytes
    files: dict[int, ElementaryFile] = field(default_factory=dict)

    def add(self, ef: ElementaryFile) -> ElementaryFile:
        self.files[ef.fid] = ef
        return ef

    def pins(self) -> dict[str, PinObject]:
        return {ef.pin.name: ef.pin for ef in self.files.values() if ef.pin is not None}

    def reset_security(self) -> None:
        for pin in self.pins().values():
            pin.verified = False


_DIGEST_INFO_PREFIXES: dict[bytes, hashes.HashAlgorithm] = {
    bytes.fromhex("3021300906052B0E03021A05000414"): hashes.SHA1(),
    bytes.fromhex("3031300D060960864801650304020105000420"): hashes.SHA256(),
    bytes.fromhex("3041300D060960864801650304020205000430"): hashes.SHA384(),
    bytes.fromhex("3051300D060960864801650304020305000440"): hashes.SHA512(),
}


def split_digest_info(data: bytes) -> tuple[hashes.HashAlgorithm, bytes] | None:
    """The hash algorithm and hash of a DER DigestInfo, or None if it is not one we know."""
    for prefix, algorithm in _DIGEST_INFO_PREFIXES.items():
        if data.startswith(prefix) and len(data) == len(prefix) + algorithm.digest_size:
            return algorithm, data[len(prefix) :]
    return None


@dataclass
class CardOptions:
    """Behaviour that JPKI-FACTS marks UNCERTAIN, as switches with the likeliest value by default."""

    logical_channel_sw: int = 0x6881  # SOL: CLA with a logical channel
    secure_messaging_sw: int = 0x6882  # SOL: CLA with secure messaging bits
    read_past_end_sw: int = 0x6B00  # SOL: offset at or beyond the end of the EF
    reset_security_on_applet_change: bool = True
    get_challenge: bool = True


class CardOS:
    """Dispatches command APDUs to the selected applet and EF."""

    def __init__(self, applets: list[Applet], options: CardOptions | None = None) -> None:
        self.applets = {applet.aid: applet for applet in applets}
        self.options = options or CardOptions()
        self.current_applet: Applet | None = None
        self.current_ef: ElementaryFile | None = None

    # -- lifecycle -------------------------------------------------------
    def reset(self) -> None:
        """Power-on or warm reset: nothing selected, every PIN unverified, counters kept."""
        self.current_applet = None
        self.current_ef = None
        for applet in self.applets.values():
            applet.reset_security()

    def pin(self, applet_name: str, pin_name: str) -> PinObject:
        for applet in self.applets.values():
            if applet.name == applet_name:
                return applet.pins()[pin_name]
        raise KeyError(f"{applet_name}/{pin_name}")

    # -- dispatch -------------------------------------------------------
    def process(self, raw: bytes) -> bytes:
        try:
            return self._process(bytes(raw))
        except Exception:
            return sw(0x6F00)

    def _process(self, raw: bytes) -> bytes:
        if len(raw) < 4:
            return sw(0x6700)
        cla, ins = raw[0], raw[1]
        if cla & 0x80 == 0 and cla & 0x03:
            return sw(self.options.logical_channel_sw)
        if cla & 0x80 == 0 and cla & 0x0C:
            return sw(self.options.secure_messaging_sw)
        handlers = {0x00: self._iso_handlers, 0x80: self._proprietary_handlers}.get(cla)
        if handlers is None:
            return sw(0x6E00)
        handler = handlers().get(ins)
        if handler is None:
            return sw(0x6D00)
        try:
            cmd = CommandApdu.parse(raw)
        except ApduError:
            return sw(0x6700)
        return handler(cmd)

    def _iso_handlers(self) -> dict[int, Callable[[CommandApdu], bytes]]:
        handlers = {0xA4: self._select, 0xB0: self._read_binary, 0x20: self._verify, 0x24: self._change}
        if self.options.get_challenge:
            handlers[0x84] = self._get_challenge
        return handlers

    def _proprietary_handlers(self) -> dict[int, Callable[[CommandApdu], bytes]]:
        return {0x2A: self._sign}

    # -- SELECT ---------------------------------------------------------
    def _select(self, cmd: CommandApdu) -> bytes:
        if cmd.p2 not in (0x0C, 0x00):
            return sw(0x6A86)
        if cmd.p1 == 0x04:
            applet = self.applets.get(cmd.data)
            if applet is None or not cmd.data:
                return sw(0x6A82)  # PLATFORM-NOTES: unknown AIDs must fail, or OpenSC picks the wrong driver
            leaving = self.current_applet
            if leaving is not None and leaving is not applet and self.options.reset_security_on_applet_change:
                leaving.reset_security()
            self.current_applet = applet
            self.current_ef = None
            return SW_OK
        if cmd.p1 == 0x02:
            if len(cmd.data) != 2:
                return sw(0x6700)
            if self.current_applet is None:
                return sw(0x6A82)
            ef = self.current_applet.files.get(int.from_bytes(cmd.data, "big"))
            if ef is None:
                return sw(0x6A82)
            self.current_ef = ef
            return SW_OK
        return sw(0x6A86)

    # -- READ BINARY ------------------------------------------------------
    def _read_binary(self, cmd: CommandApdu) -> bytes:
        if cmd.data:
            return sw(0x6700)
        if cmd.p1 & 0x80:
            if cmd.p1 & 0x60:
                return sw(0x6A86)
            if self.current_applet is None:
                return sw(0x6986)
            ef = next((f for f in self.current_applet.files.values() if f.sfi == cmd.p1 & 0x1F), None)
            if ef is None:
                return sw(0x6A82)
            self.current_ef = ef
            offset = cmd.p2
        else:
            ef = self.current_ef
            offset = (cmd.p1 << 8) | cmd.p2
            if ef is None:
                return sw(0x6986)
        if ef.kind is not FileKind.BINARY:
            return sw(0x6981)
        if ef.read_pins and not self._any_verified(ef.read_pins):
            return sw(0x6982)
        if cmd.le is None:
            return sw(0x6700)
        if offset >= len(ef.content):
            return sw(self.options.read_past_end_sw)
        # JPKI-FACTS §2: Le beyond the end returns what is left with 9000.
        return ef.content[offset : offset + cmd.le] + SW_OK

    def _any_verified(self, names: tuple[str, ...]) -> bool:
        assert self.current_applet is not None
        pins = self.current_applet.pins()
        return any(pins[name].verified for name in names if name in pins)

    # -- VERIFY / CHANGE REFERENCE DATA -----------------------------------
    def _current_pin(self) -> PinObject | None:
        ef = self.current_ef
        return ef.pin if ef is not None and ef.kind is FileKind.PIN else None

    def _verify(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return sw(0x6A86)
        if cmd.le is not None:
            return sw(0x6700)
        pin = self._current_pin()
        if pin is None:
            return sw(0x6A88) if self.current_ef is None else sw(0x6981)
        if not cmd.data:
            return sw(pin.query())
        return sw(pin.verify(cmd.data))

    def _change(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 != 0x01 or cmd.p2 != 0x80:
            return sw(0x6A86)
        if not cmd.data or cmd.le is not None:
            return sw(0x6700)
        pin = self._current_pin()
        if pin is None:
            return sw(0x6A88) if self.current_ef is None else sw(0x6981)
        if pin.blocked:
            return sw(0x6984)
        if not pin.verified:
            return sw(0x6982)
        if not pin.policy(cmd.data):
            return sw(0x6A80)
        pin.value = cmd.data
        return SW_OK

    # -- signing ---------------------------------------------------------
    def _sign(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 != 0x00 or cmd.p2 != 0x80:
            return sw(0x6A86)
        if not cmd.data:
            return sw(0x6700)
        ef = self.current_ef
        if ef is None:
            return sw(0x6986)
        if ef.kind is not FileKind.KEY or ef.key is None:
            return sw(0x6981)
        if ef.key_pin and not self._any_verified((ef.key_pin,)):
            return sw(0x6982)
        parsed = split_digest_info(cmd.data)
        if parsed is None:
            return sw(0x6A80)
        algorithm, digest = parsed
        # JPKI-FACTS §4: the card pads the host's DigestInfo with PKCS#1 v1.5 type 01.
        signature = ef.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
        return signature + SW_OK

    def _get_challenge(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw(0x6A86)
        if cmd.le is None or cmd.data:
            return sw(0x6700)
        return os.urandom(min(cmd.le, 256)) + SW_OK
