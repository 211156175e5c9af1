"""The virtual rig: every bridge registers one for its reader, and the rig moves, faults and unplugs the card."""

from __future__ import annotations

import pytest
from conftest import VIRTUAL_BACKENDS

from devices import CardRemoved, DeviceError, DeviceGone, open_device
from devices.base import bench_of
from devices.virtual.rig import FaultPlan, profile_facts, provisioning_state, rig_of
from harness.credentials import card_facts_of
from harness.fixtures import load_holder

SELECT_JPKI = bytes.fromhex("00A4040C0AD3921000310001010408")
EXTRAS = {"pcsc": ("wait_removed", "card_server"), "nfc": ("link",), "kiosk": ("firmware",), "stb": ("firmware",)}
# The host side each bridge opens through the registry: the real backend's own reader class, not a subclass.
HOST_SIDE = {"pcsc": "PcscReader", "nfc": "NfcReader", "kiosk": "SerialReader", "stb": "SerialReader"}


@pytest.fixture
def opened(request):
    reader = open_device(request.param)
    reader.wait_for_card(5)
    reader.power_on()
    yield reader
    reader.close()


@pytest.mark.parametrize("opened", VIRTUAL_BACKENDS, indirect=True)
def test_every_bridge_registers_its_rig_with_what_it_adds(opened):
    rig = rig_of(opened)
    assert rig is not None and bench_of(opened) is rig  # one registry: the core's narrow view is the same rig
    via = opened.uri.partition("via=")[2]
    present = {name for name in ("link", "firmware", "wait_removed", "card_server") if getattr(rig, name) is not None}
    assert present == set(EXTRAS.get(via, ()))
    facts = card_facts_of(opened)
    assert facts is not None and facts.kind == "card" and facts.holder == load_holder("card")
    assert facts.pins == profile_facts("card").pins and facts.holder_record == "card"


@pytest.mark.parametrize("uri", [uri for uri in VIRTUAL_BACKENDS if "via=" in uri])
def test_every_bridge_opens_the_backends_own_reader_and_closing_it_stops_the_card_side(uri):
    reader = open_device(uri)
    rig = rig_of(reader)
    via = uri.partition("via=")[2]
    assert type(reader).__name__ == HOST_SIDE[via] and type(reader).__module__.endswith(".reader")
    assert reader.uri == uri  # it goes by the virtual name, not the host-side device it opened
    reader.close()
    if rig.link is not None:
        assert not any(t.is_alive() for t in rig.link._threads)
    if rig.firmware is not None:
        assert not rig.firmware.running
    if rig.card_server is not None:  # parked for the next open (connected, card in) or stopped
        from devices.virtual.bridges.vpcd_sessions import PARKED

        assert rig.card_server.port in PARKED.ports() or not rig.card_server.running
        PARKED.evict_all()


class _Lifecycle(Exception):
    pass


def test_close_hooks_run_once_around_the_release_and_details_follow_the_backends():
    reader = open_device("virtual:card")
    seen: list[str] = []
    reader.before_close(lambda: seen.append(f"before, open={not reader.closed}"))
    reader.after_close(lambda: seen.append(f"after 1, open={not reader.closed}"))
    reader.after_close(lambda: seen.append("after 2"))
    reader.add_details({"via": "test"})
    assert reader.added_details == {"via": "test"}
    reader.close()
    reader.close()
    assert seen == ["before, open=True", "after 2", "after 1, open=False"]  # once; last added, first run
    assert reader.closed and reader.added_details == {"via": "test"}


def test_a_failing_before_close_hook_still_releases_the_reader_and_runs_the_after_hooks():
    reader = open_device("virtual:card")
    seen: list[str] = []

    def fail() -> None:
        raise _Lifecycle("before-close hook failed")

    reader.before_close(fail)
    reader.after_close(lambda: seen.append("after"))
    with pytest.raises(_Lifecycle):
        reader.close()
    assert reader.closed and seen == ["after"]


@pytest.mark.serial
def test_the_real_backend_on_the_firmware_pty_has_no_rig():
    from devices.virtual.card import VirtualCard
    from devices.virtual.serial_firmware import ReaderFirmware
    from devices.virtual.slot import CardSlot

    assert rig_of(None) is None
    with ReaderFirmware(CardSlot(VirtualCard.from_profile("card")), "kiosk") as firmware:
        reader = open_device(f"serial:{firmware.device}?protocol=kiosk")
        try:
            reader.wait_for_card(2)
            reader.power_on()
            assert reader.transmit(SELECT_JPKI) == b"\x90\x00"  # a working reader, seen from the host only
            assert rig_of(reader) is None and bench_of(reader) is None and card_facts_of(reader) is None
        finally:
            reader.close()


def test_removed_card_goes_back_with_its_state_or_fresh():
    reader = open_device("virtual:card")
    rig = rig_of(reader)
    card = rig.card
    card.pin("auth").tries_left = 1
    rig.remove()
    assert not rig.present and rig.card is None and rig.card_facts() is not None  # facts of the card taken out
    assert rig.insert() is card and rig.card.pin("auth").tries_left == 1
    fresh = rig.insert_fresh()
    assert fresh is not card and fresh.pin("auth").tries_left == 3 and rig.card is fresh


def test_restore_disarms_the_fault_plan_and_puts_a_pulled_card_back():
    reader = open_device("virtual:card")
    rig = rig_of(reader)
    reader.power_on()
    rig.arm(FaultPlan(remove_at_apdu=1))
    with pytest.raises(CardRemoved):
        reader.transmit(SELECT_JPKI)
    assert not rig.present
    rig.restore()
    assert rig.present
    reader.power_on()
    assert reader.transmit(SELECT_JPKI) == b"\x90\x00"  # the plan is gone: the next APDU is answered
    rig.arm(FaultPlan(remove_at_apdu=2))
    rig.restore()
    assert reader.transmit(SELECT_JPKI) == b"\x90\x00" and reader.transmit(SELECT_JPKI) == b"\x90\x00"


def test_serial_faults_need_the_firmware_and_known_names():
    reader = open_device("virtual:card")
    with pytest.raises(DeviceError, match="virtual serial firmware"):
        rig_of(reader).arm_serial(corrupt_responses=1)
    with pytest.raises(DeviceError, match="nfcpy's UDP link"):
        rig_of(reader).require_link()


@pytest.mark.serial
def test_an_unknown_serial_fault_names_the_known_ones():
    reader = open_device("virtual:card?via=kiosk")
    try:
        with pytest.raises(ValueError, match="unknown serial fault 'melt'; known: corrupt_responses"):
            rig_of(reader).arm_serial(melt=1)
    finally:
        reader.close()


def test_unplug_takes_the_in_process_reader_away():
    reader = open_device("virtual:card")
    reader.power_on()
    rig_of(reader).unplug()
    with pytest.raises(DeviceGone):
        reader.transmit(SELECT_JPKI)


def test_profile_facts_and_provisioning_state_without_opening_a_device():
    phone = profile_facts("blank-phone")
    assert phone.kind == "phone" and phone.profile
    card = rig_of(open_device("virtual:blank-phone")).card
    assert provisioning_state(card) == "empty"
    assert provisioning_state(rig_of(open_device("virtual:card")).card) is None
