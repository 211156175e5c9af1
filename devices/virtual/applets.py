"""Populate the card OS with the My Number card's applets from a profile (JPKI-FACTS §1-§5, §10).

The JPKI AP lives here; the text AP, the 券面事項確認AP and the 共通AP/住基AP have their own
modules. Keys and fixture files come through :mod:`devices.virtual.pkifiles`, parsed once per
process; everything mutable (PIN objects, counters) is built fresh for every card.
"""

from __future__ import annotations

import re

from harness.fixtures import wareki_yymmdd

from .cardos import Applet, ElementaryFile, FileKind
from .pkifiles import digits, load_key, pin_object, read_fixture, zero_filled
from .profile import PKI_DIR, CardProfile, ProfileError
from .resident_aps import AID_COMMON, AID_JUKI, common_applet, juki_applet
from .text_ap import AID_TEXT, basic_four_ef, my_number_ef, number_b, text_applet
from .visual_ap import AID_VISUAL, visual_applet

__all__ = ["AID_COMMON", "AID_ISD", "AID_JPKI", "AID_JUKI", "AID_TEXT", "AID_VISUAL", "basic_four_ef",
           "build_applets", "digits", "my_number_ef", "number_b", "token_info", "wareki_yymmdd"]

# JPKI-FACTS §1 (CONFIRMED)
AID_JPKI = bytes.fromhex("D392F000260100000001")
AID_ISD = bytes.fromhex("A0000001510000")  # §10 SOL: the GlobalPlatform ISD AID selects (profile option)

# JPKI AP FIDs, JPKI-FACTS §2 and §10
EF_SIGN_CERT, EF_SIGN_CA, EF_TOKEN, EF_AUTH_CERT, EF_AUTH_CA = 0x0001, 0x0002, 0x0006, 0x000A, 0x000B
EF_AUTH_KEY, EF_AUTH_PIN, EF_SIGN_KEY, EF_SIGN_PIN = 0x0017, 0x0018, 0x001A, 0x001B
EF_CERT_FLAGS, EF_UNPUBLISHED = 0x0008, (0x0009, 0x0016)
# text AP FIDs, kept here for older imports
EF_MY_NUMBER, EF_BASIC_FOUR, EF_AP_INFO = 0x0001, 0x0002, 0x0005
EF_TEXT_PIN, EF_NUMBER_A, EF_NUMBER_B = 0x0011, 0x0014, 0x0015

TOKEN_EF_SIZE = 160  # §10 SOL: a PKCS#11 CK_TOKEN_INFO
TOKEN_FLAGS = 0x040D  # §10 SOL: CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED
CERT_FLAGS_BOTH = b"\x8f\x8f\x00"  # §10 CONFIRMED: EF 0008 on a card holding both certificates


def sign_password_ok(value: bytes) -> bool:
    # JPKI-FACTS §3: 6-16 characters, A-Z and 0-9
    return re.fullmatch(rb"[A-Z0-9]{6,16}", value) is not None


def token_info(label: str, max_pin: int = 16, min_pin: int = 6) -> bytes:
    """EF 0006 shaped as a CK_TOKEN_INFO (§10 SOL): label, manufacturer, model, serial (space-padded),
    then flags and the PIN length limits as 4-byte big-endian words, zero-filled to 160 bytes."""
    head = (label.encode("ascii").ljust(32, b" ") + b"J-LIS".ljust(32, b" ") + b"JPKI".ljust(16, b" ")
            + b"".ljust(16, b" "))
    words = [TOKEN_FLAGS, 0, 0, 0, 0, max_pin, min_pin]
    return zero_filled(head + b"".join(w.to_bytes(4, "big") for w in words), TOKEN_EF_SIZE)


def jpki_applet(profile: CardProfile) -> Applet:
    applet = Applet("jpki", AID_JPKI)
    auth_cert = read_fixture(profile.pki_file("auth.der"))
    sign_cert = read_fixture(profile.pki_file("sign.der"))
    for der in (auth_cert, sign_cert):
        if len(der) > profile.cert_ef_size:
            raise ProfileError(f"{profile.source}: certificate of {len(der)} bytes exceeds its EF "
                               f"({profile.cert_ef_size})")
    size = profile.cert_ef_size
    applet.add(ElementaryFile(EF_SIGN_CERT, content=zero_filled(sign_cert, size), read_pins=("sign",)))
    applet.add(ElementaryFile(EF_SIGN_CA, content=zero_filled(read_fixture(PKI_DIR / "sign-ca.der"),
                                                              profile.sign_ca_ef_size)))
    applet.add(ElementaryFile(EF_TOKEN, content=token_info(profile.token_label)))
    applet.add(ElementaryFile(EF_CERT_FLAGS, content=CERT_FLAGS_BOTH))
    for fid in EF_UNPUBLISHED:  # §10: they exist, their content is unpublished
        applet.add(ElementaryFile(fid, content=bytes(16)))
    applet.add(ElementaryFile(EF_AUTH_CERT, content=zero_filled(auth_cert, size),
                              read_pins=("auth",) if profile.auth_cert_needs_pin else ()))
    applet.add(ElementaryFile(EF_AUTH_CA, content=zero_filled(read_fixture(PKI_DIR / "auth-ca.der"), size)))
    applet.add(ElementaryFile(EF_AUTH_KEY, FileKind.KEY, key=load_key(profile.pki_file("auth.key.pem")),
                              key_pin="auth"))
    applet.add(ElementaryFile(EF_SIGN_KEY, FileKind.KEY, key=load_key(profile.pki_file("sign.key.pem")),
                              key_pin="sign"))
    applet.add(ElementaryFile(EF_AUTH_PIN, FileKind.PIN, pin=pin_object(profile, "auth", digits(4))))
    applet.add(ElementaryFile(EF_SIGN_PIN, FileKind.PIN, pin=pin_object(profile, "sign", sign_password_ok)))
    return applet


BUILDERS = {
    "jpki": jpki_applet,
    "text": text_applet,
    "visual": visual_applet,
    "juki": juki_applet,
    "common": common_applet,
}


def build_applets(profile: CardProfile) -> list[Applet]:
    applets = [BUILDERS[name](profile) for name in profile.applets]
    if profile.isd_selectable:
        applets.append(Applet("isd", AID_ISD))
    return applets
