"""The framing engine and the message codec: the three frame shapes, checksums, garbled input, resync."""

from __future__ import annotations

import pytest

from devices.serial import checksums
from devices.serial.framing import Control, Frame, Garbled, LengthFraming, LineFraming, StxEtxFraming
from devices.serial.messages import CodecError, Layouts, MessageCodec
from devices.serial.protocol import load_protocol

PAYLOAD = bytes(range(256)) + b"\x02\x03\x06\x15\xa5"  # every byte, and the control bytes inside a payload


def feed_bytewise(decoder, data: bytes) -> list:
    events = []
    for byte in data:
        events += decoder.feed(bytes((byte,)))
    return events


# --- checksums ---------------------------------------------------------------------------------------------


def test_checksums_match_their_definitions() -> None:
    assert checksums.bcc(b"\x00\x02\x10\x03") == b"\x11"
    assert checksums.sum8(b"\xff\x02") == b"\x01"
    assert checksums.crc16_ccitt(b"123456789") == bytes.fromhex("29B1")  # CRC-16/CCITT-FALSE check value
    assert checksums.xor_hex("GPGLL,5300.97914,N,00259.98174,E,125926,A") == "28"  # an NMEA sentence's *28


# --- STX/ETX -----------------------------------------------------------------------------------------------


def test_stx_etx_round_trip_whole_and_bytewise() -> None:
    framing = StxEtxFraming(max_payload=1024)
    frame = framing.encode(PAYLOAD)
    assert frame[0] == 0x02 and frame[-2] == 0x03
    assert frame[1:3] == len(PAYLOAD).to_bytes(2, "big")
    assert framing.decoder().feed(frame) == [Frame(PAYLOAD)]
    assert feed_bytewise(framing.decoder(), frame + frame) == [Frame(PAYLOAD), Frame(PAYLOAD)]


def test_stx_etx_ack_nak_between_frames_and_noise_skipped() -> None:
    framing = StxEtxFraming()
    decoder = framing.decoder()
    events = decoder.feed(b"\x06" + b"xx" + framing.encode(b"hi") + b"\x15")
    assert events == [Control("ack"), Frame(b"hi"), Control("nak")]
    assert decoder.noise == 2


def test_stx_etx_bad_bcc_names_both_values() -> None:
    framing = StxEtxFraming()
    frame = bytearray(framing.encode(b"\x20\x07\x00\x90\x00"))
    frame[-1] ^= 0x01
    [event] = framing.decoder().feed(bytes(frame))
    assert isinstance(event, Garbled)
    assert "BCC" in event.reason and "expected" in event.reason


def test_stx_etx_missing_etx_and_oversized_length_are_garbled() -> None:
    framing = StxEtxFraming(max_payload=16)
    frame = bytearray(framing.encode(b"abc"))
    frame[-2] = 0x7F
    [event] = framing.decoder().feed(bytes(frame))
    assert isinstance(event, Garbled) and "ETX missing" in event.reason
    [event] = framing.decoder().feed(b"\x02\x01\x00")
    assert isinstance(event, Garbled) and "exceeds max_payload 16" in event.reason
    with pytest.raises(ValueError, match="max_payload"):
        framing.encode(bytes(17))


def test_a_frame_cut_short_expires_and_the_next_frame_decodes() -> None:
    framing = StxEtxFraming()
    frame = framing.encode(b"payload")
    decoder = framing.decoder()
    assert decoder.feed(frame[:-3]) == []
    assert decoder.pending
    [event] = decoder.expire()
    assert isinstance(event, Garbled) and "cut short" in event.reason
    assert decoder.feed(frame) == [Frame(b"payload")]


# --- length-prefixed ----------------------------------------------------------------------------------------


def test_length_framing_with_sync_and_crc_round_trip() -> None:
    framing = LengthFraming(sync=b"\xa5", checksum="crc16", max_payload=512)
    frame = framing.encode(PAYLOAD)
    assert frame[0] == 0xA5 and frame[-2:] == checksums.crc16_ccitt(frame[1:-2])
    assert feed_bytewise(framing.decoder(), b"\x00\x01" + frame + frame) == [Frame(PAYLOAD)] * 2


def test_length_framing_bad_crc_and_resync_on_sync_byte() -> None:
    framing = LengthFraming(sync=b"\xa5", checksum="crc16")
    bad = bytearray(framing.encode(b"abc"))
    bad[4] ^= 0xFF
    events = framing.decoder().feed(bytes(bad) + framing.encode(b"ok"))
    assert isinstance(events[0], Garbled) and "CRC16" in events[0].reason
    assert events[1] == Frame(b"ok")


def test_length_framing_without_sync_discards_until_quiet_after_a_bad_length() -> None:
    framing = LengthFraming(sync=b"", checksum="sum8", max_payload=8, length_bytes=1)
    decoder = framing.decoder()
    events = decoder.feed(b"\xff" + framing.encode(b"lost"))
    assert len(events) == 1 and isinstance(events[0], Garbled)
    assert decoder.expire() == []  # the line went quiet: resynchronised
    assert decoder.feed(framing.encode(b"ok")) == [Frame(b"ok")]


def test_length_framing_ack_nak_need_sync() -> None:
    framing = LengthFraming(sync=b"\xa5", ack=0x06, nak=0x15)
    assert framing.decoder().feed(b"\x06" + framing.encode(b"x") + b"\x15") == [
        Control("ack"), Frame(b"x"), Control("nak")]


# --- lines --------------------------------------------------------------------------------------------------


def test_line_framing_checksum_ack_and_bad_lines() -> None:
    framing = LineFraming(checksum="xor-hex", ack="ACK", nak="NAK")
    frame = framing.encode(b"OK 07 9000")
    assert frame.endswith(b"\r\n") and b"*" in frame
    decoder = framing.decoder()
    assert feed_bytewise(decoder, framing.control("ack") + frame) == [Control("ack"), Frame(b"OK 07 9000")]
    [bad] = decoder.feed(b"OK 07 9000*00\r\n")
    assert isinstance(bad, Garbled) and "checksum *00" in bad.reason
    [missing] = decoder.feed(b"OK 07 9000\r\n")
    assert isinstance(missing, Garbled) and "no *HH" in missing.reason
    [binary] = decoder.feed(b"\xff\xfe\r\n")
    assert isinstance(binary, Garbled) and "non-ASCII" in binary.reason


def test_line_framing_overlong_line_is_reported_once() -> None:
    framing = LineFraming(max_line=16)
    decoder = framing.decoder()
    events = decoder.feed(b"A" * 40) + decoder.feed(b"B" * 40 + b"\r\n") + decoder.feed(b"next\r\n")
    assert [type(e) for e in events] == [Garbled, Frame]
    assert events[1] == Frame(b"next")


# --- message codec ------------------------------------------------------------------------------------------


def test_binary_codec_commands_responses_and_events() -> None:
    codec = load_protocol("kiosk").codec
    assert codec.command("transmit", 7, b"\x00\xa4") == b"\x20\x07\x00\xa4"
    command = codec.decode_command(b"\x20\x07\x00\xa4")
    assert (command.name, command.seq, command.data, command.known) == ("transmit", 7, b"\x00\xa4", True)
    response = codec.decode_from_reader(codec.response(0x20, 7, "card_removed"))
    assert (response.kind, response.name, response.status, response.seq) == ("response", "transmit", "card_removed", 7)
    event = codec.decode_from_reader(codec.event("card_inserted"))
    assert (event.kind, event.name) == ("event", "card_inserted")
    unknown = codec.decode_command(b"\x99\x01")
    assert not unknown.known and unknown.name == "0x99"
    with pytest.raises(CodecError, match="shorter"):
        codec.decode_from_reader(b"\x20")


def test_text_codec_tokens_and_errors() -> None:
    codec = load_protocol("line").codec
    assert codec.command("transmit", 0x0A, b"\x00\xa4") == b"APDU 0A 00A4"
    assert codec.response("APDU", 0x0A, "ok", b"\x90\x00") == b"OK 0A 9000"
    message = codec.decode_from_reader(b"OK 0A 9000")
    assert (message.status, message.seq, message.data) == ("ok", 10, b"\x90\x00")
    assert codec.decode_from_reader(b"REMOVED").name == "card_removed"
    assert codec.decode_from_reader(b"NOCARD 03").status == "no_card"
    with pytest.raises(CodecError, match="not hex"):
        codec.decode_from_reader(b"OK 0A 90ZZ")
    with pytest.raises(CodecError, match="tokens"):
        codec.decode_from_reader(b"OK 0A 9000 extra")


def test_codec_card_state_byte() -> None:
    codec = MessageCodec(True, Layouts(("code", "seq", "data"), ("code", "seq", "status", "data"), ("code",)),
                         {"status": 1}, {"card_inserted": 0x40, "card_removed": 0x41}, {"ok": 0})
    assert codec.card_state_name(b"\x02") == "powered"
    with pytest.raises(CodecError, match="card state 0x07"):
        codec.card_state_name(b"\x07")
