"""ATR parsing: the contact and contactless ATRs of JPKI-FACTS §7, T=0 cards, historical bytes, malformed ATRs."""

from __future__ import annotations

import pytest

from harness.iso.atr import AtrError, parse_atr


def with_tck(hex_without_tck: str) -> str:
    """Append the check byte that makes the XOR of T0…TCK zero."""
    raw = bytes.fromhex(hex_without_tck.replace(" ", ""))
    check = 0
    for byte in raw[1:]:
        check ^= byte
    return (raw + bytes((check,))).hex()


@pytest.mark.parametrize("atr", [
    "3B E0 00 FF 81 31 FE 45 14",
    "3B DA 13 FF 81 31 FB 46 80 12 39 2F 31 C1 73 C6 01 C0 3B",
    "3B C5 FF 81 31 FB 45 80 73 C6 01 00 00",
])
def test_my_number_contact_atrs_offer_t1_with_a_valid_tck(atr):
    parsed = parse_atr(atr)
    assert parsed.convention == "direct"
    assert parsed.protocols == (1,)
    assert parsed.offers("T=1") and parsed.offers(1) and not parsed.offers("T=0")
    assert parsed.tck_ok is True
    assert parsed.contactless is None
    assert parse_atr(atr, strict=True) == parsed


def test_interface_bytes_of_the_jpki_atr():
    atr = parse_atr("3B E0 00 FF 81 31 FE 45 14")
    assert atr.interface_summary == "TB1=00 TC1=FF TD1=81 TD2=31 TA3=FE TB3=45"
    assert [g.protocol for g in atr.groups] == [1, 1, None]
    assert atr.historical == b"" and atr.tck == 0x14


def test_card_capabilities_in_historical_bytes_tell_extended_apdus():
    with_caps = parse_atr("3B DA 13 FF 81 31 FB 46 80 12 39 2F 31 C1 73 C6 01 C0 3B")
    assert dict(with_caps.compact_tlv)[0x7] == bytes.fromhex("C601C0")
    assert with_caps.extended_apdu is True
    assert parse_atr("3B C5 FF 81 31 FB 45 80 73 C6 01 00 00").extended_apdu is False
    assert parse_atr("3B E0 00 FF 81 31 FE 45 14").extended_apdu is None


@pytest.mark.parametrize(("atr", "app_data", "fwi", "fwt_ms"), [
    ("3B 88 80 01 00 00 05 E0 B3 81 A1 00 7F", "000005E0", 10, 309.3),
    ("3B 88 80 01 00 4B 51 FF B3 81 D1 00 0F", "004B51FF", 13, 2474.5),
])
def test_contactless_atr_synthesised_from_the_atqb(atr, app_data, fwi, fwt_ms):
    parsed = parse_atr(atr, strict=True)
    assert parsed.offers("T=CL") and parsed.protocols == (0, 1)
    info = parsed.contactless
    assert info is not None and info.kind == "B"
    assert info.app_data.hex().upper() == app_data
    assert info.protocol_info == bytes.fromhex("B381") + bytes((fwi << 4 | 1,))
    assert info.max_frame_size == 256 and info.fwi == fwi and info.mbli == 0
    assert info.fwt_ms == pytest.approx(fwt_ms, abs=0.1)


def test_contactless_atr_of_a_type_a_card_and_of_a_storage_card():
    type_a = parse_atr(with_tck("3B 8A 80 01 80 31 80 65 B0 83 11 77 83 00"))
    assert type_a.contactless is not None and type_a.contactless.kind == "A"
    assert type_a.contactless.ats_historical == bytes.fromhex("80318065B08311778300")
    storage = parse_atr(with_tck("3B 8F 80 01 80 4F 0C A0 00 00 03 06 03 00 01 00 00 00 00"))
    assert storage.contactless is not None and storage.contactless.kind == "storage"


def test_t0_only_atr_has_no_tck():
    atr = parse_atr("3B 02 14 50")
    assert atr.protocols == (0,) and atr.tck is None and atr.tck_ok is None
    assert atr.historical == bytes.fromhex("1450")
    t0_and_t1 = parse_atr(with_tck("3B 80 80 01"))
    assert t0_and_t1.protocols == (0, 1) and t0_and_t1.tck_ok


def test_global_t15_bytes_are_not_a_protocol():
    atr = parse_atr(with_tck("3B 80 81 1F 07"))  # TD1: T=1, TD2: T=15 with TA3
    assert atr.protocols == (1,)
    assert atr.groups[2].ta == 0x07


def test_wrong_tck_is_reported_or_rejected_when_strict():
    atr = parse_atr("3B E0 00 FF 81 31 FE 45 15")
    assert atr.tck_ok is False
    assert "TCK WRONG" in atr.describe()
    with pytest.raises(AtrError, match="TCK 15"):
        parse_atr("3B E0 00 FF 81 31 FE 45 15", strict=True)


@pytest.mark.parametrize(("atr", "reason"), [
    ("", "at least TS and T0"),
    ("3B", "at least TS and T0"),
    ("3C 00", "TS=3C"),
    ("3B E0 00 FF", "TD1 announced but the ATR ends"),
    ("3B 05 01 02", "announces 5 historical bytes but only 2"),
    ("3B E0 00 FF 81 31 FE 45", "TCK is missing"),
    ("3B 00 00", "1 unexpected byte"),
    ("3B E0 00 FF 81 31 FE 45 14 00", "after the TCK"),
    ("3B " + "00 " * 40, "longer than the 33"),
    ("zz", "not hex"),
])
def test_malformed_atrs_give_a_one_line_error(atr, reason):
    with pytest.raises(AtrError) as caught:
        parse_atr(atr)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and message.startswith("malformed ATR")


def test_inverse_convention_and_bytes_input():
    atr = parse_atr(bytes.fromhex("3F 00".replace(" ", "")))
    assert atr.convention == "inverse" and atr.protocols == (0,)
    assert parse_atr(b"\x3b\x00").hex == "3B 00"
