"""ISO 14443-3/-4 Type A and B facts both sides of the link agree on: frame sizes, waiting times,
bit rates, the ATQB's fields and the ATR a PC/SC reader builds from an ATQB or an ATS.

Shared by the nfcpy reader and the virtual PICC (rule 5 lets bridges share codecs), so the table
exists once.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.base import ProtocolError

FC = 13.56e6  # carrier frequency; FWT = 4096/fc × 2^FWI (ISO 14443-4 §7.2)
FSC_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSCI/FSDI 0-8
RATE_DIVISORS = {106: 0, 212: 1, 424: 2, 848: 3}  # the DS/DR codes of ATTRIB Param 2 (ISO 14443-3 §7.10.4)


def fwt_seconds(fwi: int) -> float:
    return 4096 / FC * (2**fwi)


def bit_rates_of(capability: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(PICC→PCD, PCD→PICC) bit rates in kbit/s from the ATQB bit-rate byte (ISO 14443-3 §7.9.4.1)."""
    to_pcd = [106] + [rate for bit, rate in ((0x10, 212), (0x20, 424), (0x40, 848)) if capability & bit]
    to_picc = [106] + [rate for bit, rate in ((0x01, 212), (0x02, 424), (0x04, 848)) if capability & bit]
    return tuple(to_pcd), tuple(to_picc)


@dataclass(frozen=True)
class AtqbInfo:
    """An ATQB (SENSB_RES) taken apart: what a Type B card announces about itself."""

    pupi: bytes
    app_data: bytes
    bit_rate_capability: int
    fsci: int
    protocol_type: int
    fwi: int
    adc: int
    fo: int

    @classmethod
    def parse(cls, atqb: bytes) -> AtqbInfo:
        if len(atqb) < 12 or atqb[0] != 0x50:
            raise ProtocolError(f"not an ATQB: {atqb.hex(' ').upper()}")
        return cls(bytes(atqb[1:5]), bytes(atqb[5:9]), atqb[9], atqb[10] >> 4, atqb[10] & 0x0F,
                   atqb[11] >> 4, (atqb[11] >> 2) & 0x03, atqb[11] & 0x03)

    @property
    def protocol_info(self) -> bytes:
        return bytes((self.bit_rate_capability, self.fsci << 4 | self.protocol_type,
                      self.fwi << 4 | self.adc << 2 | self.fo))

    @property
    def fsc(self) -> int:
        return FSC_TABLE[min(self.fsci, 8)]  # FSCI 9-F are RFU: read as 256, like nfcpy

    @property
    def fwt(self) -> float:
        return fwt_seconds(self.fwi if self.fwi <= 14 else 4)

    @property
    def bit_rates(self) -> tuple[int, ...]:
        """Rates usable both ways (106 always)."""
        to_pcd, to_picc = bit_rates_of(self.bit_rate_capability)
        return tuple(rate for rate in to_pcd if rate in to_picc)


def _with_tck(body: bytes) -> bytes:
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes((tck,))


def atr_from_atqb(atqb: bytes, mbli: int = 0) -> bytes:
    """The ATR a PC/SC reader reports for a Type B card (PC/SC Part 3 §3.1.3.2.3.2, JPKI-FACTS §7):
    ``3B 88 80 01`` + application data + protocol info + MBLI nibble from the ATTRIB answer + TCK."""
    info = AtqbInfo.parse(atqb)
    historical = info.app_data + info.protocol_info + bytes(((mbli & 0x0F) << 4,))
    return _with_tck(bytes((0x3B, 0x80 | len(historical), 0x80, 0x01)) + historical)


def atr_from_ats(ats: bytes) -> bytes:
    """The ATR a PC/SC reader reports for a Type A ISO-DEP card: ``3B 8n 80 01`` + ATS historical bytes."""
    historical = b""
    if ats:
        t0 = ats[1] if len(ats) > 1 else 0
        start = 2 + bin(t0 & 0x70).count("1")
        historical = bytes(ats[start : ats[0]])[:15]
    return _with_tck(bytes((0x3B, 0x80 | len(historical), 0x80, 0x01)) + historical)



def fastest_common_rate(capability: int, reader_rates: tuple[int, ...]) -> int:
    """The fastest bit rate the card offers both ways and the reader can do (106 kbit/s always works)."""
    to_pcd, to_picc = bit_rates_of(capability)
    both = [rate for rate in to_pcd if rate in to_picc and rate in (106, *reader_rates)]
    return max(both)


def attrib_param2(rate: int, fsdi: int) -> int:
    """ATTRIB Param 2 asking for ``rate`` both ways: PICC→PCD in b8-b7, PCD→PICC in b6-b5, FSDI in b4-b1."""
    code = RATE_DIVISORS[rate]
    return code << 6 | code << 4 | (fsdi & 0x0F)


def rate_of_param2(param2: int) -> tuple[int, int]:
    """(PICC→PCD, PCD→PICC) kbit/s that an ATTRIB Param 2 asks for (b8-b7, b6-b5)."""
    names = {code: rate for rate, code in RATE_DIVISORS.items()}
    return names[(param2 >> 6) & 0x03], names[(param2 >> 4) & 0x03]
