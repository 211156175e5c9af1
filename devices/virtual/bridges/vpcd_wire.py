"""vpcd's wire format: what vsmartcard's vpcd driver and the card side say on one TCP connection.

Every message, either way, is a 2-byte big-endian length and then that many payload bytes. From vpcd a
1-byte payload is a control (0 power off, 1 power on, 2 reset, 4 "send the ATR"), anything longer a
C-APDU. The card answers the ATR request with the ATR and every C-APDU with its R-APDU, each one
message; power off, on and reset get no answer. Pure bytes, no I/O: the card server and the tests
share it.
"""

from __future__ import annotations

from enum import IntEnum

from devices.base import ProtocolError

VPCD_PORT = 35963  # /etc/reader.conf.d/vpcd: CHANNELID 0x8C7B; slot n listens on 35963 + n
LENGTH_BYTES = 2
MAX_PAYLOAD = 0xFFFF  # what a 2-byte length can say


class Control(IntEnum):
    """vpcd's one-byte control messages (vsmartcard vpcd.h: VPCD_CTRL_OFF, _ON, _RESET, _ATR)."""

    POWER_OFF = 0
    POWER_ON = 1
    RESET = 2
    ATR = 4


class VpcdWireError(ProtocolError):
    """Bytes that are not a vpcd message: an unknown control, an oversize payload, a frame cut short."""


def encode(payload: bytes) -> bytes:
    """One message: the payload's length (2 bytes, big-endian), then the payload."""
    if len(payload) > MAX_PAYLOAD:
        raise VpcdWireError(f"a vpcd message carries at most {MAX_PAYLOAD} bytes, not {len(payload)}")
    return len(payload).to_bytes(LENGTH_BYTES, "big") + payload


def decode_message(payload: bytes) -> Control | bytes:
    """A message from vpcd: its :class:`Control`, or the C-APDU's bytes (any other length)."""
    if len(payload) != 1:
        return payload
    try:
        return Control(payload[0])
    except ValueError:
        raise VpcdWireError(f"unknown vpcd control 0x{payload[0]:02X} (known: 00 off, 01 on, 02 reset, "
                            "04 ATR)") from None


class MessageBuffer:
    """Cuts the byte stream of one connection into message payloads, however TCP splits it."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> bytes | None:
        """The next whole message's payload, or None until its last byte has come."""
        if len(self._buffer) < LENGTH_BYTES:
            return None
        end = LENGTH_BYTES + int.from_bytes(self._buffer[:LENGTH_BYTES], "big")
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[LENGTH_BYTES:end])
        del self._buffer[:end]
        return payload

    def close(self) -> None:
        """The connection ended: a message begun and not finished is an error (say how far it got)."""
        buffered, self._buffer = bytes(self._buffer), bytearray()
        if not buffered:
            return
        if len(buffered) < LENGTH_BYTES:
            raise VpcdWireError(f"vpcd stream ended inside a length field ({buffered.hex(' ').upper()})")
        size = int.from_bytes(buffered[:LENGTH_BYTES], "big")
        raise VpcdWireError(f"vpcd stream ended {len(buffered) - LENGTH_BYTES} bytes into a {size}-byte message")
