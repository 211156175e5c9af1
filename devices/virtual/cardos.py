"""A small card operating system: applets by AID, EFs by FID or SFI, PIN objects, security state.

It is deliberately generic: the JPKI behaviour comes from how the applets are
populated (see :mod:`devices.virtual.applets`) and from :class:`CardOptions`, not from
special cases here. ``CardOS.process`` answers every byte string with a response APDU and never raises.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from harness.iso.apdu import ApduError, CommandApdu

from .signing import DIGEST_INFO_PREFIXES, max_input, pkcs1_type1_sign, split_digest_info

__all__ = ["DIGEST_INFO_PREFIXES", "Applet", "CardOS", "CardOptions", "ElementaryFile", "FileKind", "PinObject",
           "split_digest_info"]

SW_OK = b"\x90\x00"


def sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


class FileKind(Enum):
    BINARY = "binary"
    RECORD = "record"
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
    wrong_verifies: int = 0  # the card's own count of refused VERIFYs (what a lab's guard must keep low)
    changes: int = 0  # reference data replaced by CHANGE REFERENCE DATA

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
        self.wrong_verifies += 1
        self.verified = False
        return 0x63C0 | self.tries_left

    def query(self) -> int:
        # JPKI-FACTS §3 CONFIRMED, §10 (#959 real trace): 63Cx even right after a successful VERIFY; 63C0 blocked.
        return 0x63C0 | self.tries_left


@dataclass
class ElementaryFile:
    """An EF. Binary and record EFs are readable when any PIN of ``read_pins`` is verified (empty: free).

    ``sfi`` defaults to the low 5 bits of the FID (JPKI-FACTS §10, short EF identifiers).
    """

    fid: int
    kind: FileKind = FileKind.BINARY
    content: bytes = b""
    read_pins: tuple[str, ...] = ()
    pin: PinObject | None = None
    key: RSAPrivateKey | None = None
    key_pin: str | None = None
    sfi: int | None = None
    records: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.sfi is None:
            self.sfi = self.fid & 0x1F


@dataclass
class Applet:
    """A DF selected by AID, holding EFs and PIN objects."""

    name: str
    aid: bytes
    files: dict[int, ElementaryFile] = field(default_factory=dict)

    def add(self, ef: ElementaryFile) -> ElementaryFile:
        self.files[ef.fid] = ef
        return ef

    def by_sfi(self, sfi: int) -> ElementaryFile | None:
        return next((ef for ef in self.files.values() if ef.sfi == sfi), None)

    def pins(self) -> dict[str, PinObject]:
        return {ef.pin.name: ef.pin for ef in self.files.values() if ef.pin is not None}

    def reset_security(self) -> None:
        for pin in self.pins().values():
            pin.verified = False


@dataclass(frozen=True)
class CardOptions:
    """Behaviour JPKI-FACTS marks UNCERTAIN or single-source, as switches with the likeliest value by default.

    A profile sets them in its ``[options]`` table (:mod:`devices.virtual.profile`).
    """

    logical_channel_sw: int = 0x6881  # §1 SOL: CLA with a logical channel
    secure_messaging_sw: int = 0x6882  # §10 SOL: secure-messaging CLA on SELECT ...
    secure_messaging_data_sw: int = 0x69FC  # §10 SOL: ... and on READ BINARY / VERIFY (and the rest)
    read_past_end_sw: int = 0x6B00  # §2 SOL: offset at or beyond the end of the EF
    reset_security_on_applet_change: bool = True  # selecting another AP drops the PINs verified in this one
    reselect_clears_security: bool = False  # §10 OSC: its logout is a re-select; real behaviour unknown
    get_challenge: bool = True  # §4 SOL
    get_challenge_extended_sw: int = 0x6985  # §10 SOL: GET CHALLENGE with an extended Le
    select_mf: bool = True  # §10 SOL: 00 A4 00 00 → 9000 (no change) in an AP, 6A86 right after reset
    strict_digest_info: bool = False  # §10: True models a card taking only the DigestInfos of signing.py
    sign_key_by_sfi: bool = True  # §10 SOL: 80 2A 00 (80|SFI) names the key EF
    query_ok_after_verify: bool = False  # §10: SOL saw 9000 after a good VERIFY; #959 (real JPKI) 63C3

    @classmethod
    def field_types(cls) -> dict[str, type]:
        return {name: (bool if f.type in ("bool", bool) else int) for name, f in cls.__dataclass_fields__.items()}


# What the card's own code raises on a command it did not foresee: answered 6F00, as a real card's OS does.
# Nothing wider: Robot stops a run on Ctrl-C by raising its ExecutionFailed from the signal handler, at
# whatever line runs then; caught here it became a 6F00 answer and the stop was lost (a soak's Ctrl-C).
CARD_FAULTS = (ArithmeticError, LookupError, ValueError, TypeError, AttributeError, RuntimeError, AssertionError,
               struct.error)


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
        except CARD_FAULTS:
            return sw(0x6F00)

    def _process(self, raw: bytes) -> bytes:
        if len(raw) < 4:
            return sw(0x6700)
        cla, ins = raw[0], raw[1]
        if cla & 0x80 == 0 and cla & 0x03:
            return sw(self.options.logical_channel_sw)
        if cla & 0x80 == 0 and cla & 0x0C:
            return sw(self.options.secure_messaging_sw if ins == 0xA4 else self.options.secure_messaging_data_sw)
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
        handlers = {0xA4: self._select, 0xB0: self._read_binary, 0xB2: self._read_record, 0x20: self._verify,
                    0x24: self._change}
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
            return self._select_applet(cmd.data)
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
        if cmd.p1 == 0x00 and self.options.select_mf and self.current_applet is not None:
            return SW_OK  # §10 SOL: answered without changing the selection
        return sw(0x6A86)

    def _select_applet(self, aid: bytes) -> bytes:
        applet = self.applets.get(aid)
        if applet is None or not aid:
            return sw(0x6A82)  # PLATFORM-NOTES: unknown AIDs must fail, or OpenSC picks the wrong driver
        leaving = self.current_applet
        if leaving is not None and leaving is not applet and self.options.reset_security_on_applet_change:
            leaving.reset_security()
        if leaving is applet and self.options.reselect_clears_security:
            applet.reset_security()
        self.current_applet = applet
        self.current_ef = None
        return SW_OK

    def _ef_by_sfi(self, sfi: int) -> ElementaryFile | bytes:
        """The EF with short identifier ``sfi`` in the current applet, made current; or the error SW."""
        if self.current_applet is None:
            return sw(0x6986)
        ef = self.current_applet.by_sfi(sfi)
        if ef is None:
            return sw(0x6A82)
        self.current_ef = ef
        return ef

    # -- READ BINARY / READ RECORD ------------------------------------------
    def _read_binary(self, cmd: CommandApdu) -> bytes:
        if cmd.data:
            return sw(0x6700)
        if cmd.p1 & 0x80:
            # JPKI-FACTS §10 CONFIRMED: 00 B0 (80|SFI) <offset> Le reads without a SELECT EF.
            if cmd.p1 & 0x60:
                return sw(0x6A86)
            found = self._ef_by_sfi(cmd.p1 & 0x1F)
            if isinstance(found, bytes):
                return found
            ef, offset = found, cmd.p2
        else:
            ef = self.current_ef
            offset = (cmd.p1 << 8) | cmd.p2
            if ef is None:
                return sw(0x6986)
        if ef.kind is not FileKind.BINARY:
            return sw(0x6981)
        if ef.read_pins and not self._any_verified(ef.read_pins):
            return sw(0x6982)  # §10 CONFIRMED (#3169 real trace)
        if cmd.le is None:
            return sw(0x6700)
        if offset >= len(ef.content):
            return sw(self.options.read_past_end_sw)
        # JPKI-FACTS §2: Le beyond the end returns what is left with 9000.
        return ef.content[offset : offset + cmd.le] + SW_OK

    def expected_read_length(self, raw: bytes) -> int:
        """How many data bytes a READ BINARY would return now, without changing any state (for timing)."""
        try:
            cmd = CommandApdu.parse(bytes(raw))
        except ApduError:
            return 0
        if cmd.ins != 0xB0 or cmd.le is None:
            return 0
        if cmd.p1 & 0x80:
            ef = self.current_applet.by_sfi(cmd.p1 & 0x1F) if self.current_applet else None
            offset = cmd.p2
        else:
            ef, offset = self.current_ef, (cmd.p1 << 8) | cmd.p2
        if ef is None or ef.kind is not FileKind.BINARY:
            return 0
        if ef.read_pins and not self._any_verified(ef.read_pins):
            return 0
        return max(0, min(cmd.le, len(ef.content) - offset))

    def _read_record(self, cmd: CommandApdu) -> bytes:
        """``00 B2 <record> (SFI<<3 | 4) Le``: record ``P1`` of the EF named by SFI (0: current EF).

        JPKI-FACTS §10 CONFIRMED: 共通AP EF 0001 answers ``00 B2 01 0C 00``.
        """
        if cmd.data or cmd.le is None:
            return sw(0x6700)
        if cmd.p2 & 0x07 != 0x04 or cmd.p1 == 0:
            return sw(0x6A86)
        sfi = cmd.p2 >> 3
        if sfi:
            found = self._ef_by_sfi(sfi)
            if isinstance(found, bytes):
                return found
            ef: ElementaryFile | None = found
        else:
            ef = self.current_ef
        if ef is None:
            return sw(0x6986)
        if ef.kind is not FileKind.RECORD:
            return sw(0x6981)
        if ef.read_pins and not self._any_verified(ef.read_pins):
            return sw(0x6982)
        if cmd.p1 > len(ef.records):
            return sw(0x6A83)
        return ef.records[cmd.p1 - 1][: cmd.le] + SW_OK

    def _any_verified(self, names: tuple[str, ...]) -> bool:
        assert self.current_applet is not None
        pins = self.current_applet.pins()
        return any(pins[name].verified for name in names if name in pins)

    # -- VERIFY / CHANGE REFERENCE DATA -----------------------------------
    def _current_pin(self) -> PinObject | None:
        ef = self.current_ef
        return ef.pin if ef is not None and ef.kind is FileKind.PIN else None

    def _verify(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 != 0x00 or not cmd.p2 & 0x80 or cmd.p2 & 0x60:
            return sw(0x6A86)
        if cmd.le is not None:
            return sw(0x6700)
        if cmd.p2 & 0x1F:
            # JPKI-FACTS §10 CONFIRMED: 00 20 00 (80|SFI), e.g. P2=98 for the auth PIN 0018, no SELECT EF.
            if self.current_applet is None:
                return sw(0x6986)
            ef = self.current_applet.by_sfi(cmd.p2 & 0x1F)
            if ef is None:
                return sw(0x6A88)
            pin = ef.pin if ef.kind is FileKind.PIN else None
            if pin is None:
                return sw(0x6981)
        else:
            pin = self._current_pin()
            if pin is None:
                return sw(0x6A88) if self.current_ef is None else sw(0x6981)
        if not cmd.data:
            if pin.verified and self.options.query_ok_after_verify:
                return SW_OK
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
        pin.changes += 1
        return SW_OK

    # -- signing ---------------------------------------------------------
    def _sign(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 != 0x00 or not cmd.p2 & 0x80 or cmd.p2 & 0x60:
            return sw(0x6A86)
        if not cmd.data:
            return sw(0x6700)
        if cmd.p2 & 0x1F:
            if not self.options.sign_key_by_sfi:
                return sw(0x6A86)
            found = self._ef_by_sfi(cmd.p2 & 0x1F)
            if isinstance(found, bytes):
                return found
        ef = self.current_ef
        if ef is None:
            return sw(0x6986)
        if ef.kind is not FileKind.KEY or ef.key is None:
            return sw(0x6981)
        if ef.key_pin and not self._any_verified((ef.key_pin,)):
            return sw(0x6982)
        if self.options.strict_digest_info and split_digest_info(cmd.data) is None:
            return sw(0x6A80)
        if len(cmd.data) > max_input(ef.key):
            return sw(0x6A80)
        # JPKI-FACTS §10 CONFIRMED: the card pads whatever 1-245 bytes it gets (PKCS#1 v1.5 type 01) and signs.
        return pkcs1_type1_sign(ef.key, cmd.data) + SW_OK

    def _get_challenge(self, cmd: CommandApdu) -> bytes:
        if cmd.p1 or cmd.p2:
            return sw(0x6A86)
        if cmd.le is None or cmd.data:
            return sw(0x6700)
        if cmd.extended:
            return sw(self.options.get_challenge_extended_sw)
        return os.urandom(min(cmd.le, 256)) + SW_OK
