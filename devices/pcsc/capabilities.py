"""What a PC/SC reader and the card in it carry: extended APDUs, frame limits, contactless, PIN pad.

Extended APDUs, first source that answers:

1. the URI option ``extended=1/0``;
2. the reader's own report: PC/SC part 10 ``dwMaxAPDUDataSize`` (FEATURE_GET_TLV_PROPERTIES), then
   ``SCARD_ATTR_MAXINPUT`` (CCID readers give one of them; vpcd gives neither);
3. the card's ATR: card capabilities in the historical bytes (extended Lc/Le bit);
4. a probe: an extended-Le READ BINARY of one byte (read-only) must come back with a status word
   other than 6700.

``details["extended_source"]`` says which one decided.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartcard import scard

from devices.base import ReaderCapabilities
from harness.iso.atr import AtrError, parse_atr

from .scard import OK, error_name

SHORT_APDU_MAX = 261  # 4 header + 1 Lc + 255 data + 1 Le: a reader limited to this carries short APDUs only
FEATURE_REQUEST = scard.SCARD_CTL_CODE(3400)  # CM_IOCTL_GET_FEATURE_REQUEST (PC/SC part 10)
FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT, FEATURE_GET_TLV_PROPERTIES = 0x06, 0x07, 0x12
PROPERTY_MAX_APDU_DATA_SIZE = 0x0A  # dwMaxAPDUDataSize: 0 = short APDUs only
# Extended-Le READ BINARY of 1 byte: read-only, harmless whatever is selected; a path that cannot carry
# extended APDUs fails the transmit or gets 6700 from the card.
EXTENDED_PROBE = [0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x01]
# A probe that got one of these lost the card: the caller turns it into its typed error.
PROBE_FATAL = (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SERVICE, scard.SCARD_E_READER_UNAVAILABLE)


class ProbeLost(Exception):
    """The extended-APDU probe lost the card or the service; ``hr`` is the PC/SC result."""

    def __init__(self, hr: int) -> None:
        super().__init__(error_name(hr))
        self.hr = hr


@dataclass(frozen=True)
class Connection:
    """What detection needs of a connected reader (``hcard`` None: not powered)."""

    reader: str
    hcard: int | None
    protocol: int
    protocol_name: str
    atr: bytes


def le_properties(raw: list[int]) -> dict[int, int]:
    """PC/SC part 10 TLV properties: tag, length, little-endian value."""
    found, position = {}, 0
    while position + 2 <= len(raw):
        tag, length = raw[position], raw[position + 1]
        value = raw[position + 2 : position + 2 + length]
        found[tag] = int.from_bytes(bytes(value), "little")
        position += 2 + length
    return found


def _control(hcard: int, code: int) -> list[int] | None:
    hr, response = scard.SCardControl(hcard, code, [])
    return list(response) if hr == OK else None


def features(hcard: int) -> dict[int, int]:
    """PC/SC part 10 feature tag → control code, from CM_IOCTL_GET_FEATURE_REQUEST."""
    raw = _control(hcard, FEATURE_REQUEST) or []
    found, position = {}, 0
    while position + 6 <= len(raw):
        found[raw[position]] = int.from_bytes(bytes(raw[position + 2 : position + 6]), "big")
        position += 2 + raw[position + 1]
    return found


def probe_extended(hcard: int, protocol: int) -> tuple[bool, str]:
    """Send :data:`EXTENDED_PROBE`; :class:`ProbeLost` when the card or pcscd went away."""
    hr, response = scard.SCardTransmit(hcard, protocol, EXTENDED_PROBE)
    if hr != OK:
        if hr in PROBE_FATAL:
            raise ProbeLost(hr)
        return False, f"probe: the reader refused an extended APDU ({error_name(hr)})"
    if len(response) < 2:
        return False, "probe: no status word to an extended APDU"
    sw = (response[-2] << 8) | response[-1]
    return sw != 0x6700, f"probe: extended-Le READ BINARY answered {sw:04X}"


def _reader_limit(hcard: int, found: dict[int, int]) -> tuple[int | None, str]:
    """The reader's own largest APDU, from part 10 properties or SCARD_ATTR_MAXINPUT."""
    if FEATURE_GET_TLV_PROPERTIES in found:
        properties = le_properties(_control(hcard, found[FEATURE_GET_TLV_PROPERTIES]) or [])
        if PROPERTY_MAX_APDU_DATA_SIZE in properties:
            limit = properties[PROPERTY_MAX_APDU_DATA_SIZE]
            return limit, f"reader dwMaxAPDUDataSize={limit}"
    hr, value = scard.SCardGetAttrib(hcard, scard.SCARD_ATTR_MAXINPUT)
    if hr == OK and value:
        limit = int.from_bytes(bytes(value), "little")
        return limit, f"reader SCARD_ATTR_MAXINPUT={limit}"
    return None, ""


def detect(link: Connection, details: dict[str, str], forced: bool | None) -> ReaderCapabilities:
    """The capabilities of ``link`` (module doc); ``details`` are the reader's own lines, extended here."""
    details = dict(details)
    try:
        atr = parse_atr(link.atr) if link.atr else None
    except AtrError as exc:
        atr, details["atr_problem"] = None, str(exc)
    extended, limit, source = forced, None, "URI option"
    found: dict[int, int] = {}
    if link.hcard is not None:
        found = features(link.hcard)
        if extended is None:
            limit, source = _reader_limit(link.hcard, found)
            if limit is not None:
                extended = limit > SHORT_APDU_MAX
    if extended is None and atr is not None and atr.extended_apdu is not None:
        extended, source = atr.extended_apdu, "ATR card capabilities"
    if extended is None and link.hcard is not None:
        extended, source = probe_extended(link.hcard, link.protocol)
    if extended is None:
        extended, source = False, "unknown until the card is powered"
    details["extended_source"] = source
    if limit is not None and limit <= SHORT_APDU_MAX:
        limit = None
    return ReaderCapabilities(
        extended_apdu=bool(extended),
        max_command_data=min(limit or 65535, 65535) if extended else 255,
        max_response=min(limit or 65536, 65536) if extended else 256,
        contactless=bool(atr is not None and atr.contactless is not None),
        pin_pad=bool({FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT} & set(found)),
        details=details,
    )
