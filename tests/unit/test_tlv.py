"""BER-TLV parsing and encoding as used by the text AP and certificate headers."""

import pytest

from harness.iso import tlv


def test_round_trip_of_multi_byte_tags_and_long_lengths():
    value = bytes(300)
    encoded = tlv.encode(0xDF22, value)
    assert encoded[:5] == bytes.fromhex("DF22 82 012C".replace(" ", ""))
    item = tlv.parse_one(encoded)
    assert item.tag == 0xDF22 and item.value == value


def test_constructed_children_and_zero_padding():
    inner = tlv.encode(0xDF24, b"19800401") + tlv.encode(0xDF25, b"1")
    data = tlv.encode(0xFF20, inner) + bytes(40)
    items = list(tlv.iter_tlv(data))
    assert len(items) == 1 and items[0].constructed
    assert [c.tag for c in items[0].children()] == [0xDF24, 0xDF25]
    assert tlv.find(inner, 0xDF25).value == b"1"
    assert tlv.find(inner, 0xDF99) is None


def test_der_total_length_from_a_certificate_header():
    assert tlv.der_total_length(bytes.fromhex("30820622")) == 0x622 + 4
    assert tlv.der_total_length(bytes.fromhex("3081F0")) == 0xF0 + 3
    assert tlv.der_total_length(bytes.fromhex("3010")) == 0x12


@pytest.mark.parametrize(
    "raw",
    ["DF", "DF22", "DF2205AA", "3080", "3085FFFFFFFFFF", "1F8181818181", "30820100"],
)
def test_malformed_data_raises_tlv_error(raw):
    with pytest.raises(tlv.TlvError):
        list(tlv.iter_tlv(bytes.fromhex(raw), stop_at_padding=False))
