"""The APDU encoder and decoder against the ISO/IEC 7816-3 cases, short and extended."""

import pytest

from harness.iso.apdu import ApduError, CommandApdu, ResponseApdu, parse_hex, status_name


@pytest.mark.parametrize(
    ("cmd", "encoded", "case"),
    [
        (CommandApdu(0x00, 0xA4, 0x00, 0x00), "00A40000", 1),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4), "00B0000004", 2),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=256), "00B0000000", 2),
        (CommandApdu(0x00, 0xA4, 0x02, 0x0C, b"\x00\x0a"), "00A4020C02000A", 3),
        (CommandApdu(0x80, 0x2A, 0x00, 0x80, b"\x01\x02", le=256), "802A0080020102" + "00", 4),
        # extended forms
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536), "00B0000000" + "0000", 2),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=257), "00B0000000" + "0101", 2),
        (CommandApdu(0x00, 0xD6, 0x00, 0x00, bytes(300)), "00D6000000012C" + "00" * 300, 3),
        (CommandApdu(0x80, 0x2A, 0x00, 0x80, bytes(300), le=256), "802A008000012C" + "00" * 300 + "0100", 4),
        (CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4, extended=True), "00B0000000" + "0004", 2),
    ],
)
def test_encodes_each_iso_case_and_parses_it_back(cmd, encoded, case):
    assert cmd.to_bytes().hex().upper() == encoded.upper()
    assert cmd.case == case
    parsed = CommandApdu.parse(bytes.fromhex(encoded))
    assert (parsed.cla, parsed.ins, parsed.p1, parsed.p2, parsed.data, parsed.le) == (
        cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.le)
    assert parsed.case == case


def test_case_4_extended_le_of_zero_means_65536():
    parsed = CommandApdu.parse(bytes.fromhex("80 2A 00 80 00 00 02 01 02 00 00".replace(" ", "")))
    assert parsed.data == b"\x01\x02" and parsed.le == 65536 and parsed.is_extended


@pytest.mark.parametrize(
    "raw",
    ["00A404", "00A4040C0AD392", "00A4040C02000A0000", "00B000000000", "00B00000000003AABB", "00D6000000000000"],
)
def test_rejects_malformed_lengths(raw):
    with pytest.raises(ApduError):
        CommandApdu.parse(bytes.fromhex(raw))


def test_rejects_out_of_range_fields():
    with pytest.raises(ApduError):
        CommandApdu(0x100, 0, 0, 0)
    with pytest.raises(ApduError):
        CommandApdu(0, 0, 0, 0, le=0)
    with pytest.raises(ApduError):
        CommandApdu(0, 0, 0, 0, bytes(65536))


def test_response_status_words_and_names():
    response = ResponseApdu.parse(bytes.fromhex("01029000"))
    assert response.data == b"\x01\x02" and response.ok and response.sw == 0x9000
    assert ResponseApdu.parse(b"\x63\xc2").sw_name == "verification failed or queried, 2 tries left"
    assert status_name(0x6982) == "security status not satisfied"
    assert status_name(0x6984) == "reference data blocked"
    assert status_name(0x6110) == "16 more bytes available (GET RESPONSE)"
    assert status_name(0x6C00) == "wrong Le, exact length is 256"
    assert status_name(0x1234) == "unknown status"
    with pytest.raises(ApduError):
        ResponseApdu.parse(b"\x90")


def test_parse_hex_accepts_spaces_and_colons_and_rejects_garbage():
    assert parse_hex("00 a4:04 0C") == b"\x00\xa4\x04\x0c"
    with pytest.raises(ApduError):
        parse_hex("00 G4")
