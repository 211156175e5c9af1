"""The vpcd card side: T=0 response shaping, the card server's life cycle, insertion and removal as pcscd
sees them, fault injection through the bridge, and ``serve_forever`` for ``hil virtual serve card --pcsc``."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from devices import open_device
from devices.base import BackendUnavailable, DeviceBusy, DeviceError
from devices.pcsc.reader import open_pcsc
from devices.virtual.bridges.pcsc import serve_forever
from devices.virtual.bridges.t0 import T0Responder
from devices.virtual.bridges.vpcd import VpcdCardServer
from devices.virtual.bridges.vpcd_sessions import SlotClaim, free_vpcd_slot
from devices.virtual.card import VirtualCard
from devices.virtual.profile import REPO_ROOT
from devices.virtual.rig import rig_of
from devices.virtual.slot import CardSlot, FaultPlan

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card, bridged, no_leaked_threads

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_CERT = bytes.fromhex("00A4020C02000A")


def wait_reader(name: str, present: bool, timeout: float) -> bool:
    from pcsc_support import wait_reader as wait  # the plugin module, loaded by pytest

    return wait(name, present, timeout)


# -- T=0 response shaping (in-process, no pcscd) --------------------------------------------------
@pytest.fixture
def t0() -> T0Responder:
    responder = T0Responder(CardSlot(VirtualCard.from_profile("card")))
    responder.power_on()
    assert responder.exchange(SELECT_JPKI) == b"\x90\x00"
    assert responder.exchange(SELECT_AUTH_CERT) == b"\x90\x00"
    return responder


def test_t0_case_2_with_exact_le_passes_unchanged(t0):
    response = t0.exchange(bytes.fromhex("00B0000004"))
    assert response[:2] == b"\x30\x82" and response[-2:] == b"\x90\x00" and len(response) == 6


def test_t0_case_2_with_a_wrong_le_answers_6cxx(t0):
    t0.exchange(bytes.fromhex("00A4020C020006"))
    assert t0.exchange(bytes.fromhex("00B0000000")) == b"\x6c\xa0"  # EF 0006 holds 160 bytes
    assert len(t0.exchange(bytes.fromhex("00B00000A0"))) == 162


def test_t0_long_and_extended_responses_wait_for_get_response(t0):
    assert t0.exchange(bytes.fromhex("00B00000000000")) == b"\x61\x00"
    data = b""
    for _ in range(7):
        chunk = t0.exchange(bytes.fromhex("00C0000000"))
        assert chunk[-2:] == b"\x61\x00"
        data += chunk[:-2]
    last = t0.exchange(bytes.fromhex("00C0000000"))
    assert last[-2:] == b"\x90\x00"
    data += last[:-2]
    assert len(data) == t0.slot.card.profile.cert_ef_size and data[:2] == b"\x30\x82"


def test_t0_get_response_rules(t0):
    assert t0.exchange(bytes.fromhex("00B000000000FF")) == b"\x61\xff"
    part = t0.exchange(bytes.fromhex("00C0000010"))
    assert len(part) == 18 and part[-2:] == b"\x61\xef"  # 16 taken, 239 left
    assert t0.exchange(bytes.fromhex("00C00000F0")) == b"\x6c\xef"  # asked for more than is left
    assert t0.exchange(bytes.fromhex("00C00100EF")) == b"\x6a\x86"
    assert t0.exchange(bytes.fromhex("00C00000EF"))[-2:] == b"\x90\x00"
    assert t0.exchange(bytes.fromhex("00C0000010")) == b"\x6d\x00"  # nothing held: the card's own answer


def test_t0_another_command_or_a_power_on_drops_held_data(t0):
    assert t0.exchange(bytes.fromhex("00B00000000000")) == b"\x61\x00"
    assert t0.exchange(SELECT_AUTH_CERT) == b"\x90\x00"
    assert t0.exchange(bytes.fromhex("00C0000000")) == b"\x6d\x00"
    assert t0.exchange(bytes.fromhex("00B00000000000")) == b"\x61\x00"
    t0.power_on()
    assert t0.exchange(bytes.fromhex("00C0000000")) == b"\x6d\x00"


def test_t0_status_only_answers_pass(t0):
    assert t0.exchange(bytes.fromhex("00A4020C02FFFF")) == b"\x6a\x82"
    assert t0.exchange(bytes.fromhex("00A4020C020018")) == b"\x90\x00"
    assert t0.exchange(bytes.fromhex("00200080")) == b"\x63\xc3"


# -- the card server ---------------------------------------------------------------------------------
def test_server_life_cycle_is_bounded_and_leaves_no_thread(pcscd, no_leaked_threads):
    port, name = free_vpcd_slot()
    server = VpcdCardServer(CardSlot(VirtualCard.from_profile("card")), port=port)
    started = time.monotonic()
    server.start(timeout=5)
    assert server.connected and server.running and server.connections == 1
    assert wait_reader(name, True, 3)
    server.stop(timeout=5)
    assert not server.running and time.monotonic() - started < 5
    assert wait_reader(name, False, 3)


def test_server_without_vpcd_listening_fails_clearly(pcscd, no_leaked_threads):
    with pytest.raises(BackendUnavailable) as caught:
        VpcdCardServer(CardSlot(VirtualCard.from_profile("card")), port=1).start(timeout=0.5)
    message = str(caught.value)
    assert "vpcd is not listening on 127.0.0.1:1" in message and "vsmartcard-vpcd" in message


def test_remove_and_insert_on_command_as_pcscd_sees_them(served_card):
    server, name = served_card
    card = server.remove()
    assert card is not None and not server.slot.present
    started = time.monotonic()
    assert wait_reader(name, False, 3)
    removal_seen = time.monotonic() - started
    assert removal_seen < 1.5
    fresh = server.insert()
    assert fresh is not card and fresh.profile == card.profile
    assert wait_reader(name, True, 3)
    assert server.connections == 2


def test_a_card_reinserted_at_once_is_still_seen_leaving(served_card):
    """The server stays away long enough after a removal for pcscd's presence poll to notice."""
    server, name = served_card
    with open_pcsc(f"pcsc:{name}") as reader:
        reader.wait_for_card(2)
        reader.power_on()
        card = server.remove()
        server.insert(card)
        assert wait_reader(name, True, 3)
        with pytest.raises(DeviceError):  # the old connection saw the card leave
            reader.transmit(SELECT_JPKI)
        assert reader.reconnect(3) == card.atr


def test_power_on_and_reset_from_pcscd_reset_the_volatile_state(served_card):
    server, name = served_card
    sign_pin = server.slot.card.profile.pins["sign"].value.encode()
    with open_pcsc(f"pcsc:{name}?reset=none") as reader:
        reader.wait_for_card(2)
        reader.power_on()
        reader.transmit(SELECT_JPKI)
        reader.transmit(bytes.fromhex("00A4020C02001B"))
        assert reader.transmit(bytes.fromhex("00200080") + bytes((len(sign_pin),)) + sign_pin) == b"\x90\x00"
        assert server.slot.card.pin("sign").verified
        reader.power_on()  # already connected: a warm reset, vpcd sends 2
        assert not server.slot.card.pin("sign").verified


def test_a_stalled_apdu_is_answered_late(bridged):
    rig_of(bridged).slot.arm(FaultPlan(stall_at_apdu=1, stall_seconds=0.4))
    started = time.monotonic()
    assert bridged.transmit(SELECT_JPKI) == b"\x90\x00"
    assert time.monotonic() - started >= 0.4


def test_every_vpcd_slot_taken_is_device_busy_and_port_picks_the_slot(pcscd, no_leaked_threads):
    with open_device("virtual:card?via=pcsc&port=35964") as second:
        assert second.name.endswith(" 01")
        with open_device("virtual:card?via=pcsc") as first:
            assert first.name.endswith(" 00")
            with pytest.raises(DeviceBusy) as caught:
                open_device("virtual:card?via=pcsc")
            assert "port=" in str(caught.value) and "\n" not in str(caught.value)


# -- serve_forever ------------------------------------------------------------------------------------
def _serve(port: int) -> subprocess.Popen[str]:
    code = f"from devices.virtual.bridges.pcsc import serve_forever\nserve_forever('card', port={port})\n"
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def _first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "serve_forever printed nothing"
    return proc.stdout.readline().strip()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_forever_names_the_reader_and_stops_cleanly(pcscd, stop_signal):
    port, name = free_vpcd_slot()
    proc = _serve(port)
    try:
        line = _first_line(proc, 15)
        assert f"PC/SC reader '{name}'" in line and f"pcsc:{name}" in line
        assert wait_reader(name, True, 3)
        proc.send_signal(stop_signal)
        assert proc.wait(10) == 0, proc.stderr.read()
        assert "Traceback" not in proc.stderr.read()
        assert wait_reader(name, False, 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_serve_forever_rejects_an_unknown_profile():
    with pytest.raises(DeviceError, match="no card profile 'no-such-card'"):
        serve_forever("no-such-card")


# -- a slot another process holds ---------------------------------------------------------------------
def _hold_slot(port: int, seconds: float) -> subprocess.Popen[str]:
    """Another process takes the slot's claim, says so, and keeps it ``seconds``. The tests use a port no vpcd
    slot has (a claim is a lock file named by the port): this process parks servers on the real ones."""
    code = ("import sys, time\nfrom devices.virtual.bridges.vpcd_sessions import SlotClaim\n"
            f"claim = SlotClaim.try_take({port})\nprint('held' if claim else 'busy', flush=True)\n"
            f"time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_slot_another_process_holds_is_waited_for_then_taken(pcscd):
    """A card server that is stopping (or parked, leaving when idle) frees its slot soon: wait, bounded."""
    holder = _hold_slot(35990, 1.0)
    try:
        claim = SlotClaim.wait_take(35990)
        assert holder.poll() is not None  # taken only once the other process let go
        claim.release()
    finally:
        holder.kill()
        holder.wait(5)


def test_a_slot_held_past_the_wait_is_one_line_naming_it(pcscd, monkeypatch):
    import devices.virtual.bridges.vpcd_sessions as sessions

    monkeypatch.setattr(sessions, "OTHERS_WAIT", 0.5)
    holder = _hold_slot(35990, 30)
    try:
        with pytest.raises(DeviceBusy) as caught:
            SlotClaim.wait_take(35990)
        assert str(caught.value) == ("vpcd slot 35990 is served by another process (waited 0 s); "
                                     "choose another port")
    finally:
        holder.kill()
        holder.wait(5)
