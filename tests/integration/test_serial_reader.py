"""SerialReader against real ptys: the virtual firmware, a silent port and a rogue module that garbles frames."""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator

import pytest

from devices.base import (
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    NoCard,
    NoReader,
    ProtocolError,
)
from devices.serial import SerialReader, load_protocol, open_serial, parse_serial_uri
from devices.serial.framing import Frame
from devices.virtual.card import VirtualCard
from devices.virtual.serial_firmware import ReaderFirmware, SerialFaultPlan
from devices.virtual.slot import CardSlot, FaultPlan
from harness.channel import CardChannel
from harness.jpki import JpkiClient, PinKind

pytestmark = pytest.mark.serial

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
PROTOCOLS = ("kiosk", "stb", "line")


pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py


@pytest.fixture
def slot() -> CardSlot:
    return CardSlot(VirtualCard.from_profile("card"))


def firmware_reader(slot: CardSlot, protocol: str, options: str = "") -> tuple[ReaderFirmware, SerialReader]:
    firmware = ReaderFirmware(slot, protocol).start()
    try:
        reader = open_serial(f"serial:{firmware.device}?protocol={protocol}{options}")
    except BaseException:
        firmware.stop()
        raise
    reader.after_close(firmware.stop)
    return firmware, reader


@pytest.fixture(params=PROTOCOLS)
def powered(request, slot) -> Iterator[tuple[ReaderFirmware, SerialReader]]:
    firmware, reader = firmware_reader(slot, request.param)
    with reader:
        reader.wait_for_card(1)
        reader.power_on()
        yield firmware, reader


class RogueModule:
    """A pty whose other end answers every frame the host sends with ``answer(payload)`` raw bytes (or nothing)."""

    def __init__(self, protocol: str, answer: Callable[[bytes], bytes]) -> None:
        self.spec = load_protocol(protocol)
        self.answer = answer
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)
        self.frames: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RogueModule:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)

    def frames_when(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """The frames heard once there are ``count`` (bounded wait): the last one the host wrote may still be in
        the pty when its reader has timed out, on a loaded machine."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.frames)

    def _run(self) -> None:
        decoder = self.spec.framing.decoder()
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.02)[0]:
                continue
            for event in decoder.feed(os.read(self.master, 4096)):
                if isinstance(event, Frame):
                    self.frames.append(event.payload)
                    reply = self.answer(event.payload)
                    if reply:
                        os.write(self.master, reply)


# --- the happy path on every protocol shape -------------------------------------------------------------------


def test_power_on_transmit_and_certificate_on_every_protocol(powered) -> None:
    firmware, reader = powered
    assert reader.card_state() == "powered"
    client = JpkiClient(CardChannel(reader))
    client.select_jpki()
    der = client.read_certificate("auth")
    assert der == VirtualCard.from_profile("card").profile.pki_file("auth.der").read_bytes()
    assert client.query_tries(PinKind.AUTH) == 3
    assert reader.stats.retransmissions == 0 and reader.stats.garbled == 0
    assert firmware.error is None
    caps = reader.capabilities
    assert caps.details["protocol"] == reader.spec.name and caps.extended_apdu == reader.spec.limits.extended_apdu


def test_uri_parsing_splits_harness_and_pyserial_options() -> None:
    assert parse_serial_uri("serial:/dev/ttyUSB0?protocol=kiosk&baudrate=115200") == (
        "tty", "/dev/ttyUSB0", {"protocol": "kiosk", "baudrate": "115200"})
    transport, url, ours = parse_serial_uri("rfc2217://127.0.0.1:4000?protocol=stb&ign_set_control&retries=1")
    assert (transport, url, ours) == ("rfc2217", "rfc2217://127.0.0.1:4000?ign_set_control",
                                      {"protocol": "stb", "retries": "1"})
    assert parse_serial_uri("socket://127.0.0.1:4001?protocol=kiosk")[1] == "socket://127.0.0.1:4001"


# --- retransmission and errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "recovery"), [("kiosk", "naks_sent"), ("stb", "retransmissions"),
                                                    ("line", "naks_sent")])
def test_one_corrupted_response_is_recovered(slot, protocol, recovery) -> None:
    firmware, reader = firmware_reader(slot, protocol)
    with reader:
        reader.power_on()
        firmware.arm(SerialFaultPlan(corrupt_responses=1))
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        assert reader.stats.garbled == 1 and getattr(reader.stats, recovery) == 1
        assert firmware.stats.commands_run == 2  # power_on and the SELECT, each run once


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_frames_beyond_the_retries_raise_a_one_line_protocol_error(slot, protocol) -> None:
    firmware, reader = firmware_reader(slot, protocol)
    with reader:
        reader.power_on()
        firmware.arm(SerialFaultPlan(corrupt_responses=50))
        with pytest.raises(ProtocolError) as info:
            reader.transmit(SELECT_JPKI)
        message = str(info.value)
        assert "\n" not in message and "transmit (seq" in message and "retries" in message
        firmware.arm(SerialFaultPlan())
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"  # the link recovers


def test_a_garbled_payload_with_a_good_checksum_is_a_protocol_error() -> None:
    spec = load_protocol("kiosk")

    def answer(payload: bytes) -> bytes:  # ACK, then a frame too short for the response layout
        return spec.framing.control("ack") + spec.framing.encode(b"\x20")

    uri = "serial:{}?protocol=kiosk&retries=1&response_timeout=0.2"
    with RogueModule("kiosk", answer) as rogue, open_serial(uri.format(rogue.device)) as r:
        with pytest.raises(ProtocolError, match=r"status \(seq \d+\): bad response frame: payload of 1 bytes"):
            r.card_state()
        assert [frame[0] for frame in rogue.frames] == [0x12]  # sent once; the NAK asked for the answer again


def test_noise_instead_of_frames_times_out() -> None:
    uri = "serial:{}?protocol=stb&response_timeout=0.1&retries=1"
    noise = b"\x00garbage\xff" * 3
    with RogueModule("stb", lambda payload: noise) as rogue, open_serial(uri.format(rogue.device)) as r, \
            pytest.raises(DeviceTimeout, match=r"stb reader, status \(seq \d+\): no response within 0\.1 s"):
        r.card_state()


def test_a_silent_port_times_out_after_the_retries() -> None:
    with RogueModule("kiosk", lambda payload: b"") as rogue, open_serial(
            f"serial:{rogue.device}?protocol=kiosk&ack_timeout=0.05&retries=2") as reader:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout, match=r"no ACK within 0\.05 s after 2 retries"):
            reader.power_on()
        assert time.monotonic() - start >= 0.1  # three waits of 0.05 s for an ACK
        assert len(rogue.frames_when(3)) == 3 and len(rogue.frames_when(4, timeout=0.2)) == 3  # no fourth try


def test_a_stalled_answer_times_out_and_late_answers_are_skipped(slot) -> None:
    firmware, reader = firmware_reader(slot, "stb", "&apdu_timeout=0.15&retries=1")
    with reader:
        reader.power_on()
        firmware.arm(SerialFaultPlan(stall_responses=1, stall_seconds=0.5))
        with pytest.raises(DeviceTimeout):
            reader.transmit(SELECT_JPKI)
        time.sleep(0.5)
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        assert reader.stats.stale >= 1


# --- the port itself ----------------------------------------------------------------------------------------------


def test_a_port_held_by_another_reader_is_busy(slot) -> None:
    firmware, reader = firmware_reader(slot, "kiosk")
    with reader, pytest.raises(DeviceBusy, match="is busy"):
        open_serial(f"serial:{firmware.device}?protocol=kiosk")


def test_a_port_that_goes_away_is_device_gone(slot) -> None:
    firmware, reader = firmware_reader(slot, "kiosk")
    with reader:
        reader.power_on()
        firmware.stop()
        with pytest.raises(DeviceGone, match="serial port gone"):
            reader.transmit(SELECT_JPKI)


def test_bad_device_names_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(NoReader, match="no serial port at /dev/nonexistent-tty"):
        open_serial("serial:/dev/nonexistent-tty?protocol=kiosk")
    with pytest.raises(DeviceError, match=r"say which protocol.*known: .*kiosk"):
        open_serial("serial:/dev/ttyS0")
    with pytest.raises(DeviceError, match="unknown option"):
        open_serial("serial:/dev/ttyS0?protocol=kiosk&colour=blue")
    with pytest.raises(DeviceError, match="option retries='x'"):
        open_serial("serial:/dev/ttyS0?protocol=kiosk&retries=x")
    broken = tmp_path / "broken.toml"
    broken.write_text("[protocol\nname = 1\n", "utf-8")
    with pytest.raises(DeviceError, match=rf"{broken}:1: not valid TOML"):
        open_serial(f"serial:/dev/ttyS0?protocol={broken}")
    with pytest.raises(NoReader):
        open_serial("socket://127.0.0.1:1?protocol=kiosk")


# --- card presence ------------------------------------------------------------------------------------------------


def test_a_card_pulled_mid_apdu_is_card_removed_until_the_next_power_on(powered) -> None:
    firmware, reader = powered
    firmware.slot.arm(FaultPlan(remove_at_apdu=1))
    with pytest.raises(CardRemoved):
        reader.transmit(SELECT_JPKI)
    with pytest.raises(CardRemoved):
        reader.transmit(SELECT_JPKI)
    assert reader.card_state() == "absent"
    with pytest.raises(NoCard):
        reader.power_on()
    firmware.slot.insert(VirtualCard.from_profile("card"))
    reader.wait_for_card(1)
    reader.power_on()
    assert reader.transmit(SELECT_JPKI) == b"\x90\x00"


def test_card_events_arrive_unasked_and_wait_for_card_returns(slot) -> None:
    _, reader = firmware_reader(slot, "kiosk")
    with reader:
        card = slot.remove()
        reader.wait_for_removal(1)
        assert reader.present_by_events is False
        with pytest.raises(NoCard, match=r"within 0\.2 s"):
            reader.wait_for_card(0.2)
        timer = threading.Timer(0.2, slot.insert, args=(card,))
        timer.start()
        start = time.monotonic()
        reader.wait_for_card(2)
        timer.join()
        assert 0.15 < time.monotonic() - start < 1.0
        assert reader.present_by_events is True and reader.stats.events >= 2


def test_a_card_swapped_since_power_on_is_not_talked_to(powered) -> None:
    firmware, reader = powered
    firmware.slot.insert(VirtualCard.from_profile("card"))  # another card, without a power-on
    time.sleep(0.1)
    with pytest.raises(CardRemoved, match="removed since power on"):
        reader.transmit(SELECT_JPKI)


def test_a_powered_card_the_module_calls_unpowered_is_a_removal_before_any_event() -> None:
    """A module answering "not powered" for the card this reader powered: that card is gone (swapped), even
    when the module's card event has not come yet (under load it can come after the answer)."""
    spec = load_protocol("kiosk")
    atr = VirtualCard.from_profile("card").atr

    def answer(payload: bytes) -> bytes:  # never an event: only the answers say what happened
        command = spec.codec.decode_command(payload)
        status, data = {"power_on": ("ok", atr), "status": ("ok", bytes([spec.codec.card_states["present"]]))
                        }.get(command.name, ("not_powered", b""))
        response = spec.codec.response(spec.codec.command_code(command), command.seq, status, data)
        return spec.framing.control("ack") + spec.framing.encode(response)

    with RogueModule("kiosk", answer) as rogue, open_serial(f"serial:{rogue.device}?protocol=kiosk") as reader:
        with pytest.raises(DeviceError, match="transmit before power_on") as never_powered:
            reader.transmit(SELECT_JPKI)
        assert not isinstance(never_powered.value, CardRemoved)
        assert reader.power_on() == atr
        with pytest.raises(CardRemoved, match="removed since power on"):
            reader.transmit(SELECT_JPKI)
        sent = len(rogue.frames)
        with pytest.raises(CardRemoved, match="removed since power on"):
            reader.transmit(SELECT_JPKI)  # until a power-on: nothing more is sent to the card that left
        assert len(rogue.frames) == sent


def test_a_module_without_sequence_numbers_works_and_stays_in_step(slot, tmp_path) -> None:
    """ACK/NAK alone (no SEQ): answers are matched by order, so a failed answer must never be left behind."""
    text = (load_protocol("kiosk").path or "").read_text("utf-8")
    path = tmp_path / "noseq.toml"
    path.write_text(text.replace('command = ["code", "seq", "data"]', 'command = ["code", "data"]')
                    .replace('response = ["code", "seq", "status", "data"]', 'response = ["code", "status", "data"]'))
    firmware, reader = firmware_reader(slot, str(path))
    with reader:
        reader.power_on()
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        slot.arm(FaultPlan(remove_at_apdu=1))
        with pytest.raises(CardRemoved):
            reader.transmit(SELECT_JPKI)
        slot.arm(FaultPlan())
        slot.insert(VirtualCard.from_profile("card"))
        reader.wait_for_card(1)
        assert reader.power_on() == slot.card.atr
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        firmware.arm(SerialFaultPlan(corrupt_responses=1))
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
