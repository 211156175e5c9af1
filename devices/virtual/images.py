"""Small, valid image stand-ins for the card-face data of the 券面事項確認AP (JPKI-FACTS §10).

The real EF holds name, address and security-code images and a JPEG 2000 face photo. The
virtual card carries real PNG and JP2 files of a few hundred bytes whose pixels derive from
the text they stand for, so parsers see the right formats and lengths without any real face.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_stand_in(text: str, width: int = 96, height: int = 24) -> bytes:
    """A 1-bit greyscale PNG whose pixels are a hash pattern of ``text``."""
    row_bytes = (width + 7) // 8
    seed = hashlib.sha256(text.encode("utf-8")).digest()
    stream = hashlib.shake_256(seed).digest(row_bytes * height)
    raw = b"".join(b"\x00" + stream[y * row_bytes : (y + 1) * row_bytes] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(raw, 9))
            + _png_chunk(b"IEND", b""))


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _marker(code: int, body: bytes) -> bytes:
    return struct.pack(">HH", code, 2 + len(body)) + body


def j2k_codestream(width: int, height: int) -> bytes:
    """An 8-bit greyscale JPEG 2000 codestream (ISO/IEC 15444-1 Annex A) with one empty packet.

    No wavelet levels, one layer, reversible 5/3: the single packet's header bit says "empty",
    so a decoder reconstructs a flat mid-grey image of ``width`` × ``height``.
    """
    siz = struct.pack(">HIIIIIIIIH", 0, width, height, 0, 0, width, height, 0, 0, 1) + bytes((7, 1, 1))
    cod = bytes((0, 0)) + struct.pack(">H", 1) + bytes((0, 0, 4, 4, 0, 1))
    qcd = bytes((0x40, 9 << 3))  # no quantisation, 2 guard bits; LL band exponent 9
    packet = b"\x00"
    sot_len = 12 + 2 + len(packet)
    sot = _marker(0xFF90, struct.pack(">HIBB", 0, sot_len, 0, 1))
    return (b"\xff\x4f" + _marker(0xFF51, siz) + _marker(0xFF52, cod) + _marker(0xFF5C, qcd) + sot
            + b"\xff\x93" + packet + b"\xff\xd9")


def jp2_stand_in(text: str, width: int = 48, height: int = 60) -> bytes:
    """A JP2 file (signature, ftyp, jp2h with ihdr and colr, jp2c); its size varies with ``text``.

    The face photo is a flat image; a comment (COM-free XML box) carries a digest of ``text`` so two
    holders' photos differ.
    """
    ftyp = _box(b"ftyp", b"jp2 " + b"\x00\x00\x00\x00" + b"jp2 ")
    ihdr = _box(b"ihdr", struct.pack(">IIHBBBB", height, width, 1, 7, 7, 0, 0))
    colr = _box(b"colr", bytes((1, 0, 0)) + struct.pack(">I", 17))  # enumerated greyscale
    note = _box(b"xml ", f"<face-stand-in digest='{hashlib.sha256(text.encode()).hexdigest()}'/>".encode())
    return JP2_SIGNATURE + ftyp + _box(b"jp2h", ihdr + colr) + note + _box(b"jp2c", j2k_codestream(width, height))
