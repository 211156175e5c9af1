"""BER-TLV (ISO/IEC 8825-1 as used by ISO 7816-4): tags of one or more bytes, definite lengths."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


class TlvError(ValueError):
    """Malformed BER-TLV data."""


@dataclass(frozen=True)
class Tlv:
    tag: int
    value: bytes
    offset: int = 0  # where the TLV starts in the parsed buffer

    @property
    def constructed(self) -> bool:
        first = self.tag.to_bytes((self.tag.bit_length() + 7) // 8 or 1, "big")[0]
        return bool(first & 0x20)

    def children(self) -> list[Tlv]:
        return list(iter_tlv(self.value))


def read_tag(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise TlvError(f"tag expected at offset {pos}, data ends")
    tag = buf[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        while True:
            if pos >= len(buf):
                raise TlvError("multi-byte tag runs past the end")
            tag = (tag << 8) | buf[pos]
            pos += 1
            if not buf[pos - 1] & 0x80:
                break
            if tag.bit_length() > 32:
                raise TlvError("tag longer than 4 bytes")
    return tag, pos


def read_length(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise TlvError(f"length expected at offset {pos}, data ends")
    first = buf[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0:
        raise TlvError("indefinite length is not allowed here")
    if count > 4:
        raise TlvError(f"length field of {count} bytes is too long")
    if pos + count > len(buf):
        raise TlvError("length field runs past the end")
    return int.from_bytes(buf[pos : pos + count], "big"), pos + count


def iter_tlv(buf: bytes, *, stop_at_padding: bool = True) -> Iterator[Tlv]:
    """Yield the TLVs of ``buf`` in order. Zero or FF padding ends the walk (EFs are zero-filled)."""
    pos = 0
    while pos < len(buf):
        if stop_at_padding and buf[pos] in (0x00,) and not any(buf[pos:]):
            return
        start = pos
        tag, pos = read_tag(buf, pos)
        length, pos = read_length(buf, pos)
        if pos + length > len(buf):
            raise TlvError(f"tag {tag:X} at offset {start} says {length} bytes, only {len(buf) - pos} remain")
        yield Tlv(tag, bytes(buf[pos : pos + length]), start)
        pos += length


def parse_one(buf: bytes) -> Tlv:
    """The first TLV of ``buf``; trailing bytes are ignored."""
    return next(iter_tlv(buf, stop_at_padding=False))


def find(buf: bytes, tag: int) -> Tlv | None:
    for item in iter_tlv(buf):
        if item.tag == tag:
            return item
    return None


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    size = (length.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    tag_bytes = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    return tag_bytes + encode_length(len(value)) + value


def der_total_length(header: bytes) -> int:
    """Total length of a DER object (header plus content) from its first bytes.

    Hosts read 4 bytes of a certificate EF (``30 82 LL LL``) to learn how much to read.
    """
    _, pos = read_tag(header, 0)
    length, pos = read_length(header, pos)
    return pos + length
