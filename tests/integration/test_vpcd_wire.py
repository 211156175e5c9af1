"""vpcd's wire format byte for byte (devices/virtual/bridges/vpcd_wire.py, and the card server speaking it).

Expected bytes are written out from vsmartcard's vpcd protocol (PLATFORM-NOTES.md): every message is a
2-byte big-endian length, then the payload; a 1-byte payload from vpcd is a control (00 power off, 01
power on, 02 reset: no answer; 04 send the ATR: answered with the ATR); a longer one a C-APDU, answered
with the R-APDU. The last test plays vpcd's side of a real TCP connection on 127.0.0.1 with literal bytes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from devices.base import ProtocolError
from devices.virtual.bridges.vpcd import VpcdCardServer
from devices.virtual.bridges.vpcd_wire import Control, MessageBuffer, VpcdWireError, decode_message, encode
from devices.virtual.card import VirtualCard
from devices.virtual.slot import CardSlot


def HEX(text: str) -> bytes:
    return bytes.fromhex(text)


CARD_ATR = HEX("3B E0 00 FF 81 31 FE 45 14")  # fixtures/cards/card.toml: 9 bytes
SELECT_JPKI = HEX("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01")  # 15 bytes = 0x000F


# -- encoding: the card's answers -------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "wire"), [
    (CARD_ATR, HEX("00 09") + CARD_ATR),  # the ATR: 9 bytes
    (HEX("90 00"), HEX("00 02 90 00")),  # an R-APDU of status only
    (b"", HEX("00 00")),
    (bytes(256), HEX("01 00") + bytes(256)),  # 256 = 0x0100: the high byte comes first
    (bytes(0xFFFF), HEX("FF FF") + bytes(0xFFFF)),  # the largest a 2-byte length can say
])
def test_encode_prefixes_the_big_endian_length(payload, wire):
    assert encode(payload) == wire


def test_a_payload_over_65535_bytes_is_a_typed_error():
    with pytest.raises(VpcdWireError, match="at most 65535 bytes, not 65536"):
        encode(bytes(0x10000))
    assert issubclass(VpcdWireError, ProtocolError)


# -- decoding: what vpcd sends ------------------------------------------------------------------------
@pytest.mark.parametrize(("wire", "control"), [
    (HEX("00 01 00"), Control.POWER_OFF),
    (HEX("00 01 01"), Control.POWER_ON),
    (HEX("00 01 02"), Control.RESET),
    (HEX("00 01 04"), Control.ATR),
])
def test_one_byte_messages_are_the_controls(wire, control):
    buffer = MessageBuffer()
    buffer.feed(wire)
    assert decode_message(buffer.next()) is control and buffer.next() is None


def test_a_stream_is_cut_into_messages_however_it_arrives():
    # vpcd 3.3 writes the length and the payload in two sends; TCP may also join messages
    stream = HEX("00 01 01") + HEX("00 0F") + SELECT_JPKI + HEX("00 01 04")
    for step in (1, 2, 5, len(stream)):
        buffer, messages = MessageBuffer(), []
        for at in range(0, len(stream), step):
            buffer.feed(stream[at : at + step])
            while (message := buffer.next()) is not None:
                messages.append(decode_message(message))
        assert messages == [Control.POWER_ON, SELECT_JPKI, Control.ATR], step
        buffer.close()  # nothing left over: no error


def test_an_unknown_control_byte_is_a_typed_error():
    with pytest.raises(VpcdWireError, match="unknown vpcd control 0x03"):
        decode_message(HEX("03"))


@pytest.mark.parametrize(("wire", "reason"), [
    (HEX("00"), "inside a length field"),  # one byte of the two-byte length
    (HEX("00 0F 00 A4"), "2 bytes into a 15-byte message"),  # 0x000F announced, two payload bytes came
])
def test_a_stream_that_ends_inside_a_message_is_a_typed_error(wire, reason):
    buffer = MessageBuffer()
    buffer.feed(wire)
    assert buffer.next() is None
    with pytest.raises(VpcdWireError, match=reason):
        buffer.close()


# -- the card server on a real connection, vpcd's side played with literal bytes ----------------------
@pytest.fixture
def vpcd_side() -> Iterator[tuple[socket.socket, VpcdCardServer]]:
    """A listener on 127.0.0.1 where vpcd would be; the card server connects to it like to vpcd."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)  # a bound, not a measurement
    server = VpcdCardServer(CardSlot(VirtualCard.from_profile("card")), port=listener.getsockname()[1])
    server.start(timeout=5.0)
    conn, _ = listener.accept()
    conn.settimeout(5.0)
    try:
        yield conn, server
    finally:
        server.stop()
        conn.close()
        listener.close()


def _read(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_the_card_server_answers_vpcds_bytes(vpcd_side):
    conn, server = vpcd_side
    conn.sendall(HEX("00 01 04"))  # send the ATR
    assert _read(conn, 11) == HEX("00 09") + CARD_ATR
    # power on, then an unknown control (03): neither is answered, so the next bytes back are the SELECT's
    conn.sendall(HEX("00 01 01") + HEX("00 01 03") + HEX("00 0F") + SELECT_JPKI)
    assert _read(conn, 4) == HEX("00 02 90 00")
    assert "0x03" in server.last_error
    conn.sendall(HEX("00 02 00 A4"))  # two bytes are no C-APDU (a header is four): wrong length
    assert _read(conn, 4) == HEX("00 02 67 00")
    server.remove()  # the card leaves: the server closes the connection (vpcd then sees an empty reader)
    assert _read(conn, 1) == b""
