"""共通AP and 住基AP: a PIN object ``001C`` each, and 共通AP's record file ``0001``.

JPKI-FACTS §10 CONFIRMED: each AP holds PIN ``001C`` (住民基本台帳用暗証番号, 4 digits, 3 tries) that
answers the retry query; 共通AP EF ``0001`` is a record file read with ``00 B2 01 0C 00`` whose
record 1 is ``01 1C`` and the card identification digits (28 of them, the length byte says).
"""

from __future__ import annotations

import hashlib

from .cardos import Applet, ElementaryFile, FileKind
from .pkifiles import digits, pin_object
from .profile import CardProfile, HolderData

AID_JUKI = bytes.fromhex("D3921000310001010401")
AID_COMMON = bytes.fromhex("D3921000310001010100")
EF_CARD_ID, EF_JUKI_PIN = 0x0001, 0x001C
CARD_ID_DIGITS = 0x1C


def card_identification(holder: HolderData) -> str:
    """28 digits that identify the (virtual) card, derived from the holder's auth identifier."""
    value = int.from_bytes(hashlib.sha256(holder.auth_cn.encode("ascii")).digest(), "big")
    return str(value)[:CARD_ID_DIGITS]


def card_id_record(holder: HolderData) -> bytes:
    return bytes((0x01, CARD_ID_DIGITS)) + card_identification(holder).encode("ascii")


def juki_applet(profile: CardProfile) -> Applet:
    applet = Applet("juki", AID_JUKI)
    applet.add(ElementaryFile(EF_JUKI_PIN, FileKind.PIN, pin=pin_object(profile, "juki", digits(4))))
    return applet


def common_applet(profile: CardProfile) -> Applet:
    applet = Applet("common", AID_COMMON)
    applet.add(ElementaryFile(EF_CARD_ID, FileKind.RECORD, records=(card_id_record(profile.holder),)))
    applet.add(ElementaryFile(EF_JUKI_PIN, FileKind.PIN, pin=pin_object(profile, "juki", digits(4))))
    return applet
