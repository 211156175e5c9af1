"""券面事項確認AP (visual / kenkaku AP): the card face as data, opened by 照合番号A ``0013`` or B ``0012``.

JPKI-FACTS §10 CONFIRMED: EF 0002 is ``FF 20 L {DF21 offsets of the following fields from file start,
DF22 birth date, DF23 sex, DF24 public key, DF25 name image, DF26 address image, DF27 face photo
(JPEG 2000), DF28 signature, DF29 expiry date, DF2A security-code image}``; EFs 0001, 0003, 0004 and
0005 exist beside it. Their contents are unpublished: the virtual card models 0001 as the My Number
side (number, its image, a signature; after 照合番号A), 0003/0004/0005 like the text AP's integrity
record, CV certificate and AP information (UNCERTAIN, chosen so parsers of those layouts get valid data).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from harness.iso import tlv

from .cardos import Applet, ElementaryFile, FileKind, PinObject
from .images import jp2_stand_in, png_stand_in
from .pkifiles import digits, load_key, stamp
from .profile import CardProfile, HolderData
from .text_ap import ap_info_ef, card_data_key_path, cv_certificate, integrity_ef, number_b, offset_record

AID_VISUAL = bytes.fromhex("D3921000310001010402")
EF_MY_NUMBER_FACE, EF_CARD_FACE, EF_INTEGRITY, EF_CV_CERT, EF_AP_INFO = 0x0001, 0x0002, 0x0003, 0x0004, 0x0005
EF_VISUAL_B, EF_VISUAL_A = 0x0012, 0x0013
CARD_FACE_TAGS = tuple(range(0xDF22, 0xDF2B))  # DF22 … DF2A, in file order


def expiry_date(holder: HolderData) -> str:
    """YYYYMMDD: the card ends on the holder's birthday in the expiry year (28 Feb for 29 Feb)."""
    month_day = holder.birth_date[4:]
    if month_day == "0229" and int(holder.expiry_year) % 4 != 0:
        month_day = "0228"
    return holder.expiry_year + month_day


@lru_cache(maxsize=32)
def _visual_files(holder: HolderData, key_stamp: tuple[Path, int, int]) -> dict[int, bytes]:
    key = load_key(key_stamp[0])
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    signed = [
        tlv.encode(0xDF22, holder.birth_date.encode("ascii")),
        tlv.encode(0xDF23, holder.sex.encode("ascii")),
        tlv.encode(0xDF24, public),
        tlv.encode(0xDF25, png_stand_in("name:" + holder.name, 160, 24)),
        tlv.encode(0xDF26, png_stand_in("address:" + holder.address, 320, 40)),
        tlv.encode(0xDF27, jp2_stand_in("face:" + holder.auth_cn)),
    ]
    signature = key.sign(b"".join(signed), padding.PKCS1v15(), hashes.SHA256())
    face = offset_record(0xFF20, 0xDF21, [
        *signed,
        tlv.encode(0xDF28, signature),
        tlv.encode(0xDF29, expiry_date(holder).encode("ascii")),
        tlv.encode(0xDF2A, png_stand_in("code:" + holder.security_code, 64, 16)),
    ])
    number_body = (tlv.encode(0xDF41, holder.my_number.encode("ascii"))
                   + tlv.encode(0xDF42, png_stand_in("number:" + holder.my_number, 240, 24)))
    number_side = tlv.encode(0xFF40, number_body + tlv.encode(0xDF43, key.sign(number_body, padding.PKCS1v15(),
                                                                               hashes.SHA256())))
    cv_cert = cv_certificate(key, b"KENKAKU" + holder.auth_cn.encode("ascii")[-3:])
    return {
        EF_MY_NUMBER_FACE: number_side,
        EF_CARD_FACE: face,
        EF_INTEGRITY: integrity_ef(key, number_side, face),
        EF_CV_CERT: cv_cert,
        EF_AP_INFO: ap_info_ef(AID_VISUAL, cv_cert),
    }


def visual_applet(profile: CardProfile) -> Applet:
    holder = profile.holder
    files = _visual_files(holder, stamp(card_data_key_path()))
    applet = Applet("visual", AID_VISUAL)
    applet.add(ElementaryFile(EF_MY_NUMBER_FACE, content=files[EF_MY_NUMBER_FACE], read_pins=("visual_a",)))
    applet.add(ElementaryFile(EF_CARD_FACE, content=files[EF_CARD_FACE], read_pins=("visual_a", "visual_b")))
    applet.add(ElementaryFile(EF_INTEGRITY, content=files[EF_INTEGRITY], read_pins=("visual_a", "visual_b")))
    applet.add(ElementaryFile(EF_CV_CERT, content=files[EF_CV_CERT]))
    applet.add(ElementaryFile(EF_AP_INFO, content=files[EF_AP_INFO]))
    tries = profile.number_tries
    applet.add(ElementaryFile(EF_VISUAL_A, FileKind.PIN,
                              pin=PinObject("visual_a", holder.my_number.encode(), tries, policy=digits(12))))
    applet.add(ElementaryFile(EF_VISUAL_B, FileKind.PIN,
                              pin=PinObject("visual_b", number_b(holder).encode(), tries, policy=digits(14))))
    return applet
