"""Frame checksums of reader modules, by the names protocol files use.

Binary checksums return bytes in wire order; the text form (``xor-hex``) is two
upper-case hex digits, as NMEA-style line protocols append after ``*``.
"""

from __future__ import annotations

from collections.abc import Callable


def bcc(data: bytes) -> bytes:
    """XOR of every byte (block check character), the usual STX/ETX trailer."""
    value = 0
    for byte in data:
        value ^= byte
    return bytes((value,))


def sum8(data: bytes) -> bytes:
    """Sum of the bytes modulo 256."""
    return bytes((sum(data) & 0xFF,))


def crc16_ccitt(data: bytes) -> bytes:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF), big-endian on the wire."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc.to_bytes(2, "big")


def none(data: bytes) -> bytes:
    return b""


BINARY_CHECKSUMS: dict[str, Callable[[bytes], bytes]] = {
    "none": none,
    "bcc": bcc,
    "sum8": sum8,
    "crc16": crc16_ccitt,
}
BINARY_SIZES = {"none": 0, "bcc": 1, "sum8": 1, "crc16": 2}


def xor_hex(text: str) -> str:
    """XOR of the characters as two hex digits (``*HH`` suffix of line protocols)."""
    return bcc(text.encode("ascii")).hex().upper()


TEXT_CHECKSUMS: dict[str, Callable[[str], str] | None] = {"none": None, "xor-hex": xor_hex}
