"""Property-based tests: parsers fail only with their own error; the virtual card answers every byte string."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.virtual.card import VirtualCard
from harness.iso import tlv
from harness.iso.apdu import ApduError, CommandApdu, ResponseApdu

commands = st.builds(
    CommandApdu,
    cla=st.integers(0, 255), ins=st.integers(0, 255), p1=st.integers(0, 255), p2=st.integers(0, 255),
    data=st.binary(max_size=600), le=st.none() | st.integers(1, 65536), extended=st.booleans(),
)


@given(commands)
def test_every_command_round_trips_through_its_encoding(cmd):
    parsed = CommandApdu.parse(cmd.to_bytes())
    assert (parsed.cla, parsed.ins, parsed.p1, parsed.p2, parsed.data, parsed.le) == (
        cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, cmd.le)
    assert parsed.case == cmd.case


@given(st.binary(max_size=300))
def test_command_parser_raises_only_apdu_error(raw):
    try:
        parsed = CommandApdu.parse(raw)
    except ApduError:
        return
    assert parsed.to_bytes() == raw  # every accepted encoding is canonical for what it says


@given(st.binary(max_size=300))
def test_response_parser_raises_only_apdu_error(raw):
    try:
        response = ResponseApdu.parse(raw)
    except ApduError:
        assert len(raw) < 2
        return
    assert response.to_bytes() == raw and 0 <= response.sw <= 0xFFFF and response.sw_name


@given(st.binary(max_size=300))
def test_tlv_parser_raises_only_tlv_error(raw):
    try:
        items = list(tlv.iter_tlv(raw, stop_at_padding=False))
    except tlv.TlvError:
        return
    rebuilt = b"".join(tlv.encode(item.tag, item.value) for item in items)
    assert len(rebuilt) <= len(raw)  # DER re-encoding is never longer than what was parsed


@given(st.integers(1, 0xDFFF), st.binary(max_size=400))
def test_tlv_encoding_round_trips(tag, value):
    if tag & 0x1F == 0x1F and tag < 0x100:
        return  # a one-byte tag with all low bits set announces a second byte
    if tag > 0xFF and (tag >> 8) & 0x1F != 0x1F:
        return  # not a valid two-byte tag
    if tag > 0xFF and tag & 0x80:
        return
    item = tlv.parse_one(tlv.encode(tag, value))
    assert (item.tag, item.value) == (tag, value)


card_apdus = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda c: c.to_bytes(), commands),
    st.tuples(st.sampled_from([0x00, 0x80, 0x01, 0x0C, 0xA0]), st.sampled_from([0xA4, 0xB0, 0x20, 0x24, 0x2A, 0x84]),
              st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20)).map(
        lambda t: bytes(t[:4]) + (bytes((len(t[4]),)) + t[4] if t[4] else b"")),
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(card_apdus, min_size=1, max_size=30))
def test_virtual_card_answers_every_byte_string_and_stays_consistent(apdus):
    card = VirtualCard.from_profile("card")
    card.power_on()
    pins = [card.pin(name) for name in ("auth", "sign", "text")]
    before = [p.tries_left for p in pins]
    for raw in apdus:
        answer = card.process(raw)
        assert len(answer) >= 2
        sw = int.from_bytes(answer[-2:], "big")
        assert sw >> 8 in (0x90, 0x61, 0x62, 0x63, 0x67, 0x68, 0x69, 0x6A, 0x6B, 0x6D, 0x6E, 0x6F)
        if sw != 0x9000:
            assert sw >> 8 == 0x63 or len(answer) == 2  # errors carry no data
        assert sw != 0x6F00, f"internal error for {raw.hex()}"
    for pin, start in zip(pins, before, strict=True):
        assert 0 <= pin.tries_left <= pin.max_tries
        assert pin.tries_left <= start or pin.tries_left == pin.max_tries
        if pin.blocked:
            assert not pin.verified
    card.power_on()
    assert not any(p.verified for p in pins)
