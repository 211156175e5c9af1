"""Serial card-reader modules (kiosk, set-top box): framing engine, protocol files, the serial Reader.

Device URIs: ``serial:/dev/ttyUSB0?protocol=kiosk``, ``rfc2217://host:port?protocol=stb``,
``socket://host:port?protocol=kiosk``; :func:`open_serial` is the opener for all three schemes.
"""

from __future__ import annotations

from .framing import Control, Decoder, Frame, Framing, Garbled, LengthFraming, LineFraming, StxEtxFraming
from .link import LinkStats, SerialLink
from .messages import CodecError, Message, MessageCodec
from .protocol import (
    PROTOCOLS_DIR,
    ProtocolFileError,
    ProtocolSpec,
    available_protocols,
    load_protocol,
    protocol_path,
)
from .reader import SerialReader, discover, open_serial, parse_serial_uri

__all__ = [
    "PROTOCOLS_DIR",
    "CodecError",
    "Control",
    "Decoder",
    "Frame",
    "Framing",
    "Garbled",
    "LengthFraming",
    "LineFraming",
    "LinkStats",
    "Message",
    "MessageCodec",
    "ProtocolFileError",
    "ProtocolSpec",
    "SerialLink",
    "SerialReader",
    "StxEtxFraming",
    "available_protocols",
    "discover",
    "load_protocol",
    "open_serial",
    "parse_serial_uri",
    "protocol_path",
]
