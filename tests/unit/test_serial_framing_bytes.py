"""The serial framings byte for byte: frames written out from the protocol files' own description
(fixtures/protocols/*.toml), never produced by the codec under test (nfcpy's HEX/FRAME style).

Each expected checksum says how to get it by hand. CRC-16/CCITT-FALSE values are also checked against
the standard library's ``binascii.crc_hqx`` (CRC-CCITT, poly 0x1021, with init 0xFFFF: the same CRC),
an implementation independent of ``devices.serial.checksums``.
"""

from __future__ import annotations

import binascii

import pytest

from devices.serial.checksums import bcc, crc16_ccitt, sum8, xor_hex
from devices.serial.framing import Control, Frame, Garbled
from devices.serial.messages import CodecError, Message
from devices.serial.protocol import load_protocol


def HEX(text: str) -> bytes:
    return bytes.fromhex(text)


def decode(protocol: str, wire: bytes) -> list:
    return load_protocol(protocol).framing.decoder().feed(wire)


SELECT_JPKI = HEX("00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01")  # 15 bytes; XOR of its bytes is 0x31


# -- the checksums against published check values --------------------------------------------------
def test_checksums_give_the_catalogue_check_values():
    # CRC-16/CCITT-FALSE of ASCII "123456789" is 0x29B1 (the CRC catalogue's check value)
    assert crc16_ccitt(b"123456789") == HEX("29 B1")
    # BCC: 0x31 ^ 0x32 ^ … ^ 0x39 = 0x31 (pairs 32^33, 34^35, 36^37, 38^39 are each 01: four 01s cancel)
    assert bcc(b"123456789") == HEX("31")
    # sum8: 0x31 + … + 0x39 = 0x1DD, low byte 0xDD
    assert sum8(b"123456789") == HEX("DD")
    # xor-hex: 'A' 0x41 ^ 'C' 0x43 ^ 'K' 0x4B = 0x49
    assert xor_hex("ACK") == "49"


# -- kiosk: STX | LEN(2, big-endian) | payload | ETX | BCC over LEN, payload and ETX -------------------
KIOSK_POWER_ON = HEX("02 0002 10 01 03 10")  # power_on (10) seq 1; BCC = 00^02^10^01^03 = 0x10
KIOSK_TRANSMIT = HEX("02 0011 20 07") + SELECT_JPKI + HEX("03 04")  # 17-byte payload; BCC = 00^11^20^07^31^03 = 04
KIOSK_ANSWER = HEX("02 0005 20 07 00 90 00 03 B1")  # transmit seq 7 ok, R-APDU 9000; BCC = 00^05^20^07^00^90^00^03
KIOSK_INSERTED = HEX("02 0001 40 03 42")  # event card_inserted (40); BCC = 00^01^40^03 = 0x42


def test_kiosk_commands_encode_to_the_bytes_the_file_describes():
    spec = load_protocol("kiosk")
    assert spec.framing.encode(spec.codec.command("power_on", 1)) == KIOSK_POWER_ON
    assert spec.framing.encode(spec.codec.command("transmit", 7, SELECT_JPKI)) == KIOSK_TRANSMIT
    assert spec.framing.control("ack") == HEX("06") and spec.framing.control("nak") == HEX("15")


def test_kiosk_module_answers_encode_to_the_bytes_the_file_describes():
    spec = load_protocol("kiosk")
    assert spec.framing.encode(spec.codec.response(0x20, 7, "ok", HEX("90 00"))) == KIOSK_ANSWER
    assert spec.framing.encode(spec.codec.event("card_inserted")) == KIOSK_INSERTED


def test_kiosk_bytes_decode_to_frames_controls_and_messages():
    spec = load_protocol("kiosk")
    events = decode("kiosk", HEX("06") + KIOSK_ANSWER + HEX("15") + KIOSK_INSERTED)
    assert events == [Control("ack"), Frame(HEX("20 07 00 90 00")), Control("nak"), Frame(HEX("40"))]
    assert spec.codec.decode_from_reader(events[1].payload) == Message("response", "transmit", 7, "ok", HEX("90 00"))
    assert spec.codec.decode_from_reader(events[3].payload) == Message("event", "card_inserted")
    command = spec.codec.decode_command(decode("kiosk", KIOSK_TRANSMIT)[0].payload)
    assert (command.name, command.seq, command.data) == ("transmit", 7, SELECT_JPKI)


def test_kiosk_frame_split_byte_by_byte_decodes_the_same():
    decoder = load_protocol("kiosk").framing.decoder()
    events = [event for byte in KIOSK_ANSWER for event in decoder.feed(bytes((byte,)))]
    assert events == [Frame(HEX("20 07 00 90 00"))]


@pytest.mark.parametrize(("wire", "reason"), [
    (HEX("02 0002 10 01 03 11"), "BCC 11, expected 10"),  # last byte changed: 0x11 is not 00^02^10^01^03
    (HEX("02 0002 10 01 04 10"), "ETX missing: 0x04 where 0x03 belongs"),  # 04 where ETX 03 belongs
    (HEX("02 0835"), "length field 2101 exceeds max_payload 2100"),  # 0x0835 = 2101 > the file's 2100
])
def test_kiosk_garbled_frames_are_garbled_events(wire, reason):
    events = decode("kiosk", wire)
    assert len(events) == 1 and isinstance(events[0], Garbled), events
    assert reason in events[0].reason and events[0].raw == wire


def test_kiosk_frame_of_a_payload_too_short_for_the_layout_is_a_codec_error():
    # an empty payload is a good frame (BCC = 00^00^03 = 03) but no response: its layout needs code, seq, status
    frame = decode("kiosk", HEX("02 0000 03 03"))
    assert frame == [Frame(b"")]
    with pytest.raises(CodecError, match="shorter than its 3 header fields"):
        load_protocol("kiosk").codec.decode_from_reader(frame[0].payload)


# -- set-top box: A5 | LEN(2, big-endian) | payload | CRC-16/CCITT-FALSE over LEN and payload ----------
STB_STATUS = HEX("A5 0002 04 11 2474")  # status (04) seq 0x11; CRC of 00 02 04 11 = 0x2474
STB_ANSWER = HEX("A5 0003 00 11 01 AAB3")  # ok (00) seq 0x11, card state present (01); CRC of 00 03 00 11 01
STB_INSERTED = HEX("A5 0001 E1 12A2")  # event card_inserted (E1); CRC of 00 01 E1 = 0x12A2


@pytest.mark.parametrize("frame", [STB_STATUS, STB_ANSWER, STB_INSERTED])
def test_stb_frame_crcs_match_the_standard_library(frame):
    assert binascii.crc_hqx(frame[1:-2], 0xFFFF).to_bytes(2, "big") == frame[-2:]


def test_stb_frames_encode_to_the_bytes_the_file_describes():
    spec = load_protocol("stb")
    assert spec.framing.encode(spec.codec.command("status", 0x11)) == STB_STATUS
    assert spec.framing.encode(spec.codec.response(0x04, 0x11, "ok", HEX("01"))) == STB_ANSWER
    assert spec.framing.encode(spec.codec.event("card_inserted")) == STB_INSERTED


def test_stb_bytes_decode_after_line_noise():
    spec = load_protocol("stb")
    decoder = spec.framing.decoder()
    events = decoder.feed(HEX("00 FF") + STB_ANSWER + STB_INSERTED)  # two noise bytes before the sync byte A5
    assert events == [Frame(HEX("00 11 01")), Frame(HEX("E1"))] and decoder.noise == 2
    assert spec.codec.decode_from_reader(events[0].payload) == Message("response", "response", 0x11, "ok", HEX("01"))
    assert spec.codec.card_state_name(events[0].payload[2:]) == "present"
    assert spec.codec.decode_from_reader(events[1].payload) == Message("event", "card_inserted")


@pytest.mark.parametrize(("wire", "reason"), [
    (HEX("A5 0002 04 11 2475"), "CRC16 2475, expected 2474"),  # CRC's last bit flipped
    (HEX("A5 0201"), "length field 513 exceeds max_payload 512"),  # 0x0201 = 513 > the file's 512
])
def test_stb_garbled_frames_are_garbled_events(wire, reason):
    events = decode("stb", wire)
    assert len(events) == 1 and isinstance(events[0], Garbled), events
    assert reason in events[0].reason


def test_stb_unknown_card_state_is_a_codec_error():
    with pytest.raises(CodecError, match="card state 0x02"):  # stb.toml: absent 00, present 01, powered 03
        load_protocol("stb").codec.card_state_name(HEX("02"))


# -- line: text | '*' | XOR of the text's characters as two hex digits | CR LF ----------------------------
LINE_TRANSMIT = b"APDU 07 00A4040C0AD392F000260100000001*7A\r\n"  # XOR of the 38 characters before '*' = 0x7A
LINE_ANSWER = b"OK 07 9000*0A\r\n"  # 'O'4F ^ 'K'4B ^ ' '20 ^ '0'30 ^ '7'37 ^ ' '20 ^ '9'39 ^ '0'30 ^ '0'30 ^ '0'30
LINE_ACK, LINE_NAK = b"ACK*49\r\n", b"NAK*44\r\n"  # 41^43^4B = 49; 4E^41^4B = 44
LINE_INSERTED = b"INSERTED*16\r\n"  # 49^4E^53^45^52^54^45^44 = 0x16


def test_line_frames_encode_to_the_bytes_the_file_describes():
    spec = load_protocol("line")
    assert spec.framing.encode(spec.codec.command("transmit", 7, SELECT_JPKI)) == LINE_TRANSMIT
    assert spec.framing.encode(spec.codec.response("APDU", 7, "ok", HEX("90 00"))) == LINE_ANSWER
    assert spec.framing.control("ack") == LINE_ACK and spec.framing.control("nak") == LINE_NAK
    assert spec.framing.encode(spec.codec.event("card_inserted")) == LINE_INSERTED


def test_line_bytes_decode_to_frames_controls_and_messages():
    spec = load_protocol("line")
    events = decode("line", LINE_ACK + LINE_ANSWER + LINE_NAK + LINE_INSERTED)
    assert events == [Control("ack"), Frame(b"OK 07 9000"), Control("nak"), Frame(b"INSERTED")]
    assert spec.codec.decode_from_reader(b"OK 07 9000") == Message("response", "response", 7, "ok", HEX("90 00"))
    assert spec.codec.decode_from_reader(b"INSERTED") == Message("event", "card_inserted")
    command = spec.codec.decode_command(decode("line", LINE_TRANSMIT)[0].payload)
    assert (command.name, command.seq, command.data) == ("transmit", 7, SELECT_JPKI)


@pytest.mark.parametrize(("wire", "reason"), [
    (b"OK 07 9000*0B\r\n", "checksum *0B of line 'OK 07 9000', expected *0A"),
    (b"OK 07 9000\r\n", "line has no *HH checksum"),
    (b"OK \xff*00\r\n", "non-ASCII byte"),
])
def test_line_garbled_lines_are_garbled_events(wire, reason):
    events = decode("line", wire)
    assert len(events) == 1 and isinstance(events[0], Garbled), events
    assert reason in events[0].reason


def test_line_with_a_sequence_token_that_is_not_hex_is_a_codec_error():
    with pytest.raises(CodecError, match="sequence token 'XY' is not hex"):
        load_protocol("line").codec.decode_from_reader(b"OK XY 9000")
