"""devices.serial.rfc2217_port: pyserial's RFC 2217 client woken by answers, against the real port server.

The port server is the virtual firmware's (a thread, 127.0.0.1, in front of a real pty); the client is
pyserial's own protocol code with only its waiting changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from devices.serial import open_serial
from devices.serial.rfc2217_port import EventedRfc2217, _answered, _wake_or_sleep
from devices.virtual.card import VirtualCard
from devices.virtual.serial_firmware import PortServer, ReaderFirmware
from devices.virtual.slot import CardSlot

pytestmark = [pytest.mark.serial, pytest.mark.usefixtures("no_thread_leak"),
              pytest.mark.filterwarnings("ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning")]

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


@pytest.fixture
def server() -> Iterator[PortServer]:
    with ReaderFirmware(CardSlot(VirtualCard.from_profile("card")), "kiosk") as firmware:
        server = PortServer(firmware.device).start()
        try:
            yield server
        finally:
            server.stop()


def _port(server: PortServer, grace: float) -> EventedRfc2217:
    port = EventedRfc2217(reconnect_grace=grace)
    port.port = f"{server.url}?ign_set_control"
    port.baudrate = 38400
    return port


def test_reconnecting_at_once_is_served_every_time_and_negotiates_the_line(server) -> None:
    for _ in range(10):
        port = _port(server, grace=0)
        port.open()
        assert port.is_open
        port.close()
    assert (server.clients_served, server.clients_refused) == (10, 0)
    assert server.line.settings["baudrate"] == 38400


def test_a_reconnect_within_the_grace_waits_for_the_rest_of_it(server) -> None:
    first = _port(server, grace=0.4)
    first.open()
    first.close()
    closed = time.monotonic()
    second = _port(server, grace=0.4)
    second.open()  # a lower bound only: the wait is at least the grace left, whatever the machine's load
    assert time.monotonic() - closed >= 0.4
    second.close()
    assert server.clients_served == 2


def test_a_client_that_arrives_just_before_the_served_one_ends_is_served_not_turned_away(server) -> None:
    """The served client's end can reach the server after the next connection (two CPUs' loopback queues on a
    loaded machine: a pre-flight closing and its part connecting): the newcomer waits for it, within
    REFUSE_GRACE, instead of being closed at once ('Broken pipe' in the part)."""
    first = _port(server, grace=0)
    first.open()
    second = _port(server, grace=0)
    closer = threading.Timer(0.1, first.close)  # the end arrives after the second connection
    closer.start()
    try:
        second.open()
        assert second.is_open
        second.write(b"\x00")  # no broken pipe: the server serves this connection
    finally:
        closer.join()
        second.close()
    assert (server.clients_served, server.clients_refused) == (2, 0)


def test_a_reader_over_the_evented_client_answers_apdus_across_reopens(server) -> None:
    uri = f"{server.url}?protocol=kiosk&ign_set_control&reconnect_grace=0"
    for _ in range(3):
        with open_serial(uri) as reader:
            reader.wait_for_card(2)
            reader.power_on()
            assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
    assert server.clients_refused == 0


def test_a_wait_ends_when_an_answer_is_processed() -> None:
    ended = threading.Event()
    waiter = threading.Thread(target=lambda: (_wake_or_sleep(30), ended.set()), name="rfc2217-port-waiter")
    waiter.start()
    deadline = time.monotonic() + 25
    while not ended.is_set() and time.monotonic() < deadline:
        _answered()  # the reader thread's notification, repeated in case the waiter was not waiting yet
        ended.wait(0.05)
    waiter.join(5)
    assert ended.is_set()  # woken well before its 30 s; a sleep would still be running
