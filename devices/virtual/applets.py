"""Populate the card OS with the My Number card's applets from a profile (JPKI-FACTS §1-§5)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from harness import tlv

from .cardos import Applet, ElementaryFile, FileKind, PinObject
from .profile import PKI_DIR, CardProfile, HolderData, ProfileError

# JPKI-FACTS §1 (CONFIRMED)
AID_JPKI = bytes.fromhex("D392F000260100000001")
AID_TEXT = bytes.fromhex("D3921000310001010408")
AID_VISUAL = bytes.fromhex("D3921000310001010402")
AID_JUKI = bytes.fromhex("D3921000310001010401")
AID_COMMON = bytes.fromhex("D3921000310001010100")

# JPKI AP FIDs, JPKI-FACTS §2
EF_SIGN_CERT, EF_SIGN_CA, EF_TOKEN, EF_AUTH_CERT, EF_AUTH_CA = 0x0001, 0x0002, 0x0006, 0x000A, 0x000B
EF_AUTH_KEY, EF_AUTH_PIN, EF_SIGN_KEY, EF_SIGN_PIN = 0x0017, 0x0018, 0x001A, 0x001B
# text AP FIDs, JPKI-FACTS §5
EF_MY_NUMBER, EF_BASIC_FOUR, EF_AP_INFO = 0x0001, 0x0002, 0x0005
EF_TEXT_PIN, EF_NUMBER_A, EF_NUMBER_B = 0x0011, 0x0014, 0x0015
# visual AP, JPKI-FACTS §5 last row
EF_VISUAL_DATA, EF_VISUAL_B, EF_VISUAL_A = 0x0002, 0x0012, 0x0013

TOKEN_EF_SIZE = 160  # UNCERTAIN (SOL): a PKCS#11 CK_TOKEN_INFO


def digits(length: int):
    def check(value: bytes) -> bool:
        return len(value) == length and value.isdigit()

    return check


def sign_password_ok(value: bytes) -> bool:
    # JPKI-FACTS §3: 6-16 characters, A-Z and 0-9
    return re.fullmatch(rb"[A-Z0-9]{6,16}", value) is not None


def _zero_filled(content: bytes, size: int) -> bytes:
    return content + bytes(max(0, size - len(content)))


def _read_fixture(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"missing PKI fixture {path}; rebuild with: hil pki generate") from None


def _load_der(profile: CardProfile, name: str) -> bytes:
    return _read_fixture(profile.pki_file(name))


def _load_ca(filename: str) -> bytes:
    return _read_fixture(PKI_DIR / filename)


def _load_key(profile: CardProfile, name: str) -> RSAPrivateKey:
    key = load_pem_private_key(_load_der(profile, name), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ProfileError(f"{profile.pki_file(name)} is not an RSA key")
    return key


def token_info(label: str) -> bytes:
    """EF 0006: the label space-padded to 32 bytes, then the rest of a CK_TOKEN_INFO-sized EF."""
    head = label.encode("ascii").ljust(32, b" ") + b"J-LIS".ljust(32, b" ") + b"JPKI".ljust(16, b" ")
    return _zero_filled(head, TOKEN_EF_SIZE)


def pin_object(profile: CardProfile, name: str, policy) -> PinObject:
    spec = profile.pins[name]
    return PinObject(name, spec.value.encode("ascii"), spec.max_tries, policy=policy)


def jpki_applet(profile: CardProfile) -> Applet:
    applet = Applet("jpki", AID_JPKI)
    auth_cert = _load_der(profile, "auth.der")
    sign_cert = _load_der(profile, "sign.der")
    for der, size in ((auth_cert, profile.cert_ef_size), (sign_cert, profile.cert_ef_size)):
        if len(der) > size:
            raise ProfileError(f"{profile.source}: certificate of {len(der)} bytes exceeds its EF ({size})")
    applet.add(ElementaryFile(EF_SIGN_CERT, content=_zero_filled(sign_cert, profile.cert_ef_size),
                              read_pins=("sign",)))
    applet.add(ElementaryFile(EF_SIGN_CA, content=_zero_filled(_load_ca("sign-ca.der"),
                                                               profile.sign_ca_ef_size)))
    applet.add(ElementaryFile(EF_TOKEN, content=token_info(profile.token_label)))
    applet.add(ElementaryFile(EF_AUTH_CERT, content=_zero_filled(auth_cert, profile.cert_ef_size),
                              read_pins=("auth",) if profile.auth_cert_needs_pin else ()))
    applet.add(ElementaryFile(EF_AUTH_CA, content=_zero_filled(_load_ca("auth-ca.der"),
                                                               profile.cert_ef_size)))
    applet.add(ElementaryFile(EF_AUTH_KEY, FileKind.KEY, key=_load_key(profile, "auth.key.pem"), key_pin="auth"))
    applet.add(ElementaryFile(EF_SIGN_KEY, FileKind.KEY, key=_load_key(profile, "sign.key.pem"), key_pin="sign"))
    applet.add(ElementaryFile(EF_AUTH_PIN, FileKind.PIN, pin=pin_object(profile, "auth", digits(4))))
    applet.add(ElementaryFile(EF_SIGN_PIN, FileKind.PIN, pin=pin_object(profile, "sign", sign_password_ok)))
    return applet


def wareki_yymmdd(yyyymmdd: str) -> str:
    """Japanese-era YYMMDD (照合番号B starts with it)."""
    born = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    eras = ((date(2019, 5, 1), 2018), (date(1989, 1, 8), 1988), (date(1926, 12, 25), 1925), (date(1912, 7, 30), 1911))
    for start, offset in eras:
        if born >= start:
            return f"{born.year - offset:02d}{born.month:02d}{born.day:02d}"
    raise ValueError(f"birth date {yyyymmdd} is before the Taisho era")


def number_b(holder: HolderData) -> str:
    """照合番号B: birth date (和暦 YYMMDD) + expiry year + security code, 14 digits (JPKI-FACTS §5)."""
    return wareki_yymmdd(holder.birth_date) + holder.expiry_year + holder.security_code


def my_number_ef(holder: HolderData) -> bytes:
    """EF 0001 of the text AP: ``FF 10 0C`` + 12 ASCII digits + ``FF FF`` (17 bytes)."""
    return tlv.encode(0xFF10, holder.my_number.encode("ascii")) + b"\xff\xff"


def basic_four_ef(holder: HolderData) -> bytes:
    """EF 0002: ``FF 20 L {DF21 offsets, DF22 name, DF23 address, DF24 birth date, DF25 sex}``."""
    fields = [
        tlv.encode(0xDF22, holder.name.encode("utf-8")),
        tlv.encode(0xDF23, holder.address.encode("utf-8")),
        tlv.encode(0xDF24, holder.birth_date.encode("ascii")),
        tlv.encode(0xDF25, holder.sex.encode("ascii")),
    ]
    offsets_tlv_len = 3 + 8
    body_len = offsets_tlv_len + sum(len(f) for f in fields)
    header_len = len(tlv.encode(0xFF20, bytes(body_len))) - body_len
    offsets, position = [], header_len + offsets_tlv_len
    for item in fields:
        offsets.append(position)
        position += len(item)
    offsets_tlv = tlv.encode(0xDF21, b"".join(o.to_bytes(2, "big") for o in offsets))
    return tlv.encode(0xFF20, offsets_tlv + b"".join(fields))


def text_applet(profile: CardProfile) -> Applet:
    holder = profile.holder
    applet = Applet("text", AID_TEXT)
    applet.add(ElementaryFile(EF_MY_NUMBER, content=my_number_ef(holder), read_pins=("text", "number_a")))
    applet.add(ElementaryFile(EF_BASIC_FOUR, content=basic_four_ef(holder), read_pins=("text", "number_b")))
    applet.add(ElementaryFile(EF_AP_INFO, content=tlv.encode(0xDF30, b"KENHOJO-TEST")))
    applet.add(ElementaryFile(EF_TEXT_PIN, FileKind.PIN, pin=pin_object(profile, "text", digits(4))))
    applet.add(ElementaryFile(EF_NUMBER_A, FileKind.PIN,
                              pin=PinObject("number_a", holder.my_number.encode(), 10, policy=digits(12))))
    applet.add(ElementaryFile(EF_NUMBER_B, FileKind.PIN,
                              pin=PinObject("number_b", number_b(holder).encode(), 10, policy=digits(14))))
    return applet


def visual_applet(profile: CardProfile) -> Applet:
    """券面事項確認AP with a small stand-in for its data EF (the real layout is UNCERTAIN, §5)."""
    holder = profile.holder
    applet = Applet("visual", AID_VISUAL)
    data = tlv.encode(0xDF24, holder.birth_date.encode()) + tlv.encode(0xDF25, holder.sex.encode())
    applet.add(ElementaryFile(EF_VISUAL_DATA, content=tlv.encode(0xFF40, data), read_pins=("visual_a", "visual_b")))
    applet.add(ElementaryFile(EF_VISUAL_A, FileKind.PIN,
                              pin=PinObject("visual_a", holder.my_number.encode(), 10, policy=digits(12))))
    applet.add(ElementaryFile(EF_VISUAL_B, FileKind.PIN,
                              pin=PinObject("visual_b", number_b(holder).encode(), 10, policy=digits(14))))
    return applet


def build_applets(profile: CardProfile) -> list[Applet]:
    builders = {
        "jpki": jpki_applet,
        "text": text_applet,
        "visual": visual_applet,
        "juki": lambda p: Applet("juki", AID_JUKI),
        "common": lambda p: Applet("common", AID_COMMON),
    }
    return [builders[name](profile) for name in profile.applets]
