"""``nfc:`` device names: nfcpy's own device path after the scheme, plus the harness's options.

``nfc:usb``, ``nfc:usb:054c:06c3`` (vendor:product), ``nfc:usb:003:009`` (bus:device, changes on a
replug), ``nfc:usb?serial=0123456789`` (the reader's USB serial number from sysfs: survives a replug
and another plug order), ``nfc:tty:USB0:pn532``, ``nfc:udp:127.0.0.1:54321``. Options:
``targets=106B,106A``, ``extended=0``, ``max_response=N``, ``bit_rate=auto|106|212|424`` (Type B: the
rate ATTRIB asks for; ``auto`` the fastest the card offers both ways and the link can carry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.base import UnknownDevice
from devices.uri import TERMINAL_OPTION, BadDeviceUri, DeviceUri, Option

_USB_PATH = re.compile(r"^usb(?::[0-9a-fA-F]{4}(?::[0-9a-fA-F]{4})?|:\d{1,3}(?::\d{1,3})?)?$")
_TTY_PATH = re.compile(r"^(?:tty|com):[A-Za-z0-9-]+(?::[a-z0-9_]+)?$")
_UDP_PATH = re.compile(r"^udp(?::(?P<host>[^:]*))?(?::(?P<port>\d+))?$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
PATH_HELP = (
    "use nfc:usb, nfc:usb:VID:PID (e.g. nfc:usb:054c:06c3), nfc:usb:BUS:DEV, nfc:usb?serial=SERIAL, "
    "nfc:tty:PORT:DRIVER (e.g. nfc:tty:USB0:pn532) or nfc:udp:127.0.0.1:PORT"
)
NFC_TARGETS = ("106A", "106B", "212B", "424B")
BIT_RATES = ("auto", "106", "212", "424")
URI_OPTIONS = (
    Option("targets", "text"),
    Option("extended"),
    Option("max_response", "int", low=1, high=65536),
    Option("serial", "text"),
    Option("bit_rate", "choice", choices=BIT_RATES),
    TERMINAL_OPTION,
)


@dataclass(frozen=True)
class NfcUri:
    path: str  # nfcpy's device path (``usb`` until a serial number is resolved to ``usb:BUS:DEV``)
    targets: tuple[str, ...]
    extended: bool = True
    max_response: int = 65536
    serial: str = ""  # the USB serial number the reader must have
    bit_rate: int | None = None  # None: the fastest both sides offer


def parse_nfc_uri(uri: str) -> NfcUri:
    """Split ``nfc:<nfcpy path>[?options]``; any malformed name raises one line naming the forms."""
    parsed = DeviceUri.parse(uri if uri.startswith("nfc:") else f"nfc:{uri}")
    path = parsed.body
    values = parsed.typed(URI_OPTIONS)
    if _UDP_PATH.match(path):
        match = _UDP_PATH.match(path)
        assert match is not None
        host = match.group("host") or "127.0.0.1"
        port = int(match.group("port") or 54321)
        if not (host == "localhost" or _IPV4.match(host)) or not 0 < port < 65536:
            raise UnknownDevice(f"'{uri}': udp needs a numeric IPv4 host and a port 1-65535; {PATH_HELP}")
        path, default_targets = f"udp:{host}:{port}", "106B"  # our virtual PICCs are Type B
    elif _USB_PATH.match(path) or _TTY_PATH.match(path):
        default_targets = "106B,106A"
    else:
        raise UnknownDevice(f"'{uri}' is not an nfcpy device path; {PATH_HELP}")
    serial = str(values.get("serial", "")).strip()
    if serial and path != "usb":
        raise BadDeviceUri(f"{uri}: option serial= names a USB reader by itself; use nfc:usb?serial={serial}")
    wanted = values.get("targets", default_targets).split(",")
    targets = tuple(t.strip().upper() for t in wanted if t.strip())
    bad = [t for t in targets if t not in NFC_TARGETS]
    if bad or not targets:
        raise UnknownDevice(f"'{uri}': targets must be among {', '.join(NFC_TARGETS)}, got {','.join(bad)}")
    if len(set(targets)) != len(targets):
        raise UnknownDevice(f"'{uri}': targets names a technology twice")
    extended = values.get("extended", True)
    max_response = values.get("max_response", 65536)  # extended=0 caps it at 256 (capabilities)
    rate = values.get("bit_rate", "auto")
    return NfcUri(path, targets, extended, max_response, serial, None if rate == "auto" else int(rate))
