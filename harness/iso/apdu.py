"""ISO/IEC 7816-4 command and response APDUs, and status words with names.

Commands are encoded to the four ISO cases in short or extended form; the
form is chosen from the lengths unless the caller forces extended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHORT_MAX_LC = 255
SHORT_MAX_LE = 256
EXTENDED_MAX_LC = 65535
EXTENDED_MAX_LE = 65536


class ApduError(ValueError):
    """A byte string that is not a well-formed APDU."""


@dataclass(frozen=True)
class CommandApdu:
    """A command APDU. ``le`` is the number of bytes expected (None: no Le field).

    ``le=256`` encodes as short Le ``00``; ``le=65536`` as extended ``00 00``.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ApduError(f"{name.upper()} must be one byte, got {value}")
        if len(self.data) > EXTENDED_MAX_LC:
            raise ApduError(f"command data of {len(self.data)} bytes exceeds {EXTENDED_MAX_LC}")
        if self.le is not None and not 1 <= self.le <= EXTENDED_MAX_LE:
            raise ApduError(f"Le must be 1..{EXTENDED_MAX_LE}, got {self.le}")

    @property
    def case(self) -> int:
        """The ISO 7816-3 case: 1 no data no Le, 2 Le only, 3 data only, 4 both."""
        if self.data:
            return 4 if self.le is not None else 3
        return 2 if self.le is not None else 1

    @property
    def is_extended(self) -> bool:
        return (
            self.extended
            or len(self.data) > SHORT_MAX_LC
            or (self.le is not None and self.le > SHORT_MAX_LE)
        )

    def to_bytes(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.case == 1:
            return header  # no body to be short or extended
        if not self.is_extended:
            body = b""
            if self.data:
                body += bytes((len(self.data),)) + self.data
            if self.le is not None:
                body += bytes((self.le % 256,))
            return header + body
        body = b"\x00"  # extended marker, present once
        if self.data:
            body += len(self.data).to_bytes(2, "big") + self.data
        if self.le is not None:
            body += (self.le % 65536).to_bytes(2, "big")
        return header + body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode any of the seven ISO encodings (case 1, 2S/2E, 3S/3E, 4S/4E)."""
        if len(raw) < 4:
            raise ApduError(f"APDU of {len(raw)} bytes is shorter than its 4-byte header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:
            lc = body[0]
            if n == 1 + lc:
                return cls(cla, ins, p1, p2, data=bytes(body[1:]))
            if n == 2 + lc:
                return cls(cla, ins, p1, p2, data=bytes(body[1 : 1 + lc]), le=body[-1] or 256)
            raise ApduError(f"short Lc={lc} does not match a body of {n} bytes")
        # body[0] == 0 and more than one byte: extended
        if n == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536, extended=True)
        if n < 3:
            raise ApduError("truncated extended length field")
        lc = int.from_bytes(body[1:3], "big")
        if lc == 0:
            raise ApduError("extended Lc of zero")
        if n == 3 + lc:
            return cls(cla, ins, p1, p2, data=bytes(body[3:]), extended=True)
        if n == 5 + lc:
            le = int.from_bytes(body[-2:], "big") or 65536
            return cls(cla, ins, p1, p2, data=bytes(body[3 : 3 + lc]), le=le, extended=True)
        raise ApduError(f"extended Lc={lc} does not match a body of {n} bytes")


@dataclass(frozen=True)
class ResponseApdu:
    """A response: data field and the two status bytes."""

    data: bytes
    sw1: int
    sw2: int
    elapsed: float = field(default=0.0, compare=False)

    @classmethod
    def parse(cls, raw: bytes, elapsed: float = 0.0) -> ResponseApdu:
        if len(raw) < 2:
            raise ApduError(f"response of {len(raw)} bytes has no status word")
        return cls(bytes(raw[:-2]), raw[-2], raw[-1], elapsed)

    @property
    def sw(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    @property
    def sw_name(self) -> str:
        return status_name(self.sw)

    def to_bytes(self) -> bytes:
        return self.data + bytes((self.sw1, self.sw2))


# Status words the harness names (ISO/IEC 7816-4 §5.6, plus the meanings the
# JPKI AP gives them, JPKI-FACTS §1-§3).
STATUS_WORDS: dict[int, str] = {
    0x9000: "OK",
    0x6281: "part of returned data may be corrupted",
    0x6282: "end of file reached before Le bytes",
    0x6283: "selected file deactivated",
    0x6581: "memory failure",
    0x6700: "wrong length",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked",
    0x6984: "reference data blocked",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6A80: "incorrect data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A86: "incorrect P1-P2",
    0x6A88: "referenced data not found",
    0x6B00: "wrong parameters (offset outside the EF)",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


def status_name(sw: int) -> str:
    """A human name for a status word, including the ranges with a count in SW2."""
    if sw in STATUS_WORDS:
        return STATUS_WORDS[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le, exact length is {sw2 or 256}"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed or queried, {sw2 & 0x0F} tries left"
    if sw1 == 0x63:
        return "warning, non-volatile memory changed"
    if sw1 == 0x64:
        return "execution error, memory unchanged"
    return "unknown status"


def sw_hex(sw: int) -> str:
    return f"{sw:04X}"


def parse_hex(text: str) -> bytes:
    """Bytes from hex with optional spaces or colons, e.g. ``"00 A4 04 0C"``."""
    cleaned = text.replace(" ", "").replace(":", "").replace("\n", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise ApduError(f"not hex: {text!r}") from exc


def to_hex(data: bytes) -> str:
    return data.hex(" ").upper()
