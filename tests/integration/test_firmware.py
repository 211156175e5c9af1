"""The virtual reader firmware on a real pty, driven by a raw pyserial client that frames bytes itself."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from devices import open_device
from devices.serial import load_protocol
from devices.serial.framing import Control, Frame, Garbled
from devices.virtual.card import VirtualCard
from devices.virtual.rig import rig_of
from devices.virtual.serial_firmware import ReaderFirmware, SerialFaultPlan, serve_forever
from devices.virtual.slot import CardSlot

pytestmark = pytest.mark.serial

VERIFY_WRONG = bytes.fromhex("0020008004") + b"0000"
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")


pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py


class RawHost:
    """A host that speaks a protocol by hand, to see exactly what the firmware sends."""

    def __init__(self, device: str, protocol: str) -> None:
        self.spec = load_protocol(protocol)
        self.port = serial.Serial(device, timeout=0.02)
        self.decoder = self.spec.framing.decoder()

    def close(self) -> None:
        self.port.close()

    def send(self, payload: bytes) -> None:
        self.port.write(self.spec.framing.encode(payload))

    def command(self, name: str, seq: int, data: bytes = b"") -> None:
        self.send(self.spec.codec.command(name, seq, data))

    def control(self, kind: str) -> None:
        self.port.write(self.spec.framing.control(kind))

    def events(self, duration: float = 0.3, until: int = 99) -> list:
        found: list = []
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and len(found) < until:
            data = self.port.read(4096)
            found += self.decoder.feed(data) if data else self.decoder.expire()
        return found

    def messages(self, events: list) -> list:
        return [self.spec.codec.decode_from_reader(e.payload) for e in events if isinstance(e, Frame)]


@pytest.fixture
def slot() -> CardSlot:
    return CardSlot(VirtualCard.from_profile("card"))


@pytest.fixture
def kiosk(slot) -> Iterator[tuple[ReaderFirmware, RawHost]]:
    with ReaderFirmware(slot, "kiosk") as firmware:
        host = RawHost(firmware.device, "kiosk")
        try:
            yield firmware, host
        finally:
            host.close()


def power_on(host: RawHost) -> None:
    host.command("power_on", 1)
    assert host.messages(host.events(until=2))[0].status == "ok"


def test_start_gives_a_pty_and_stop_ends_the_thread(slot) -> None:
    firmware = ReaderFirmware(slot, "stb")
    with pytest.raises(RuntimeError, match="not started"):
        _ = firmware.device
    firmware.start()
    assert firmware.device.startswith("/dev/pts/") and firmware.running
    firmware.stop(timeout=2)
    assert not firmware.running and firmware.error is None
    firmware.stop()  # idempotent


def test_every_good_frame_is_acked_before_its_answer(kiosk) -> None:
    firmware, host = kiosk
    host.command("power_on", 1)
    events = host.events(until=2)
    assert events[0] == Control("ack")
    [answer] = host.messages(events)
    assert (answer.name, answer.seq, answer.status, answer.data) == ("power_on", 1, "ok", firmware.slot.card.atr)


def test_a_garbled_frame_is_nakked_and_not_run(kiosk) -> None:
    firmware, host = kiosk
    frame = bytearray(host.spec.framing.encode(host.spec.codec.command("power_on", 1)))
    frame[-1] ^= 0xFF
    host.port.write(bytes(frame))
    assert host.events(until=1) == [Control("nak")]
    assert firmware.stats.commands_run == 0 and firmware.stats.garbled_received == 1


def test_a_frame_cut_short_is_nakked_after_the_inter_byte_timeout(kiosk) -> None:
    _, host = kiosk
    host.port.write(host.spec.framing.encode(host.spec.codec.command("status", 1))[:-2])
    start = time.monotonic()
    assert host.events(1.0, until=1) == [Control("nak")]
    assert time.monotonic() - start >= host.spec.timing.inter_byte_timeout * 0.9


def test_a_nak_gets_the_last_answer_again(kiosk) -> None:
    firmware, host = kiosk
    power_on(host)
    host.control("nak")
    [again] = host.messages(host.events(until=1))
    assert again.name == "power_on" and again.seq == 1
    assert firmware.stats.commands_run == 1 and firmware.stats.naks_received == 1


def test_a_repeated_sequence_number_is_answered_from_the_cache(kiosk) -> None:
    """A re-sent wrong VERIFY must not cost a second try."""
    firmware, host = kiosk
    power_on(host)
    for seq, apdu in ((2, SELECT_JPKI), (3, SELECT_AUTH_PIN)):
        host.command("transmit", seq, apdu)
        host.events(until=2)
    host.command("transmit", 4, VERIFY_WRONG)
    first = host.messages(host.events(until=2))
    host.command("transmit", 4, VERIFY_WRONG)
    second = host.messages(host.events(until=2))
    assert first[0].data == second[0].data == b"\x63\xc2"
    assert firmware.slot.card.pin("auth").tries_left == 2
    assert firmware.stats.replays == 1


def test_unknown_commands_and_missing_cards_are_answered_with_a_status(kiosk) -> None:
    firmware, host = kiosk
    host.send(b"\x7f\x05")
    [answer] = host.messages(host.events(until=2))
    assert (answer.status, answer.seq) == ("bad_command", 5)
    host.command("transmit", 6, SELECT_JPKI)
    assert host.messages(host.events(until=2))[0].status == "not_powered"
    firmware.slot.remove()
    host.command("power_on", 7)
    messages = host.messages(host.events(until=3))
    assert [(m.kind, m.name) for m in messages] == [("event", "card_removed"), ("response", "power_on")]
    assert messages[1].status == "no_card"


def test_card_events_follow_the_slot(kiosk) -> None:
    firmware, host = kiosk
    card = firmware.slot.remove()
    firmware.slot.insert(card)
    names = [m.name for m in host.messages(host.events(0.3))]
    assert names == ["card_removed", "card_inserted"]
    assert firmware.stats.events_sent == 2


def test_pull_card_on_an_ins_answers_card_removed_after_the_event(kiosk) -> None:
    firmware, host = kiosk
    power_on(host)
    firmware.arm(SerialFaultPlan(pull_card_on_ins=0xA4, pull_card_occurrence=2))
    host.command("transmit", 2, SELECT_JPKI)
    assert host.messages(host.events(until=2))[0].status == "ok"
    host.command("transmit", 3, SELECT_JPKI)
    messages = host.messages(host.events(until=3))
    assert [(m.name, m.status) for m in messages] == [("card_removed", None), ("transmit", "card_removed")]
    assert not firmware.slot.present and firmware.stats.faults_injected == {"pull_card_on_ins": 1}


def test_response_faults_corrupt_drop_mute_and_stall(kiosk) -> None:
    firmware, host = kiosk
    firmware.arm(SerialFaultPlan(corrupt_responses=1))
    host.command("status", 1)
    assert isinstance(host.events(until=2)[1], Garbled)
    firmware.arm(SerialFaultPlan(drop_response_bytes=1))
    host.command("status", 2)
    assert isinstance(host.events(0.5, until=2)[1], Garbled)  # cut short: expires after the gap
    firmware.arm(SerialFaultPlan(mute_responses=1))
    host.command("status", 3)
    assert host.events(0.2) == [Control("ack")]
    firmware.arm(SerialFaultPlan(stall_responses=1, stall_seconds=0.3))
    host.command("status", 4)
    start = time.monotonic()
    events = host.events(1.0, until=2)
    assert events[0] == Control("ack") and time.monotonic() - start >= 0.25
    assert firmware.stats.faults_injected == {"corrupt_responses": 1, "drop_response_bytes": 1,
                                              "mute_responses": 1, "stall_responses": 1}


def test_stop_while_a_host_holds_the_port_makes_it_gone(slot) -> None:
    firmware = ReaderFirmware(slot, "line").start()
    host = RawHost(firmware.device, "line")
    try:
        firmware.stop()
        with pytest.raises(serial.SerialException):
            for _ in range(10):
                host.port.read(1)
                host.port.write(b"x")
    finally:
        host.close()


def test_open_via_serial_exposes_slot_and_firmware_and_stops_them_on_close() -> None:
    reader = open_device("virtual:phone?via=stb")
    rig = rig_of(reader)
    assert rig is not None and rig.firmware is not None
    firmware = rig.firmware
    assert rig.slot.card.profile.kind == "phone" and firmware.running
    assert reader.uri == "virtual:phone?via=stb" and reader.spec.name == "stb"
    reader.close()
    assert not firmware.running
    with pytest.raises(Exception, match="transport='carrier-pigeon'"):
        open_device("virtual:card?via=kiosk&transport=carrier-pigeon")
    with pytest.raises(Exception, match="via=serial needs protocol"):
        open_device("virtual:card?via=serial")


def test_serve_forever_prints_the_device_names_and_stops_on_request() -> None:
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=serve_forever, args=("card", "kiosk", 0), kwargs={"stop": stop, "out": out})
    thread.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and out.getvalue().count("\n") < 2:
        time.sleep(0.02)
    stop.set()
    thread.join(3)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("serial:/dev/pts/") and lines[0].endswith("?protocol=kiosk")
    assert lines[1].startswith("rfc2217://127.0.0.1:")
    assert lines[1].endswith("?protocol=kiosk&ign_set_control&reconnect_grace=0")
    assert not thread.is_alive()
