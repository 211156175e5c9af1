"""The fault keywords (``harness.keywords.faults``): each fault on every virtual backend that has it, one line on
one that has not, a skip on a real device, and the old names still working."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import VIRTUAL_BACKENDS
from robot.api import ExecutionResult, SkipExecution

from devices import CardRemoved, DeviceError, DeviceTimeout, NoCard
from devices.virtual.rig import CARD_FAULTS, LINK_FAULTS, FaultUnsupported, rig_of
from harness.keywords import fault_aliases
from harness.keywords.contactless import ContactlessKeywords
from harness.keywords.context import LibraryContext
from harness.keywords.device import DeviceKeywords
from harness.keywords.fault_aliases import DeprecatedFaultKeywords
from harness.keywords.faults import FaultKeywords
from harness.keywords.transport import TransportKeywords

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_TOKEN = bytes.fromhex("00A4020C020006")
READ_TOKEN = bytes.fromhex("00B0000020")
FAST = "&apdu_timeout=0.6&response_timeout=0.6&ack_timeout=0.8&retries=1"
SERIAL_LINK = {"lose_responses", "corrupt_responses", "corrupt_commands", "truncate_responses", "truncate_commands",
               "delay_responses"}
LINK_OF = {"nfc": {"lose_responses", "lose_commands"}, "kiosk": SERIAL_LINK, "stb": SERIAL_LINK}
# The firmware's own name of each link fault, as its statistics count them.
FIRMWARE_NAME = {name: names[1] for name, names in LINK_FAULTS.items() if names[1]}


class Opened:
    """A device opened as a suite opens it, with the fault keywords (new and old names) on its context."""

    def __init__(self, uri: str) -> None:
        self.ctx = LibraryContext()
        self.device = DeviceKeywords(self.ctx)
        self.device.open_device(uri)
        self.faults = DeprecatedFaultKeywords(self.ctx)
        self.transport = TransportKeywords(self.ctx)

    def send(self, apdu: bytes) -> int:
        return self.ctx.require_channel().transmit(apdu).sw

    def close(self) -> None:
        self.device.close_device()


@pytest.fixture
def opened(request):
    device = Opened(request.param)
    yield device
    device.close()


def via(uri: str) -> str:
    return uri.partition("via=")[2].partition("&")[0]


@pytest.mark.parametrize("opened", VIRTUAL_BACKENDS, indirect=True)
def test_every_backend_has_the_card_faults_and_its_links_own(opened):
    expected = set(CARD_FAULTS) | LINK_OF.get(via(opened.ctx.device_name), set())
    assert set(rig_of(opened.ctx.reader).supported_faults()) == expected
    for fault in (*CARD_FAULTS, *LINK_FAULTS):
        assert opened.faults.fault_is_supported(fault) == (fault in expected)


@pytest.mark.parametrize("opened", VIRTUAL_BACKENDS, indirect=True)
def test_remove_card_then_insert_card_on_every_backend(opened):
    assert opened.send(SELECT_JPKI) == 0x9000
    opened.faults.remove_card()
    assert not rig_of(opened.ctx.reader).present
    with pytest.raises((CardRemoved, NoCard)):
        opened.send(SELECT_JPKI)
    opened.faults.insert_card()
    opened.transport.reconnect_card()
    assert opened.send(SELECT_JPKI) == 0x9000


@pytest.mark.parametrize("opened", VIRTUAL_BACKENDS, indirect=True)
def test_pull_card_during_an_apdu_and_during_a_command_on_every_backend(opened):
    opened.faults.pull_card_during_apdu(2)
    assert opened.send(SELECT_JPKI) == 0x9000  # the first APDU after arming is answered
    with pytest.raises((CardRemoved, NoCard)):
        opened.send(SELECT_TOKEN)
    assert opened.faults.restore_card()  # a powered card again: the ATR
    opened.faults.pull_card_during_command("READ BINARY")
    assert opened.send(SELECT_JPKI) == opened.send(SELECT_TOKEN) == 0x9000  # other commands pass
    with pytest.raises((CardRemoved, NoCard)):
        opened.send(READ_TOKEN)
    opened.faults.restore_card()
    assert [opened.send(SELECT_JPKI), opened.send(SELECT_TOKEN), opened.send(READ_TOKEN)] == [0x9000] * 3


@pytest.mark.parametrize("opened", VIRTUAL_BACKENDS, indirect=True)
def test_unplug_reader_on_every_backend(opened):
    opened.faults.unplug_reader()
    with pytest.raises(DeviceError):
        for _ in range(3):  # a bridge may answer one APDU it already had; the reader is gone after that
            opened.send(SELECT_JPKI)


@pytest.mark.parametrize("opened", ["virtual:card"], indirect=True)
def test_a_delayed_answer_and_slow_signatures_outlast_the_apdu_timeout(opened):
    opened.device.set_apdu_timeout(0.3)
    opened.faults.delay_card_answer(1.0)
    with pytest.raises(DeviceTimeout):
        opened.send(SELECT_JPKI)
    time.sleep(1.0)  # the delayed APDU finishes in the card before it is used again
    opened.device.set_apdu_timeout(None)
    assert opened.send(SELECT_JPKI) == 0x9000
    assert rig_of(opened.ctx.reader).card.profile.sign_delay_ms == 0
    opened.faults.delay_card_signatures(700)
    assert rig_of(opened.ctx.reader).card.profile.sign_delay_ms == 700
    opened.faults.delay_card_signatures(0)
    assert rig_of(opened.ctx.reader).card.profile.sign_delay_ms == 0


@pytest.mark.parametrize("opened", ["virtual:card?via=nfc"], indirect=True)
def test_delays_and_lost_frames_on_nfcpys_link(opened):
    link = ContactlessKeywords(opened.ctx)
    params = link.get_contactless_parameters()
    opened.faults.delay_card_answer(float(params["fwt_ms"]) * 1.5 / 1000 + 0.1)
    assert opened.send(SELECT_JPKI) == 0x9000
    link.last_exchange_should_have_used_wtx()  # the card asked for more time instead of going quiet
    link.reset_link_statistics()
    opened.faults.inject_link_fault(lose_responses=1)
    assert opened.send(SELECT_JPKI) == 0x9000
    opened.faults.inject_link_fault(lose_commands=1)
    assert opened.send(SELECT_TOKEN) == 0x9000
    link.link_statistic_should_be_at_least("naks_in", 2)  # each lost frame was asked for again


@pytest.mark.parametrize("opened", [f"virtual:card?via=kiosk{FAST}", f"virtual:card?via=stb{FAST}"], indirect=True)
def test_every_serial_link_fault_is_injected_and_recovered(opened):
    firmware = rig_of(opened.ctx.reader).firmware
    for fault in sorted(SERIAL_LINK - {"delay_responses"}):
        before = firmware.stats.faults_injected.get(FIRMWARE_NAME[fault], 0)
        opened.faults.inject_link_fault(**{fault: 1})
        assert opened.send(SELECT_JPKI) == 0x9000, fault
        assert firmware.stats.faults_injected.get(FIRMWARE_NAME[fault], 0) == before + 1, fault
    seconds = opened.faults.delay_responses_beyond_the_timeouts()
    assert seconds > 0
    with pytest.raises(DeviceTimeout):
        opened.send(SELECT_JPKI)
    opened.faults.wait_for_delayed_responses()
    assert opened.send(SELECT_JPKI) == 0x9000
    assert firmware.stats.faults_injected["stall_responses"] == 1


@pytest.mark.parametrize(("opened", "fault", "has"), [
    ("virtual:card", "lose_responses", "no link the harness can disturb"),
    ("virtual:card?via=pcsc", "corrupt_commands", "no link the harness can disturb"),
    ("virtual:card?via=nfc", "corrupt_responses", "nfcpy's UDP link"),
    ("virtual:card?via=kiosk", "lose_commands", "the serial firmware"),
], indirect=["opened"])
def test_a_link_fault_the_backend_lacks_is_one_line_naming_what_it_has(opened, fault, has):
    with pytest.raises(FaultUnsupported) as raised:
        opened.faults.inject_link_fault(**{fault: 1})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{opened.ctx.device_name} cannot inject {fault}: it has {has}")
    assert all(name in message for name in rig_of(opened.ctx.reader).supported_faults())
    with pytest.raises(SkipExecution, match=f"cannot inject {fault}"):
        opened.faults.require_fault(fault)
    opened.faults.require_fault("remove_card", "pull_card")  # what every virtual device has: no skip
    assert opened.send(SELECT_JPKI) == 0x9000  # nothing was armed


@pytest.mark.parametrize("opened", ["virtual:card?via=nfc"], indirect=True)
def test_delaying_past_the_timeouts_is_a_serial_fault(opened):
    with pytest.raises(FaultUnsupported, match="cannot inject delay_responses: it has nfcpy's UDP link"):
        opened.faults.delay_responses_beyond_the_timeouts()


@pytest.mark.parametrize("opened", ["virtual:card"], indirect=True)
def test_unknown_fault_names_are_refused_with_the_known_ones(opened):
    with pytest.raises(ValueError, match="unknown link fault 'garble'; known: lose_responses, lose_commands"):
        opened.faults.inject_link_fault(garble=1)
    with pytest.raises(ValueError, match="unknown link fault"):
        opened.faults.inject_link_fault()
    with pytest.raises(ValueError, match="unknown fault 'melt'; known: remove_card"):
        opened.faults.fault_is_supported("melt")
    with pytest.raises(ValueError, match="unknown command 'PAY'"):
        opened.faults.pull_card_during_command("PAY")


@pytest.mark.serial
def test_a_real_device_skips_every_fault_and_cannot_be_given_a_fresh_card():
    from devices.virtual.card import VirtualCard
    from devices.virtual.serial_firmware import ReaderFirmware
    from devices.virtual.slot import CardSlot

    with ReaderFirmware(CardSlot(VirtualCard.from_profile("card")), "kiosk") as firmware:
        device = Opened(f"serial:{firmware.device}?protocol=kiosk")  # the real backend: no rig behind it
        try:
            assert not device.faults.fault_is_supported("remove_card")
            for call in (device.faults.remove_card, device.faults.pull_card_during_apdu, device.faults.unplug_reader,
                         lambda: device.faults.inject_link_fault(corrupt_responses=1),
                         lambda: device.faults.require_fault("remove_card")):
                with pytest.raises(SkipExecution, match="not a virtual device"):
                    call()
            with pytest.raises(DeviceError, match="not a virtual device: its card cannot be replaced"):
                device.faults.insert_fresh_card()
            device.faults.clear_faults()  # nothing to disarm, no error
            assert device.send(SELECT_JPKI) == 0x9000
        finally:
            device.close()


@pytest.mark.parametrize("opened", [f"virtual:card?via=kiosk{FAST}"], indirect=True)
def test_old_names_warn_once_and_do_what_the_new_ones_do(opened, monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(fault_aliases, "_WARNED", set())
    monkeypatch.setattr(fault_aliases.logger, "warn", warnings.append)
    firmware = rig_of(opened.ctx.reader).firmware
    opened.faults.inject_serial_fault(drop_response_bytes="1")
    assert opened.send(SELECT_JPKI) == 0x9000
    assert firmware.stats.faults_injected["drop_response_bytes"] == 1
    opened.faults.inject_serial_fault(corrupt_responses="1")
    assert opened.send(SELECT_JPKI) == 0x9000
    opened.faults.take_card_out_of_serial_reader()
    assert not rig_of(opened.ctx.reader).present
    opened.faults.put_card_into_serial_reader()
    assert rig_of(opened.ctx.reader).present
    opened.faults.restore_serial_reader()
    assert opened.send(SELECT_JPKI) == 0x9000
    assert warnings == [
        "Keyword 'Inject Serial Fault' is deprecated: use 'Inject Link Fault' (harness.keywords.faults)",
        "Keyword 'Take Card Out Of Serial Reader' is deprecated: use 'Remove Card' (harness.keywords.faults)",
        "Keyword 'Put Card Into Serial Reader' is deprecated: use 'Insert Card' (harness.keywords.faults)",
        "Keyword 'Restore Serial Reader' is deprecated: use 'Restore Card' (harness.keywords.faults)",
    ]


def test_insert_fresh_card_gives_full_tries_and_the_fault_keywords_are_in_the_library():
    from harness.keywords import JPKILibrary

    device = Opened("virtual:card")
    try:
        card = rig_of(device.ctx.reader).card
        assert device.send(SELECT_JPKI) == 0x9000
        card.pin("auth").tries_left = 1
        atr = device.faults.insert_fresh_card()
        fresh = rig_of(device.ctx.reader).card
        assert fresh is not card and fresh.pin("auth").tries_left == 3 and atr == device.device.get_atr()
        assert device.send(SELECT_JPKI) == 0x9000
    finally:
        device.close()
    names = set(JPKILibrary().get_keyword_names())
    assert {"remove_card", "insert_card", "Pull Card During APDU", "pull_card_during_command", "delay_card_answer",
            "delay_card_signatures", "inject_link_fault", "unplug_reader", "clear_faults", "restore_card",
            "insert_fresh_card", "require_fault", "fault_is_supported"} <= names
    assert {"arm_fault", "inject_serial_fault", "Pull Card At APDU", "pull_card_during_next"} <= names  # aliases
    assert isinstance(DeprecatedFaultKeywords(LibraryContext()), FaultKeywords)


OLD_NAMES_SUITE = """*** Settings ***
Library             harness.keywords.JPKILibrary
Suite Setup         Open Device    virtual:card
Suite Teardown      Close Device


*** Test Cases ***
Old Names Still Pull And Restore
    Arm Fault    remove_at_apdu=1
    Run Keyword And Expect Error    CardRemoved:*    Select JPKI AP
    Insert Fresh Virtual Card
    Arm Fault    remove_at_apdu=1
    Run Keyword And Expect Error    CardRemoved:*    Select JPKI AP
    Insert Fresh Virtual Card
    Select JPKI AP
"""


def test_a_robot_run_with_old_names_passes_and_warns_once_per_name(tmp_path):
    suite = tmp_path / "old_names.robot"
    suite.write_text(OLD_NAMES_SUITE, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(tmp_path), "--log", "NONE",
                           "--report", "NONE", str(suite)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [message.message for message in ExecutionResult(str(tmp_path / "output.xml")).errors.messages
                if message.level == "WARN"]
    assert warnings == [
        "Keyword 'Arm Fault' is deprecated: use 'Pull Card During APDU' or 'Delay Card Answer' "
        "(harness.keywords.faults)",
        "Keyword 'Insert Fresh Virtual Card' is deprecated: use 'Insert Fresh Card' (harness.keywords.faults)",
    ]
