"""券面事項入力補助AP (text AP) and the card-data structures it shares with the 券面事項確認AP.

JPKI-FACTS §5 and §10 (CONFIRMED): EF 0001 My Number, EF 0002 basic four, EF 0003 integrity
record (after PIN 0011), EF 0004 card-verifiable certificate (free), EF 0005 AP information
(free, at least 256 bytes), PIN 0011, key 0012 (blocked), 照合番号A 0014 and B 0015 (14 digits).
The signatures in EF 0003/0004 are made with the test hierarchy's card-data key
(``fixtures/pki/card-data.key.pem``); they are computed once per holder and key file.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from harness.fixtures import number_b
from harness.iso import tlv

from .cardos import Applet, ElementaryFile, FileKind, PinObject
from .pkifiles import digits, load_key, pin_object, stamp, zero_filled
from .profile import PKI_DIR, CardProfile, HolderData

AID_TEXT = bytes.fromhex("D3921000310001010408")
EF_MY_NUMBER, EF_BASIC_FOUR, EF_INTEGRITY, EF_CV_CERT, EF_AP_INFO = 0x0001, 0x0002, 0x0003, 0x0004, 0x0005
EF_TEXT_PIN, EF_TEXT_KEY, EF_NUMBER_A, EF_NUMBER_B = 0x0011, 0x0012, 0x0014, 0x0015
CARD_DATA_KEY = "card-data.key.pem"
AP_INFO_SIZE = 256  # §10: readers ask for 256 bytes of EF 0005 and must get 256
INTEGRITY_SIZE = 336  # §10: FF 30 82 01 4B {...}
CV_CERT_SIZE = 568  # §10: 7F 21 {5F 4E, 5F 37}


def card_data_key_path() -> Path:
    return PKI_DIR / CARD_DATA_KEY


def _sign(key: RSAPrivateKey, data: bytes) -> bytes:
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def my_number_ef(holder: HolderData) -> bytes:
    """EF 0001 of the text AP: ``FF 10 0C`` + 12 ASCII digits + ``FF FF`` (17 bytes)."""
    return tlv.encode(0xFF10, holder.my_number.encode("ascii")) + b"\xff\xff"


def offset_record(outer_tag: int, offsets_tag: int, fields: list[bytes]) -> bytes:
    """``outer { offsets_tag <2-byte offset of each field from file start>, field… }`` (text EF 0002, 券面 EF 0002)."""
    offsets_tlv_len = len(tlv.encode(offsets_tag, bytes(2 * len(fields))))
    body_len = offsets_tlv_len + sum(len(f) for f in fields)
    header_len = len(tlv.encode(outer_tag, bytes(body_len))) - body_len
    offsets, position = [], header_len + offsets_tlv_len
    for item in fields:
        offsets.append(position)
        position += len(item)
    offsets_tlv = tlv.encode(offsets_tag, b"".join(o.to_bytes(2, "big") for o in offsets))
    return tlv.encode(outer_tag, offsets_tlv + b"".join(fields))


def basic_four_ef(holder: HolderData) -> bytes:
    """EF 0002: ``FF 20 L {DF21 offsets, DF22 name, DF23 address, DF24 birth date, DF25 sex}``."""
    return offset_record(0xFF20, 0xDF21, [
        tlv.encode(0xDF22, holder.name.encode("utf-8")),
        tlv.encode(0xDF23, holder.address.encode("utf-8")),
        tlv.encode(0xDF24, holder.birth_date.encode("ascii")),
        tlv.encode(0xDF25, holder.sex.encode("ascii")),
    ])


def integrity_ef(key: RSAPrivateKey, first: bytes, second: bytes) -> bytes:
    """``FF 30 82 01 4B {DF31 SHA-256(first), DF32 SHA-256(second), DF33 signature}``, 336 bytes (§10)."""
    hashes_part = tlv.encode(0xDF31, hashlib.sha256(first).digest()) + tlv.encode(0xDF32,
                                                                                   hashlib.sha256(second).digest())
    record = tlv.encode(0xFF30, hashes_part + tlv.encode(0xDF33, _sign(key, hashes_part)))
    assert len(record) == INTEGRITY_SIZE, len(record)
    return record


def cv_certificate(key: RSAPrivateKey, holder_ref: bytes) -> bytes:
    """A card-verifiable certificate ``7F 21 {5F 4E body, 5F 37 signature}`` of 568 bytes (§10).

    The body follows ISO/IEC 7816-8's layout (profile, CAR, public key, CHR); its exact fields on
    the real card are unpublished, only the tags and the size are.
    """
    numbers = key.public_key().public_numbers()
    public = tlv.encode(0x7F49, tlv.encode(0x81, numbers.n.to_bytes(256, "big"))
                        + tlv.encode(0x82, numbers.e.to_bytes(3, "big")))
    head = tlv.encode(0x5F29, b"\x00") + tlv.encode(0x42, b"JPKITEST") + public
    chr_len = 297 - len(head) - 3  # the body is 297 bytes on a real card (568 in all)
    body = tlv.encode(0x5F4E, head + tlv.encode(0x5F20, holder_ref.ljust(chr_len, b"0")[:chr_len]))
    cert = tlv.encode(0x7F21, body + tlv.encode(0x5F37, _sign(key, body)))
    assert len(cert) == CV_CERT_SIZE, len(cert)
    return cert


def ap_info_ef(aid: bytes, cv_cert: bytes) -> bytes:
    """EF 0005: ``FF 40 L {DF41 04 AP id, DF42 10 key id, DF43 …}`` zero-filled to 256 bytes (§10).

    AP id: the AID's last four bytes; key id: the first 16 bytes of SHA-256 over the CV certificate;
    DF43 (unpublished): the format version.
    """
    body = (tlv.encode(0xDF41, aid[-4:]) + tlv.encode(0xDF42, hashlib.sha256(cv_cert).digest()[:16])
            + tlv.encode(0xDF43, b"\x01\x00"))
    return zero_filled(tlv.encode(0xFF40, body), AP_INFO_SIZE)


@lru_cache(maxsize=32)
def _text_files(holder: HolderData, key_stamp: tuple[Path, int, int]) -> dict[int, bytes]:
    key = load_key(key_stamp[0])
    number, basic = my_number_ef(holder), basic_four_ef(holder)
    cv_cert = cv_certificate(key, holder.auth_cn.encode("ascii")[-10:])
    return {
        EF_MY_NUMBER: number,
        EF_BASIC_FOUR: basic,
        EF_INTEGRITY: integrity_ef(key, number, basic),
        EF_CV_CERT: cv_cert,
        EF_AP_INFO: ap_info_ef(AID_TEXT, cv_cert),
    }


def blocked_key(fid: int, name: str) -> ElementaryFile:
    """A key object that exists but is blocked: retry query ``63C0``, VERIFY ``6984`` (§10, text AP 0012)."""
    return ElementaryFile(fid, FileKind.PIN, pin=PinObject(name, b"", 3, tries_left=0))


def text_applet(profile: CardProfile) -> Applet:
    holder = profile.holder
    files = _text_files(holder, stamp(card_data_key_path()))
    applet = Applet("text", AID_TEXT)
    applet.add(ElementaryFile(EF_MY_NUMBER, content=files[EF_MY_NUMBER], read_pins=("text", "number_a")))
    applet.add(ElementaryFile(EF_BASIC_FOUR, content=files[EF_BASIC_FOUR], read_pins=("text", "number_b")))
    applet.add(ElementaryFile(EF_INTEGRITY, content=files[EF_INTEGRITY], read_pins=("text",)))
    applet.add(ElementaryFile(EF_CV_CERT, content=files[EF_CV_CERT]))
    applet.add(ElementaryFile(EF_AP_INFO, content=files[EF_AP_INFO]))
    applet.add(ElementaryFile(EF_TEXT_PIN, FileKind.PIN, pin=pin_object(profile, "text", digits(4))))
    applet.add(blocked_key(EF_TEXT_KEY, "text_key"))
    tries = profile.number_tries
    applet.add(ElementaryFile(EF_NUMBER_A, FileKind.PIN,
                              pin=PinObject("number_a", holder.my_number.encode(), tries, policy=digits(12))))
    applet.add(ElementaryFile(EF_NUMBER_B, FileKind.PIN,
                              pin=PinObject("number_b", number_b(holder).encode(), tries, policy=digits(14))))
    return applet
