"""What a command APDU is called, and how its secret data is written down in a trace file.

A trace file keeps every byte of an exchange except reference data (PINs, passwords, 照合番号): those are
replaced by a marker that keeps the length and the character class (``****(4 digits)``), so a replay can
tell a 4-digit PIN from a malformed 5-character one without ever holding either.

Imports only :mod:`harness.iso.apdu` (ISO level), so the device layer may use it too.
"""

from __future__ import annotations

import re

from harness.iso.apdu import to_hex

MASK = "****"  # as harness.iso.redact writes it
SECRET_INS = frozenset({0x20, 0x24})  # VERIFY, CHANGE REFERENCE DATA (as harness.iso.redact.carries_secret)

# ISO 7816-4 instructions (and the JPKI's proprietary ones, CLA 80)
INS_NAMES = {
    0x0E: "ERASE BINARY", 0x20: "VERIFY", 0x24: "CHANGE REFERENCE DATA", 0x2C: "RESET RETRY COUNTER",
    0x44: "ACTIVATE FILE", 0x70: "MANAGE CHANNEL", 0x82: "EXTERNAL AUTHENTICATE", 0x84: "GET CHALLENGE",
    0x86: "GENERAL AUTHENTICATE", 0x88: "INTERNAL AUTHENTICATE", 0xA4: "SELECT", 0xB0: "READ BINARY",
    0xB1: "READ BINARY (odd)", 0xB2: "READ RECORD", 0xC0: "GET RESPONSE", 0xCA: "GET DATA",
    0xCB: "GET DATA (odd)", 0xD6: "UPDATE BINARY", 0xDC: "UPDATE RECORD", 0xE2: "APPEND RECORD",
}
PSO_NAMES = {(0x9E, 0x9A): "PSO: COMPUTE DIGITAL SIGNATURE", (0x80, 0x86): "PSO: DECIPHER",
             (0x86, 0x80): "PSO: ENCIPHER"}
# JPKI-FACTS §4: the JPKI AP signs with CLA 80 INS 2A P1 00, P2 80 (the auth or the sign key, as selected)
JPKI_SIGN = "PSO: COMPUTE DIGITAL SIGNATURE"

# character classes, narrowest first: a marker names the first that holds every character
CHARACTER_CLASSES = (
    ("digits", re.compile(r"[0-9]+")),
    ("A-Z0-9", re.compile(r"[A-Z0-9]+")),
    ("letters and digits", re.compile(r"[A-Za-z0-9]+")),
    ("printable", re.compile(r"[\x20-\x7e]+")),
)
MARKER = re.compile(r"\*\*\*\*\((\d+) ([^)]+)\)")


def character_class(data: bytes) -> str:
    """The narrowest class of ``data`` (``digits``, ``A-Z0-9``, …; ``bytes`` when not printable ASCII)."""
    text = data.decode("latin-1")
    for name, pattern in CHARACTER_CLASSES:
        if pattern.fullmatch(text):
            return name
    return "bytes"


def secret_marker(data: bytes) -> str:
    """``****(4 digits)``: what is written instead of reference data."""
    return f"{MASK}({len(data)} {character_class(data)})"


def placeholder(length: int, cls: str) -> str:
    """A value of the given length and class (what a replay device asks a suite to send as a PIN)."""
    if cls == "digits":
        return "0" * length
    if cls == "A-Z0-9":
        return ("A" * (length - 1) + "1") if length > 1 else "A"
    if cls == "letters and digits":
        return "a" * length
    return "A" * length


def carries_secret(apdu: bytes) -> bool:
    """True when the command's data field is reference data (the rule of :func:`harness.iso.redact.carries_secret`)."""
    return len(apdu) > 5 and apdu[1] in SECRET_INS and apdu[0] & 0x80 == 0


def command_hex(apdu: bytes) -> str:
    """Hex of a command with VERIFY/CHANGE data replaced by its marker (header and Lc kept)."""
    if not carries_secret(apdu):
        return to_hex(apdu)
    head = 7 if apdu[4] == 0 and len(apdu) > 7 else 5
    return f"{to_hex(apdu[:head])} {secret_marker(apdu[head:])}"


def command_name(apdu: bytes, applet: str | None = None) -> str:
    """SELECT, READ BINARY, VERIFY, PSO: COMPUTE DIGITAL SIGNATURE…: from the CLA/INS/P1/P2 and the applet."""
    if len(apdu) < 4:
        return "malformed command"
    cla, ins, p1, p2 = apdu[:4]
    if ins == 0x2A:
        if applet == "jpki" and cla & 0x80:
            return JPKI_SIGN
        return PSO_NAMES.get((p1, p2), "PERFORM SECURITY OPERATION")
    name = INS_NAMES.get(ins)
    if name is None:
        return f"INS {ins:02X}" + (" (proprietary)" if cla & 0x80 else "")
    if ins == 0xA4:
        return "SELECT AID" if p1 == 0x04 else "SELECT EF"
    if ins == 0x20 and len(apdu) <= 5:
        return "VERIFY (retry query)"
    return name
