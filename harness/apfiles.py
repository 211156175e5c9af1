"""Host-side checks of the files JPKI-FACTS §10 describes beyond the JPKI AP's certificates.

Each function takes the bytes read from the card and returns a list of problems (empty: as
specified), so a keyword can fail with all of them in one line, and a lab can run the same
checks against a real card. Nothing here returns or prints a holder's personal data.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from harness.iso import tlv

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
CARD_FACE_TAGS = tuple(range(0xDF22, 0xDF2B))  # 券面事項確認AP EF 0002: DF22 … DF2A after DF21
IMAGE_TAGS = {0xDF25: "png", 0xDF26: "png", 0xDF27: "jp2", 0xDF2A: "png"}
AP_INFO_MIN = 256
INTEGRITY_SIZE = 336
CV_CERT_SIZE = 568


def _parse(data: bytes, tag: int, what: str) -> tuple[tlv.Tlv | None, list[str]]:
    try:
        outer = tlv.parse_one(data)
    except tlv.TlvError as exc:
        return None, [f"{what} is not BER-TLV ({exc})"]
    if outer.tag != tag:
        return None, [f"{what} starts with tag {outer.tag:X}, expected {tag:X}"]
    return outer, []


def ap_info_problems(data: bytes) -> list[str]:
    """Text AP EF 0005: ``FF 40 {DF41 04, DF42 10, DF43 …}``, the EF at least 256 bytes (§10)."""
    problems = [] if len(data) >= AP_INFO_MIN else [f"EF 0005 gave {len(data)} bytes, expected at least 256"]
    outer, errors = _parse(data, 0xFF40, "EF 0005")
    if outer is None:
        return problems + errors
    try:
        fields = {item.tag: item.value for item in outer.children()}
    except tlv.TlvError as exc:
        return [*problems, f"EF 0005 content is not BER-TLV ({exc})"]
    for tag, length in ((0xDF41, 4), (0xDF42, 16)):
        if len(fields.get(tag, b"")) != length:
            problems.append(f"EF 0005 lacks {tag:X} of {length} bytes")
    if 0xDF43 not in fields:
        problems.append("EF 0005 lacks DF43")
    return problems


def cv_public_key(cert: bytes) -> rsa.RSAPublicKey:
    """The RSA key in a card-verifiable certificate's ``7F49 {81 modulus, 82 exponent}``."""
    body = tlv.find(tlv.parse_one(cert).value, 0x5F4E)
    if body is None:
        raise ValueError("CV certificate lacks 5F4E")
    key = tlv.find(body.value, 0x7F49)
    if key is None:
        raise ValueError("CV certificate body lacks the public key 7F49")
    parts = {item.tag: item.value for item in key.children()}
    return rsa.RSAPublicNumbers(int.from_bytes(parts[0x82], "big"), int.from_bytes(parts[0x81], "big")).public_key()


def cv_certificate_problems(cert: bytes) -> list[str]:
    """EF 0004: ``7F 21 {5F 4E body, 5F 37 signature}``, 568 bytes (§10); the signature verifies under its key."""
    problems = [] if len(cert) == CV_CERT_SIZE else [f"CV certificate is {len(cert)} bytes, expected 568"]
    outer, errors = _parse(cert, 0x7F21, "CV certificate")
    if outer is None:
        return problems + errors
    children = outer.children()
    if [c.tag for c in children] != [0x5F4E, 0x5F37]:
        return [*problems, "CV certificate is not 7F21 {5F4E, 5F37}"]
    try:
        key = cv_public_key(cert)
        body = tlv.encode(0x5F4E, children[0].value)
        key.verify(children[1].value, body, padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, KeyError, InvalidSignature, tlv.TlvError) as exc:
        problems.append(f"CV certificate signature does not verify under its own key ({type(exc).__name__})")
    return problems


def integrity_problems(record: bytes, first: bytes, second: bytes, key: rsa.RSAPublicKey) -> list[str]:
    """EF 0003: ``FF 30 82 01 4B {DF31 SHA-256(first EF), DF32 SHA-256(second EF), DF33 signature}``, 336 bytes."""
    problems = [] if len(record) == INTEGRITY_SIZE else [f"integrity record is {len(record)} bytes, expected 336"]
    outer, errors = _parse(record, 0xFF30, "integrity record")
    if outer is None:
        return problems + errors
    fields = {item.tag: item.value for item in outer.children()}
    if fields.get(0xDF31) != hashlib.sha256(first).digest():
        problems.append("DF31 is not the SHA-256 of the first data EF")
    if fields.get(0xDF32) != hashlib.sha256(second).digest():
        problems.append("DF32 is not the SHA-256 of the second data EF")
    signed = tlv.encode(0xDF31, fields.get(0xDF31, b"")) + tlv.encode(0xDF32, fields.get(0xDF32, b""))
    try:
        key.verify(fields.get(0xDF33, b""), signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        problems.append("DF33 does not verify under the CV certificate's key")
    return problems


def image_problem(kind: str, data: bytes) -> str | None:
    """None when ``data`` starts like a PNG (signature, IHDR) or a JP2 (signature box, ftyp ``jp2 ``)."""
    if kind == "png":
        return None if data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" else "not a PNG"
    return None if data.startswith(JP2_SIGNATURE) and data[16:24] == b"ftypjp2 " else "not a JPEG 2000 (JP2) file"


def offset_problems(data: bytes, tags: tuple[int, ...]) -> list[str]:
    """The first child (DF21) lists, as 2-byte offsets from file start, where each of ``tags`` begins."""
    outer = tlv.parse_one(data)
    children = outer.children()
    if not children or children[0].tag != 0xDF21 or len(children[0].value) != 2 * len(tags):
        return [f"DF21 does not hold {len(tags)} offsets"]
    offsets = [int.from_bytes(children[0].value[i : i + 2], "big") for i in range(0, 2 * len(tags), 2)]
    problems = []
    for offset, tag in zip(offsets, tags, strict=True):
        try:
            found = tlv.read_tag(data, offset)[0]
        except tlv.TlvError:
            found = -1
        if found != tag:
            problems.append(f"offset {offset} does not point at {tag:X}")
    return problems


def card_face_problems(data: bytes, birth_date: str, sex: str) -> list[str]:
    """券面事項確認AP EF 0002 (§10): ``FF 20 {DF21 offsets, DF22 … DF2A}``; birth date and sex compared with the
    expected holder's (only "differs" is reported, never the values), images of the right formats."""
    outer, errors = _parse(data, 0xFF20, "card-face EF 0002")
    if outer is None:
        return errors
    try:
        problems = offset_problems(data, CARD_FACE_TAGS)
        fields = {item.tag: item.value for item in outer.children()}
    except tlv.TlvError as exc:
        return [f"card-face EF 0002 content is not BER-TLV ({exc})"]
    missing = [f"{t:X}" for t in CARD_FACE_TAGS if t not in fields]
    if missing:
        return [*problems, f"card-face EF 0002 lacks {', '.join(missing)}"]
    if fields[0xDF22] != birth_date.encode("ascii"):
        problems.append("birth date (DF22) differs from the expected holder's")
    if fields[0xDF23] != sex.encode("ascii"):
        problems.append("sex (DF23) differs from the expected holder's")
    for tag, kind in IMAGE_TAGS.items():
        problem = image_problem(kind, fields[tag])
        if problem:
            problems.append(f"{tag:X} is {problem}")
    if len(fields[0xDF28]) != 256:
        problems.append(f"signature DF28 is {len(fields[0xDF28])} bytes, expected 256")
    if len(fields[0xDF29]) != 8 or not fields[0xDF29].isdigit():
        problems.append("expiry date DF29 is not YYYYMMDD")
    return problems


def card_id_record_problems(record: bytes) -> list[str]:
    """共通AP EF 0001 record 1 (§10): ``01 1C`` and 28 card identification digits."""
    if record[:2] != b"\x01\x1c":
        return ["record 1 does not start with 01 1C"]
    digits = record[2:]
    if len(digits) != 0x1C or not digits.isdigit():
        return [f"record 1 holds {len(digits)} bytes after 01 1C, expected 28 digits"]
    return []
