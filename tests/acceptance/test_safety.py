"""PIN redaction and the PIN guard."""

import subprocess

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult

from devices import open_device
from harness.channel import CardChannel
from harness.jpki import JpkiClient, PinKind
from harness.safety import (
    PinGuard,
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


def _client(uri: str):
    reader = open_device(uri)
    reader.power_on()
    return reader, JpkiClient(CardChannel(reader))


def test_guard_refuses_an_unproven_pin_near_the_reserve_and_trusts_a_proven_one():
    reader, client = _client("virtual:card?expendable=0")
    card = reader.slot.card
    guard = PinGuard(client, expendable=False, reserve={"auth": 2}, device="lab card", configured={"auth": "2580"}.get)
    card.pin("auth").tries_left = 2  # one earlier failure
    with pytest.raises(PinGuardRefusal):
        guard.verify(PinKind.AUTH, "1111")
    assert card.pin("auth").tries_left == 2  # nothing was sent that could fail
    with pytest.raises(PinGuardRefusal):
        guard.verify(PinKind.AUTH, "2580")  # even the right PIN: it is not proven on this card yet
    card.pin("auth").tries_left = 3
    assert guard.verify(PinKind.AUTH, "2580").ok
    assert guard.verify_wrong(PinKind.AUTH).tries_left == 2  # the guard's own wrong try: it knows the counter
    assert guard.verify(PinKind.AUTH, "2580").ok  # trusted: the card accepted it, the counter is where it was left
    assert card.pin("auth").tries_left == 3
    card.pin("auth").tries_left = 2  # a try spent behind the guard's back: the trusted value is proven again
    with pytest.raises(PinGuardRefusal):
        guard.verify(PinKind.AUTH, "2580")


def test_suites_skip_destructive_requirements_on_guarded_cards(tmp_path):
    proc = subprocess.run([*hil_command(), "run", "card", "--device", "virtual:card?expendable=0",
                           "--outputdir", str(tmp_path)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    result = ExecutionResult(str(tmp_path / "output.xml"))
    skipped = []

    def walk(suite):
        for test in suite.tests:
            if test.status == "SKIP":
                skipped.append(test)
        for child in suite.suites:
            walk(child)

    walk(result.suite)
    assert all("destructive" in t.tags for t in skipped)
    assert len(skipped) == 6  # blocking (2), changing (2), CHANGE without VERIFY, malformed new PIN
    assert all("not marked expendable" in t.message for t in skipped)
