"""Virtual serial reader modules: protocol-driven firmware on a pty, optionally served over RFC 2217.

``virtual:card?via=kiosk`` / ``?via=stb`` (``&transport=rfc2217``) go through :func:`open_via_serial`.
"""

from __future__ import annotations

from .bridge import open_via_serial, serve_forever
from .firmware import FirmwareStats, ReaderFirmware, SerialFaultPlan
from .portserver import PortServer, PtyLine

VIA_NAMES = ("kiosk", "stb", "serial")
SERIAL_SCHEMES = ("serial", "rfc2217", "socket")

__all__ = [
    "FirmwareStats",
    "PortServer",
    "PtyLine",
    "ReaderFirmware",
    "SerialFaultPlan",
    "open_via_serial",
    "serve_forever",
]
