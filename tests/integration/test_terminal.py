"""Kiosk and set-top box terminals end to end: virtual card → serial firmware on a pty → SerialReader →
JpkiClient, and HTTP to the relying-party emulator with its OCSP responder. Nothing is mocked."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from devices.base import DeviceError
from devices.virtual.card import VirtualCard
from devices.virtual.rig import rig_of
from devices.virtual.serial_firmware import SerialFaultPlan
from harness.relying_party import RelyingParty
from harness.terminals.flows import Kiosk, SetTopBox, open_terminal
from harness.terminals.ui import SecretPin
from harness.trace import ApduTrace

PIN = "2580"  # the virtual card profile's test PIN (fixtures/cards/card.toml)
SECRETS = (PIN, "2581", PIN.encode().hex().upper(), PIN.encode().hex(" ").upper())


pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py



@pytest.fixture
def rp() -> Iterator[RelyingParty]:
    with RelyingParty() as server:
        yield server


@pytest.fixture
def trace() -> ApduTrace:
    return ApduTrace()


@pytest.fixture
def stb(rp, trace) -> Iterator[SetTopBox]:
    terminal = open_terminal("virtual:card?via=stb", rp.url, trace=trace, pin_timeout=0.1)
    terminal.keypad.person = lambda prompt: PIN
    try:
        yield terminal  # type: ignore[misc]
    finally:
        terminal.close()


@pytest.fixture
def kiosk(rp, trace) -> Iterator[Kiosk]:
    terminal = open_terminal("virtual:card?via=kiosk", rp.url, trace=trace, pin_timeout=0.1)
    try:
        yield terminal  # type: ignore[misc]
    finally:
        terminal.close()


def card_of(terminal):
    return rig_of(terminal.reader).slot.card


def test_set_top_box_services(stb, rp) -> None:
    login = stb.login()
    assert login.ok and login.data["platform_id"] == "PF-000001" and "ログインしました" in stb.display_text()
    booking = stb.book_facility("gym-a", "2026-12-01", "11:00")
    assert booking.ok and "予約しました" in booking.display
    assert rp.platform.transactions[booking.tx].status == "committed"
    records = stb.view_health_records()
    assert records.ok and len(records.data["records"]) == 2
    watch = stb.watch_check_in("元気")
    assert watch.ok and rp.platform.watch_log[-1]["status"] == "元気"
    assert stb.logout().ok and not stb.logged_in
    assert [r.flow for r in stb.results] == ["login", "book_facility", "view_health_records", "watch_check_in",
                                             "logout"]


def test_kiosk_issuance_takes_pins_typed_ahead_in_prompt_order(kiosk, rp) -> None:
    kiosk.enter_pin(PIN)  # the text PIN prompt comes first…
    kiosk.enter_pin(PIN)  # …then the auth PIN for the login
    result = kiosk.issue_certificate("residence", 1)
    assert result.ok, result.display
    assert result.data["name"] == card_of(kiosk).profile.holder.name
    assert rp.platform.issued[-1]["address"] == card_of(kiosk).profile.holder.address
    assert rp.platform.payments[-1]["amount"] == 300
    # still logged in with the auth key usable: no further PIN for the hospital flows
    eligibility = kiosk.check_eligibility()
    assert eligibility.ok and eligibility.data["insured_number"] == "12-345678"
    payment = kiosk.pay(1200)
    assert payment.ok and rp.platform.payments[-1]["amount"] == 1200
    assert "お支払いが完了しました" in kiosk.display_text()


def test_a_wrong_pin_is_verified_once_and_never_retried(stb, rp, trace) -> None:
    stb.keypad.person = None
    stb.enter_pin("2581")
    stb.enter_pin(PIN)  # typed ahead: the terminal must not use it after the failure on its own
    result = stb.login()
    assert (result.outcome, result.tries_left) == ("wrong_pin", 2)
    assert card_of(stb).pin("auth").tries_left == 2  # a retry with the right PIN would have reset it to 3
    assert stb.keypad.pending == 0
    assert "残り2回" in stb.display_text()
    assert trace.as_text().count("00 20 00 80 04 ****") == 1
    assert rp.platform.audit(event="login") == []


def test_a_blocked_pin_is_not_verified(stb, trace) -> None:
    card_of(stb).pin("auth").tries_left = 0
    result = stb.login()
    assert result.outcome == "pin_blocked" and "ロック" in result.display
    assert "04 ****" not in trace.as_text()


def test_no_pin_typed_ends_the_flow(stb) -> None:
    stb.keypad.person = None
    result = stb.login()
    assert result.outcome == "no_pin" and card_of(stb).pin("auth").tries_left == 3


def test_a_card_pulled_mid_payment_leaves_no_half_done_transaction(kiosk, rp) -> None:
    kiosk.keypad.person = lambda prompt: PIN
    assert kiosk.check_eligibility().ok
    before = rp.platform.snapshot()
    rig_of(kiosk.reader).firmware.arm(SerialFaultPlan(pull_card_on_ins=0x2A))
    result = kiosk.pay(3000)
    assert result.outcome == "card_removed" and "カードが取り外されました" in result.display
    assert rp.platform.transactions[result.tx].status == "aborted"
    after = rp.platform.snapshot()
    assert after["payments"] == before["payments"] and after["pending"] == []
    assert not kiosk.logged_in
    rig_of(kiosk.reader).slot.insert(VirtualCard.from_profile("card"))
    kiosk.card_changed()
    retry = kiosk.pay(3000)  # a new card session: PIN, login, then the payment
    assert retry.ok and rp.platform.payments[-1]["amount"] == 3000


def test_a_revoked_card_is_refused(rp) -> None:
    with open_terminal("virtual:revoked-card?via=kiosk", rp.url) as kiosk:
        kiosk.keypad.person = lambda prompt: PIN
        result = kiosk.check_eligibility()
        assert result.outcome == "revoked" and "失効" in result.display
        assert rp.ocsp.log[-1].status == "revoked" and rp.platform.links == {}


def test_the_pin_never_reaches_logs_traces_screens_or_results(stb, trace, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    stb.login()
    stb.keypad.person = None
    stb.enter_pin("2581")
    stb.login()
    rig_of(stb.reader).firmware.stop()  # the port goes away mid-session: the error path too
    failed = stb.book_facility("gym-a", "2026-12-03", "13:00")
    assert failed.outcome == "device_error"
    text = "\n".join([caplog.text, trace.as_text(), *stb.display.history, *map(repr, stb.results)])
    for secret in SECRETS:
        assert secret not in text
    assert repr(SecretPin(PIN)) == str(SecretPin(PIN)) == "SecretPin(****)"


def test_an_unreachable_platform_is_shown_as_unavailable(trace) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    terminal = open_terminal("virtual:card?via=stb", dead)
    try:
        result = terminal.login()
        assert result.outcome == "unavailable" and "接続できません" in result.display
    finally:
        terminal.close()


def test_terminal_kind_comes_from_the_name_the_protocol_or_the_caller(rp) -> None:
    with pytest.raises(DeviceError, match="say which terminal"):
        open_terminal("virtual:card", rp.url)
    in_process = open_terminal("virtual:card", rp.url, kind="kiosk")  # any reader can sit in a kiosk
    try:
        in_process.keypad.person = lambda prompt: PIN
        assert isinstance(in_process, Kiosk) and in_process.check_eligibility().ok
    finally:
        in_process.close()
    line = open_terminal("virtual:card?via=serial&protocol=line", rp.url, kind="stb")
    try:
        assert isinstance(line, SetTopBox)
    finally:
        line.close()


def test_a_phone_has_no_text_ap_for_the_kiosk_issuance(rp) -> None:
    with open_terminal("virtual:phone?via=kiosk", rp.url) as kiosk:
        kiosk.keypad.person = lambda prompt: "4321"
        result = kiosk.issue_certificate("residence")
        assert result.outcome == "card_error" and "6A82" in result.display
        assert rp.platform.issued == [] and rp.platform.snapshot()["pending"] == []
