"""The PIN guard's rules, against virtual cards whose own counters (tries left, wrong VERIFYs) are read back."""

from __future__ import annotations

import itertools
import os

import pytest

from devices import open_device
from devices.base import DeviceError, ProtocolError
from devices.serial import open_serial
from devices.virtual.card import VirtualCard
from devices.virtual.rig import card_facts, rig_of
from devices.virtual.serial_firmware import ReaderFirmware, SerialFaultPlan
from devices.virtual.slot import CardSlot, FaultPlan
from harness.channel import CardChannel
from harness.credentials import DeviceFacts, MissingSecret, facts_for_device
from harness.jpki import JpkiClient, PinKind
from harness.lab import LabDevice
from harness.pin_guard import (
    COLLATION_NUMBERS,
    ConfiguredPinWrong,
    NeedsExpendableCard,
    PinFormatError,
    PinGuard,
    PinStateUnknown,
    PinTarget,
    RawSecretRefused,
    knowledge_of,
    refuse_raw_secret,
)

_names = itertools.count()
PINS = {"auth": "2580", "sign": "TESTSIGN1", "text": "2580"}


def guarded(pins: dict[str, str] | None = None, *, expendable: bool = False, device: str = ""):
    """A guarded client of a fresh in-process card; returns (guard, card, channel)."""
    reader = open_device("virtual:card?expendable=0")
    reader.power_on()
    channel = CardChannel(reader)
    values = {**PINS, **(pins or {})}
    guard = PinGuard(JpkiClient(channel), expendable=expendable, reserve={"auth": 2, "sign": 3, "text": 2},
                     device=device or f"guard-test-{next(_names)}", configured=values.__getitem__)
    return guard, reader.slot.card, channel


def verifies_sent(channel: CardChannel) -> int:
    return sum(1 for e in channel.trace.entries if e.direction == "C-APDU" and e.hex.startswith("00 20 00 80 0"))


def test_a_configured_pin_the_card_refuses_once_is_never_sent_again():
    guard, card, _channel = guarded({"auth": "1111"})
    assert guard.verify_configured(PinKind.AUTH).tries_left == 2
    with pytest.raises(ConfiguredPinWrong, match=r"^the configured auth PIN is wrong; 2 tries left"):
        guard.verify_configured(PinKind.AUTH)
    with pytest.raises(ConfiguredPinWrong):
        guard.verify_wrong(PinKind.AUTH)  # a wrong-PIN requirement needs the configured PIN proven first
    assert card.pin("auth").wrong_verifies == 1 and card.pin("auth").tries_left == 2


def test_the_knowledge_outlives_the_guard_object_per_device_name():
    guard, card, _ = guarded({"sign": "WRONGSIGN1"}, device="desk-7")
    guard.verify_configured(PinKind.SIGN)
    again = PinGuard(guard.client, expendable=False, device="desk-7", configured={"sign": "WRONGSIGN1"}.__getitem__)
    with pytest.raises(ConfiguredPinWrong, match="sign password is wrong; 4 tries left"):
        again.verify_configured(PinKind.SIGN)
    assert card.pin("sign").wrong_verifies == 1
    assert knowledge_of("another-desk").pins == {}


@pytest.mark.parametrize("tries", [0, 1])
def test_a_card_below_its_reserve_gets_no_verify_at_all(tries):
    guard, card, channel = guarded()
    card.pin("auth").tries_left = tries
    with pytest.raises(NeedsExpendableCard, match=f"has {tries} tries left, below the reserve of 2.*expendable"):
        guard.verify_configured(PinKind.AUTH)
    assert verifies_sent(channel) == 0 and card.pin("auth").tries_left == tries


def test_at_the_reserve_only_a_value_the_card_accepted_is_sent():
    guard, card, channel = guarded()
    card.pin("auth").tries_left = 2
    with pytest.raises(NeedsExpendableCard, match="would leave 1 tries"):
        guard.verify_configured(PinKind.AUTH)
    assert verifies_sent(channel) == 0
    card.pin("auth").tries_left = 3
    assert guard.verify_configured(PinKind.AUTH).ok
    assert guard.verify_wrong(PinKind.AUTH).tries_left == 2  # one wrong try: 3 → 2 keeps the reserve
    with pytest.raises(NeedsExpendableCard):
        guard.verify_wrong(PinKind.AUTH)  # a second would cross it
    assert guard.verify_configured(PinKind.AUTH).ok  # trusted, and the counter is where the guard saw it
    assert card.pin("auth").tries_left == 3 and card.pin("auth").wrong_verifies == 1


def test_trust_is_rechecked_when_the_counter_moved_behind_the_guard():
    guard, card, _channel = guarded()
    assert guard.verify_configured(PinKind.AUTH).ok
    guard.query_tries(PinKind.AUTH)  # the guard saw 3
    card.pin("auth").tries_left = 2  # someone else spent a try: the trusted value is proven again
    with pytest.raises(NeedsExpendableCard):
        guard.verify_configured(PinKind.AUTH)
    assert card.pin("auth").tries_left == 2


def test_a_wrong_pin_requirement_proves_the_configured_pin_first():
    guard, card, _ = guarded()
    assert guard.verify_wrong(PinKind.SIGN).tries_left == 4
    assert card.pin("sign").wrong_verifies == 1
    assert guard.verify_configured(PinKind.SIGN).ok and card.pin("sign").tries_left == 5


@pytest.mark.parametrize(("name", "value", "rule"), [
    ("auth", "25801", "exactly 4 digits"), ("auth", "25a0", "exactly 4 digits"), ("auth", "25 0", "exactly 4 digits"),
    ("sign", "testsign1", "6 to 16 of A-Z and 0-9"), ("sign", "ABC12", "6 to 16"), ("sign", "A" * 17, "6 to 16"),
    ("text", "258", "exactly 4 digits"),
])
def test_an_impossible_configured_pin_is_refused_in_one_line_and_never_sent(name, value, rule):
    guard, card, channel = guarded({name: value})
    with pytest.raises(PinFormatError, match=f"configured .* cannot be right \\(it must be {rule}") as caught:
        guard.verify_configured(PinKind.named(name))
    assert "\n" not in str(caught.value) and value not in str(caught.value)
    with pytest.raises(PinFormatError):
        guard.verify_wrong(PinKind.named(name))
    assert channel.apdu_count == 0 and card.pin(name).wrong_verifies == 0


def test_a_change_is_refused_on_a_guarded_card_and_allowed_on_an_expendable_one():
    guard, card, channel = guarded()
    with pytest.raises(NeedsExpendableCard, match="needs an expendable card"):
        guard.change(PinKind.AUTH, "2580", "1357")
    with pytest.raises(NeedsExpendableCard):
        guard.change_without_verify(PinKind.AUTH, "1357")
    assert channel.apdu_count == 0
    expendable, card, _ = guarded(expendable=True)
    assert expendable.change(PinKind.AUTH, "2580", "1357").ok and card.pin("auth").value == b"1357"


def test_a_change_without_an_answer_leaves_the_pin_unknown_and_unverified():
    guard, card, _channel = guarded(expendable=True)
    slot = guard.client.channel.reader.slot
    slot.arm(FaultPlan(remove_at_apdu=4))  # SELECT AP, SELECT EF, VERIFY old, CHANGE: lost with the card
    with pytest.raises(PinStateUnknown, match="unknown state: no further VERIFY is sent with either value"):
        guard.change(PinKind.AUTH, "2580", "1357")
    slot.insert(card)
    guard.client.channel.reader.power_on()
    for attempt in (lambda: guard.verify_configured(PinKind.AUTH), lambda: guard.verify(PinKind.AUTH, "1357")):
        with pytest.raises(PinStateUnknown):
            attempt()
    assert card.pin("auth").wrong_verifies == 0


def test_collation_numbers_are_guarded_like_pins():
    guard, card, channel = guarded()
    card.pin("number_a").tries_left = 2  # at its reserve of 2
    with pytest.raises(NeedsExpendableCard, match="照合番号A"):
        guard.verify_value(COLLATION_NUMBERS["A"], "123456789018", configured=True)
    with pytest.raises(PinFormatError):
        guard.verify_value(COLLATION_NUMBERS["B"], "1980", configured=True)
    assert verifies_sent(channel) == 0


def test_raw_verify_and_change_with_data_are_refused_and_the_retry_query_passes():
    for raw in ("0020008004 31323334", "8020008004 31323334", "0024018004 31323334", "002C000108 3132333435363738"):
        with pytest.raises(RawSecretRefused, match=r"^Send APDU refuses .* with data") as caught:
            refuse_raw_secret(bytes.fromhex(raw.replace(" ", "")))
        assert "\n" not in str(caught.value) and "31" not in str(caught.value)
    refuse_raw_secret(bytes.fromhex("00200080"))
    refuse_raw_secret(bytes.fromhex("00A4040C0AD392F000260100000001"))


def test_a_pin_variable_the_inventory_names_must_be_set(monkeypatch):
    monkeypatch.delenv("DESK9_AUTH", raising=False)
    monkeypatch.setenv("HIL_AUTH_PIN", "2580")
    facts = DeviceFacts(pin_env={"auth": "DESK9_AUTH"})
    with pytest.raises(MissingSecret, match=r"names \$DESK9_AUTH, which is not set \(no fallback to HIL_AUTH_PIN\)"):
        facts.pin("auth", "desk-9")
    monkeypatch.setenv("DESK9_AUTH", "1234")
    assert facts.pin("auth", "desk-9") == "1234"


def test_inventory_and_profile_the_stricter_expendability_wins(monkeypatch):
    monkeypatch.setenv("DESK9_AUTH", "1234")
    card = card_facts(VirtualCard.from_profile("card"))  # the profile says expendable
    guarded_lab = LabDevice("desk-9", "virtual:card", expendable=False, pin_env={"auth": "DESK9_AUTH"},
                            pin_reserve={"auth": 1})
    facts = facts_for_device(card, guarded_lab)
    assert not facts.expendable and facts.pin("auth", "desk-9") == "1234" and facts.pin_reserve["auth"] == 1
    assert facts_for_device(card, LabDevice("x", "virtual:card", expendable=True)).expendable
    strict_card = rig_of(open_device("virtual:card?expendable=0")).card_facts()
    assert not facts_for_device(strict_card, LabDevice("x", "virtual:card", expendable=True)).expendable


@pytest.mark.parametrize("value", ["flase", "maybe", ""])
def test_a_non_boolean_expendable_option_is_an_error(value):
    with pytest.raises(DeviceError, match=f"expendable={value!r} is not on/off"):
        open_device(f"virtual:card?expendable={value}")


@pytest.mark.parametrize("protocol", ["kiosk", "stb", "line"])
def test_the_serial_link_never_resends_a_command_carrying_a_pin(protocol):
    card = VirtualCard.from_profile("card")
    firmware = ReaderFirmware(CardSlot(card), protocol).start()
    try:
        reader = open_serial(f"serial:{firmware.device}?protocol={protocol}"
                             "&apdu_timeout=0.3&response_timeout=0.3&retries=1")
    except BaseException:
        firmware.stop()
        raise
    reader.after_close(firmware.stop)
    with reader:
        reader.power_on()
        guard = PinGuard(JpkiClient(CardChannel(reader)), expendable=True, device=f"serial-{protocol}-{os.getpid()}",
                         configured=PINS.__getitem__)
        guard.client.select_applet("jpki")
        guard.client.select_ef(PinKind.AUTH.fid)
        before = firmware.stats.commands_run
        firmware.arm(SerialFaultPlan(mute_responses=1))
        with pytest.raises(ProtocolError, match="never sent twice"):
            guard.verify_wrong(PinKind.AUTH, select=False)
        assert firmware.stats.commands_run - before == 1 and reader.stats.retransmissions == 0
        assert card.pin("auth").wrong_verifies == 1 and card.pin("auth").tries_left == 2


def test_a_verify_by_short_identifier_is_guarded_on_the_same_record():
    guard, card, channel = guarded({"auth": "1111"})
    target = PinTarget.by_short_identifier(PinKind.AUTH)
    assert target.p2 == 0x80 | 0x18
    assert guard.verify_value(target, "1111", configured=True).tries_left == 2
    with pytest.raises(ConfiguredPinWrong):
        guard.verify_configured(PinKind.AUTH)  # the same PIN by SELECT EF: known wrong already
    assert card.pin("auth").wrong_verifies == 1
    assert not any(e.hex.startswith("00 A4 02 0C 02 00 18") for e in channel.trace.entries)  # no SELECT EF


def test_a_blocked_object_is_probed_only_when_the_card_says_it_is_blocked():
    guard, card, _channel = guarded()
    key = PinTarget("text key 0012", "text", 0x0012)
    assert guard.probe_blocked(key).sw == 0x6984  # text AP key 0012 is blocked from the factory (§10)
    with pytest.raises(NeedsExpendableCard, match="has 3 tries"):
        guard.probe_blocked(PinTarget("text PIN", "text", 0x0011))
    assert card.pin("text").wrong_verifies == 0 and card.pin("text").tries_left == 3
