"""PIN redaction and the PIN guard."""

import pytest

from harness.safety import (
    PinGuardRefusal,
    carries_secret,
    guard_wrong_attempt,
    new_pin_like,
    redact_apdu,
    wrong_pin_like,
)
from harness.trace import ApduTrace


def test_verify_and_change_data_are_masked_in_every_form():
    assert redact_apdu(bytes.fromhex("0020008004 32353830".replace(" ", ""))) == "00 20 00 80 04 ****"
    assert redact_apdu(bytes.fromhex("0024018004 31333537".replace(" ", ""))) == "00 24 01 80 04 ****"
    extended = bytes.fromhex("00200080000004") + b"2580"
    assert redact_apdu(extended) == "00 20 00 80 00 00 04 ****"
    assert redact_apdu(bytes.fromhex("00200080")) == "00 20 00 80"  # the retry query has no secret
    assert not carries_secret(bytes.fromhex("00A4040C0AD392F000260100000001"))
    assert redact_apdu(bytes.fromhex("00B0000004")) == "00 B0 00 00 04"


def test_trace_never_holds_the_pin():
    trace = ApduTrace()
    trace.command(b"\x00\x20\x00\x80\x04" + b"2580")
    trace.response(b"\x90\x00", 0.1)
    text, html = trace.as_text(), trace.as_html()
    for shown in (text, html):
        assert "****" in shown and "32 35 38 30" not in shown and "2580" not in shown
    assert "9000 OK" in text


def test_guard_keeps_the_reserve_on_real_cards():
    guard_wrong_attempt("auth", 3, 2, expendable=False, device="pcsc:ACS")  # 3 → 2 keeps the reserve
    with pytest.raises(PinGuardRefusal, match=r"would leave 1 tries .*reserve 2.*expendable"):
        guard_wrong_attempt("auth", 2, 2, expendable=False, device="pcsc:ACS")
    guard_wrong_attempt("auth", 1, 2, expendable=True, device="virtual:card")


def test_derived_pins_keep_the_format_and_differ():
    for pin in ("2580", "0009", "TESTSIGN1", "PHONESIGNA", "ABCDEF"):
        wrong, new = wrong_pin_like(pin), new_pin_like(pin)
        assert wrong != pin and new != pin
        assert len(wrong) == len(pin) == len(new)
        assert wrong.isdigit() == pin.isdigit() and new.isdigit() == pin.isdigit()
        assert wrong.isalnum() and wrong.upper() == wrong
