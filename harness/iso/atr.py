"""Answer-to-Reset parsing (ISO/IEC 7816-3 §8) and the ATR a PC/SC reader synthesises for a contactless card.

Transport requirements judge a reader by what it reports: which protocols the
card offers, whether the check byte holds, what the historical bytes say (card
capabilities such as extended Lc/Le), and for contactless cards the ATQB or ATS
content that PC/SC part 3 folds into ``3B 8n 80 01 …``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.iso.apdu import to_hex

MAX_ATR_LENGTH = 33  # TS + 32 bytes (ISO/IEC 7816-3 §8.2.1)
PCSC_STORAGE_RID = bytes.fromhex("A000000306")  # PC/SC part 3 registered application provider


class AtrError(ValueError):
    """An ATR that is not well formed; ``str()`` is one line naming the ATR and the fault."""


@dataclass(frozen=True)
class InterfaceGroup:
    """The interface bytes TAi, TBi, TCi, TDi of one group (None when absent)."""

    index: int
    ta: int | None = None
    tb: int | None = None
    tc: int | None = None
    td: int | None = None

    @property
    def protocol(self) -> int | None:
        """The protocol TDi announces for the following group (low nibble), if TDi is present."""
        return None if self.td is None else self.td & 0x0F


@dataclass(frozen=True)
class ContactlessAtr:
    """What PC/SC part 3 packs into the historical bytes of a contactless card's ATR.

    ``kind`` is ``"B"`` (ATQB application data + protocol info + MBLI), ``"A"``
    (the ATS historical bytes) or ``"storage"`` (a card without ISO 14443-4).
    Telling B from A needs a heuristic: exactly 8 historical bytes, a protocol-type
    nibble of 0 or 1 and a zero low nibble in the MBLI byte mean Type B.
    """

    kind: str
    app_data: bytes = b""
    protocol_info: bytes = b""
    mbli: int | None = None
    ats_historical: bytes = b""

    @property
    def max_frame_size(self) -> int | None:
        """Type B: the maximum frame size the card accepts (from ATQB protocol info, byte 2 high nibble)."""
        if self.kind != "B" or len(self.protocol_info) < 2:
            return None
        sizes = (16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096)
        code = self.protocol_info[1] >> 4
        return sizes[code] if code < len(sizes) else None

    @property
    def fwi(self) -> int | None:
        """Type B: the frame waiting integer (protocol info byte 3, high nibble)."""
        return self.protocol_info[2] >> 4 if self.kind == "B" and len(self.protocol_info) >= 3 else None

    @property
    def fwt_ms(self) -> float | None:
        """Frame waiting time: 256 × 16 / fc × 2^FWI (fc = 13.56 MHz)."""
        fwi = self.fwi
        return None if fwi is None else 4096 / 13.56e6 * (1 << fwi) * 1000


@dataclass(frozen=True)
class Atr:
    """A parsed ATR. ``protocols`` lists the transmission protocols offered (T=15 is not one)."""

    raw: bytes
    convention: str  # "direct" (TS 3B) or "inverse" (TS 3F)
    groups: tuple[InterfaceGroup, ...]
    historical: bytes
    tck: int | None
    protocols: tuple[int, ...]
    compact_tlv: tuple[tuple[int, bytes], ...] = field(default=())
    contactless: ContactlessAtr | None = None

    @property
    def tck_ok(self) -> bool | None:
        """True/False when a TCK is present (XOR of T0…TCK is zero), None when the ATR needs none."""
        if self.tck is None:
            return None
        check = 0
        for byte in self.raw[1:]:
            check ^= byte
        return check == 0

    @property
    def hex(self) -> str:
        return to_hex(self.raw)

    def offers(self, protocol: int | str) -> bool:
        """Whether the card offers ``protocol`` (``1``, ``"T=1"``, ``"T1"``; ``"T=CL"`` means contactless)."""
        text = str(protocol).upper().replace(" ", "")
        if text in ("T=CL", "TCL", "CL"):
            return self.contactless is not None
        return int(text.removeprefix("T").removeprefix("=")) in self.protocols

    @property
    def card_capabilities(self) -> bytes | None:
        """The value of compact-TLV tag 7 (card capabilities, ISO/IEC 7816-4 §12.1.1.9), if present."""
        for tag, value in self.compact_tlv:
            if tag == 0x7:
                return value
        return None

    @property
    def extended_apdu(self) -> bool | None:
        """Whether the card declares extended Lc/Le (card capabilities third byte, bit 7); None if silent."""
        caps = self.card_capabilities
        if caps is None or len(caps) < 3:
            return None
        return bool(caps[2] & 0x40)

    @property
    def interface_summary(self) -> str:
        """One line like ``TB1=00 TC1=FF TD1=81 TD2=31 TA3=FE TB3=45`` for logs."""
        parts = []
        for group in self.groups:
            for name in ("ta", "tb", "tc", "td"):
                value = getattr(group, name)
                if value is not None:
                    parts.append(f"{name.upper()}{group.index}={value:02X}")
        return " ".join(parts)

    def describe(self) -> str:
        protocols = ", ".join(f"T={t}" for t in self.protocols) or "none"
        extra = f", contactless type {self.contactless.kind}" if self.contactless else ""
        tck = {None: "no TCK", True: "TCK ok", False: "TCK WRONG"}[self.tck_ok]
        return (f"{self.hex}: {self.convention} convention, protocols {protocols}{extra}, "
                f"{len(self.historical)} historical bytes, {tck}")


def _fail(raw: bytes, reason: str) -> AtrError:
    return AtrError(f"malformed ATR {to_hex(raw) or '(empty)'}: {reason}")


def _compact_tlv(historical: bytes) -> tuple[tuple[int, bytes], ...]:
    """Compact-TLV objects after a category indicator of 0x80 (ISO/IEC 7816-4 §12.1.1); () if none."""
    if not historical or historical[0] != 0x80:
        return ()
    objects, position = [], 1
    while position < len(historical):
        tag, length = historical[position] >> 4, historical[position] & 0x0F
        value = historical[position + 1 : position + 1 + length]
        if len(value) < length:
            break  # a truncated object: keep what parsed, the caller still has the raw bytes
        objects.append((tag, bytes(value)))
        position += 1 + length
    return tuple(objects)


def _contactless(historical: bytes) -> ContactlessAtr:
    if len(historical) >= 8 and historical[:2] == b"\x80\x4f" and historical[3:8] == PCSC_STORAGE_RID:
        return ContactlessAtr("storage", ats_historical=historical)
    if (len(historical) == 8 and historical[0] != 0x80 and historical[5] & 0x0F in (0, 1)
            and historical[7] & 0x0F == 0):
        return ContactlessAtr("B", app_data=historical[:4], protocol_info=historical[4:7], mbli=historical[7] >> 4)
    return ContactlessAtr("A", ats_historical=historical)


def parse_atr(raw: bytes | str, *, strict: bool = False) -> Atr:
    """Parse an ATR given as bytes or hex. ``strict`` also rejects a wrong TCK (else see ``Atr.tck_ok``)."""
    if isinstance(raw, str):
        try:
            raw = bytes.fromhex(raw.replace(" ", "").replace(":", ""))
        except ValueError:
            raise AtrError(f"malformed ATR {raw!r}: not hex") from None
    raw = bytes(raw)
    if len(raw) < 2:
        raise _fail(raw, f"{len(raw)} bytes, an ATR has at least TS and T0")
    if len(raw) > MAX_ATR_LENGTH:
        raise _fail(raw, f"{len(raw)} bytes, longer than the {MAX_ATR_LENGTH} ISO/IEC 7816-3 allows")
    conventions = {0x3B: "direct", 0x3F: "inverse"}
    if raw[0] not in conventions:
        raise _fail(raw, f"TS={raw[0]:02X}, expected 3B (direct) or 3F (inverse)")
    t0 = raw[1]
    k = t0 & 0x0F
    presence = t0 >> 4
    position, index = 2, 1
    groups: list[InterfaceGroup] = []
    announced: list[int] = []
    while True:
        values: dict[str, int | None] = {"ta": None, "tb": None, "tc": None, "td": None}
        for bit, name in ((1, "ta"), (2, "tb"), (4, "tc"), (8, "td")):
            if presence & bit:
                if position >= len(raw):
                    raise _fail(raw, f"T{name[1].upper()}{index} announced but the ATR ends")
                values[name] = raw[position]
                position += 1
        group = InterfaceGroup(index, **values)
        groups.append(group)
        if group.td is None:
            break
        announced.append(group.td & 0x0F)
        presence = group.td >> 4
        index += 1
    protocols = tuple(dict.fromkeys(t for t in announced if t != 15)) or (0,)
    tck_needed = any(t != 0 for t in announced)
    end_of_historical = position + k
    if end_of_historical > len(raw):
        raise _fail(raw, f"T0 announces {k} historical bytes but only {len(raw) - position} follow")
    historical = raw[position:end_of_historical]
    expected_length = end_of_historical + (1 if tck_needed else 0)
    if len(raw) < expected_length:
        raise _fail(raw, "TCK is missing (required when a protocol other than T=0 is offered)")
    if len(raw) > expected_length:
        raise _fail(raw, f"{len(raw) - expected_length} unexpected byte(s) after the "
                         f"{'TCK' if tck_needed else 'historical bytes'}")
    tck = raw[-1] if tck_needed else None
    contactless = None
    if raw[1] & 0xF0 == 0x80 and raw[2:4] == b"\x80\x01":
        contactless = _contactless(historical)
    atr = Atr(raw, conventions[raw[0]], tuple(groups), historical, tck, protocols,
              _compact_tlv(historical), contactless)
    if strict and atr.tck_ok is False:
        raise _fail(raw, f"TCK {tck:02X} does not make the XOR of T0…TCK zero")
    return atr
