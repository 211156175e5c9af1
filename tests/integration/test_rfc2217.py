"""The port server on 127.0.0.1: pyserial's real RFC 2217 client (and socket://) in front of the firmware's pty."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from devices import open_device
from devices.base import DeviceGone, NoReader
from devices.serial import open_serial
from devices.virtual.card import VirtualCard
from devices.virtual.rig import rig_of
from devices.virtual.serial_firmware import PortServer, ReaderFirmware, SerialFaultPlan
from devices.virtual.slot import CardSlot, FaultPlan
from harness import fixtures
from harness.channel import CardChannel
from harness.jpki import JpkiClient

pytestmark = [pytest.mark.serial,
              pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")]

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


pytestmark = pytest.mark.usefixtures("no_thread_leak")  # tests/conftest.py


@pytest.fixture(scope="module")
def kiosk_over_rfc2217() -> Iterator:
    """One RFC 2217 session for several requirements: opening one takes ~0.5 s."""
    reader = open_device("virtual:card?via=kiosk&transport=rfc2217&apdu_timeout=0.3&retries=1")
    try:
        reader.wait_for_card(1)
        reader.power_on()
        yield reader
    finally:
        reader.close()


@pytest.fixture
def rfc(kiosk_over_rfc2217):
    reader = kiosk_over_rfc2217
    rig_of(reader).firmware.arm(SerialFaultPlan())
    rig_of(reader).slot.arm(FaultPlan())
    if not rig_of(reader).slot.present:
        rig_of(reader).slot.insert(VirtualCard.from_profile("card"))
        reader.wait_for_card(1)
    reader.power_off()
    reader.power_on()
    return reader


def test_rfc2217_negotiates_the_protocol_files_line_settings(rfc) -> None:
    settings = rig_of(rfc).port_server.line.settings
    assert (settings["baudrate"], settings["bytesize"], settings["parity"], settings["stopbits"]) == (38400, 8, "N", 1)
    assert rfc.transport == "rfc2217" and "ign_set_control" in rfc.url
    assert rig_of(rfc).port_server.clients_served == 1


def test_a_certificate_reads_whole_over_rfc2217(rfc) -> None:
    client = JpkiClient(CardChannel(rfc))
    client.select_jpki()
    assert client.read_certificate("auth") == (fixtures.pki_dir() / "card-auth.der").read_bytes()


def test_faults_are_recovered_over_rfc2217(rfc) -> None:
    before = rfc.stats.as_dict()
    rig_of(rfc).firmware.arm(SerialFaultPlan(corrupt_responses=1))
    assert rfc.transmit(SELECT_JPKI) == b"\x90\x00"
    rig_of(rfc).firmware.arm(SerialFaultPlan(drop_response_bytes=1))
    assert rfc.transmit(SELECT_JPKI) == b"\x90\x00"
    assert rfc.stats.garbled - before["garbled"] == 2 and rfc.stats.naks_sent - before["naks_sent"] == 2


def test_a_card_pulled_over_rfc2217_is_reported(rfc) -> None:
    from devices.base import CardRemoved

    rig_of(rfc).slot.arm(FaultPlan(remove_at_apdu=1))
    with pytest.raises(CardRemoved):
        rfc.transmit(SELECT_JPKI)
    assert rfc.card_state() == "absent"


def test_a_second_client_is_turned_away_while_one_is_served(rfc) -> None:
    with socket.create_connection(("127.0.0.1", rig_of(rfc).port_server.port), timeout=2) as extra:
        extra.settimeout(2)
        assert extra.recv(16) == b""  # closed by the server without a byte
    assert rig_of(rfc).port_server.clients_refused >= 1
    assert rfc.transmit(SELECT_JPKI) == b"\x90\x00"  # the first client is undisturbed


def test_socket_transport_and_server_stop_makes_the_port_gone() -> None:
    slot = CardSlot(VirtualCard.from_profile("card"))
    with ReaderFirmware(slot, "stb") as firmware:
        server = PortServer(firmware.device, rfc2217=False).start()
        try:
            assert server.url.startswith("socket://127.0.0.1:")
            reader = open_serial(f"{server.url}?protocol=stb&response_timeout=0.2&retries=1")
            with reader:
                reader.power_on()
                assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
                server.stop()
                with pytest.raises((DeviceGone, NoReader)):
                    for _ in range(3):
                        reader.transmit(SELECT_JPKI)
        finally:
            server.stop()


def test_nothing_listening_is_no_reader() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NoReader, match=f"no serial port at rfc2217://127.0.0.1:{port}"):
        open_serial(f"rfc2217://127.0.0.1:{port}?protocol=kiosk")


def test_the_server_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        PortServer("/dev/null", host="0.0.0.0")
