"""PC/SC sessions that outlive one open: pooled contexts, parked vpcd card servers, and the channel's guards.

Real pcscd + vpcd throughout. What is checked is what the suites rely on: every open gives a freshly
powered card (security state cleared; counters as the card holds them), a removal is still a real
removal, and pcscd sees no insertion or removal where a parked server was reused (its event counter
stays put). The channel part: malformed commands never reach a backend, and a backend call that does
not return in time ends in ``DeviceTimeout``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from smartcard import scard

from devices import CardRemoved, DeviceTimeout, open_device
from devices.pcsc.reader import PcscReader, open_pcsc
from devices.pcsc.scard import POOL
from devices.virtual.bridges import vpcd_sessions
from devices.virtual.bridges.vpcd import VpcdCardServer
from devices.virtual.bridges.vpcd_sessions import PARKED, free_vpcd_slot
from devices.virtual.card import VirtualCard
from devices.virtual.rig import rig_of
from devices.virtual.slot import CardSlot, FaultPlan
from harness.channel import CardChannel, MalformedApdu
from harness.iso.apdu import CommandApdu

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card, no_leaked_threads

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_PIN = bytes.fromhex("00A4020C020018")
SELECT_SIGN_PIN = bytes.fromhex("00A4020C02001B")
SELECT_SIGN_CERT = bytes.fromhex("00A4020C020001")  # readable only after the sign PIN's VERIFY
READ_HEADER = bytes.fromhex("00B0000004")
QUERY_TRIES = bytes.fromhex("00200080")


def verify(pin: str) -> bytes:
    return bytes.fromhex("00200080") + bytes((len(pin),)) + pin.encode()


def event_counter(name: str) -> int:
    """pcsc-lite's count of insertions and removals of reader ``name`` (high 16 bits of the event state)."""
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hr == scard.SCARD_S_SUCCESS
    try:
        hr, states = scard.SCardGetStatusChange(context, 0, [(name, scard.SCARD_STATE_UNAWARE)])
        assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
        return states[0][1] >> 16
    finally:
        scard.SCardReleaseContext(context)


def signed_in(reader, card: VirtualCard) -> bytes:
    """The sign PIN verified (security state set); returns what the protected EF then answers."""
    pin = card.profile.pins["sign"].value
    for apdu in (SELECT_JPKI, SELECT_SIGN_PIN):
        assert reader.transmit(apdu) == b"\x90\x00"
    assert reader.transmit(verify(pin)) == b"\x90\x00"
    assert reader.transmit(SELECT_SIGN_CERT) == b"\x90\x00"
    return reader.transmit(READ_HEADER)[-2:]


def protected_read(reader) -> bytes:
    for apdu in (SELECT_JPKI, SELECT_SIGN_CERT):
        assert reader.transmit(apdu) == b"\x90\x00"
    return reader.transmit(READ_HEADER)


def auth_tries(reader) -> bytes:
    for apdu in (SELECT_JPKI, SELECT_AUTH_PIN):
        assert reader.transmit(apdu) == b"\x90\x00"
    return reader.transmit(QUERY_TRIES)


@pytest.fixture
def parked_bridge(pcscd, no_leaked_threads) -> Iterator[PcscReader]:
    """``virtual:card?via=pcsc`` opened, powered and closed once, so its card server is parked."""
    reader = open_device("virtual:card?via=pcsc")
    assert isinstance(reader, PcscReader)
    reader.power_on()
    reader.power_off()
    reader.close()
    assert rig_of(reader).card_server.port in PARKED.ports()
    yield reader
    PARKED.evict(rig_of(reader).card_server.port)


# -- the pooled context of a real pcsc: reader ---------------------------------------------------
def test_reopened_pcsc_reader_reuses_the_context_and_gets_a_fresh_power_on(served_card):
    server, name = served_card
    first = open_pcsc(f"pcsc:{name}")
    first.wait_for_card(5)
    first.power_on()
    assert signed_in(first, server.slot.card) == b"\x90\x00"
    assert auth_tries(first) == b"\x63\xc3"
    assert first.transmit(verify("9999")) == b"\x63\xc2"  # a wrong auth PIN: the card counts it
    context = first._context
    first.power_off()
    first.close()
    second = open_pcsc(f"pcsc:{name}")
    try:
        assert second._context == context, "the second open did not take the pooled context"
        assert POOL.take(name, scard.SCARD_SHARE_SHARED) is None
        second.wait_for_card(5)
        second.power_on()
        assert protected_read(second) == b"\x69\x82", "security state survived close and reopen"
        assert auth_tries(second) == b"\x63\xc2", "the card's own counter must be as the card holds it"
        assert server.slot.card.pin("auth").tries_left == 2
    finally:
        second.close()


# -- parked vpcd card servers --------------------------------------------------------------------
def test_reopen_reuses_the_parked_server_without_removal_and_with_a_fresh_card(parked_bridge):
    old_server, name = rig_of(parked_bridge).card_server, parked_bridge.name
    events = event_counter(name)
    reader = open_device("virtual:card?via=pcsc")
    try:
        assert isinstance(reader, PcscReader)
        assert rig_of(reader).card_server is old_server and reader.name == name
        reader.wait_for_card(5)
        assert reader.power_on() == rig_of(reader).slot.card.atr
        assert signed_in(reader, rig_of(reader).slot.card) == b"\x90\x00"
        assert auth_tries(reader) == b"\x63\xc3"
        assert reader.transmit(verify("9999")) == b"\x63\xc2"
        reader.power_off()
        reader.close()
        again = open_device("virtual:card?via=pcsc")
        try:
            assert rig_of(again).card_server is old_server
            again.power_on()
            assert protected_read(again) == b"\x69\x82"
            assert auth_tries(again) == b"\x63\xc3", "each open of a virtual device gives a factory-fresh card"
        finally:
            again.close()
        assert event_counter(name) == events, "pcscd saw the card leave or arrive: the poll was paid"
    finally:
        reader.close()


def test_a_parked_server_takes_the_next_open_profile_and_its_atr(parked_bridge):
    port = rig_of(parked_bridge).card_server.port
    reader = open_device(f"virtual:phone?via=pcsc&port={port}")
    try:
        assert rig_of(reader).card_server is rig_of(parked_bridge).card_server
        assert reader.power_on() == VirtualCard.from_profile("phone").atr != VirtualCard.from_profile("card").atr
        assert rig_of(reader).slot.card.profile.kind == "phone"
    finally:
        reader.close()


def test_a_parked_server_answers_like_t0_when_the_next_open_asks(parked_bridge):
    port = rig_of(parked_bridge).card_server.port
    reader = open_device(f"virtual:card?via=pcsc&t0=1&port={port}")
    try:
        assert rig_of(reader).card_server is rig_of(parked_bridge).card_server
        reader.power_on()
        assert reader.capabilities.details["t0_emulation"] == "on"
        for apdu in (SELECT_JPKI, bytes.fromhex("00A4020C02000A")):
            assert reader.transmit(apdu) == b"\x90\x00"
        response = reader.transmit(bytes.fromhex("00B00000000000"))
        assert response[-2:] == b"\x90\x00" and reader.auto_exchanges, "no GET RESPONSE: not answering as T=0"
    finally:
        reader.close()


def test_removal_on_a_reused_server_is_still_a_real_removal(parked_bridge):
    reader = open_device("virtual:card?via=pcsc")
    try:
        assert rig_of(reader).card_server is rig_of(parked_bridge).card_server
        reader.power_on()
        events = event_counter(reader.name)
        rig_of(reader).slot.remove()
        reader.wait_for_removal(3)
        assert event_counter(reader.name) > events
        with pytest.raises(CardRemoved):
            reader.transmit(SELECT_JPKI)
    finally:
        reader.close()
    assert rig_of(parked_bridge).card_server.port not in PARKED.ports(), "a server without its card must not be parked"


def test_a_slot_held_by_a_parked_server_is_freed_when_another_needs_it(parked_bridge):
    port = rig_of(parked_bridge).card_server.port
    free, _name = free_vpcd_slot([port])
    assert free == port and port not in PARKED.ports() and not rig_of(parked_bridge).card_server.running


def test_a_slot_served_by_another_server_is_not_handed_out(pcscd, no_leaked_threads):
    port, _name = free_vpcd_slot()
    reader = open_device(f"virtual:card?via=pcsc&port={port}")
    try:
        with pytest.raises(Exception, match="already holds a card or is claimed"):
            free_vpcd_slot([port])
    finally:
        reader.close()
        PARKED.evict(port)


# -- the channel: malformed commands and deadlines -----------------------------------------------
@pytest.fixture(params=["virtual:card", "virtual:card?via=pcsc", "virtual:card?via=nfc"])
def any_backend(request, pcscd, no_leaked_threads) -> Iterator:
    reader = open_device(request.param)
    try:
        reader.wait_for_card(5)
        reader.power_on()
        yield reader
    finally:
        reader.close()
        if "via=pcsc" in request.param:
            PARKED.clear()


@pytest.mark.parametrize("raw", ["00", "00A4", "00A404", "00A4040C0AD392F0", "00B0000000FF"])
def test_a_malformed_command_is_refused_before_it_reaches_any_backend(any_backend, raw):
    channel = CardChannel(any_backend)
    sent_before = rig_of(any_backend).slot.apdu_count
    with pytest.raises(MalformedApdu, match=r"nothing was sent|shorter than the 4-byte"):
        channel.transmit(bytes.fromhex(raw))
    assert rig_of(any_backend).slot.apdu_count == sent_before, "the malformed command reached the card"
    assert channel.trace.entries[-1].note.startswith("MalformedApdu:"), "the refusal is not in the trace"
    assert channel.transmit(SELECT_JPKI).sw == 0x9000, "the reader must still work afterwards"
    channel.close()


def test_a_deliberate_wrong_length_reaches_the_card_but_never_a_short_header(any_backend):
    channel = CardChannel(any_backend)
    assert channel.transmit(bytes.fromhex("00A4040C0AD392F0"), wrong_length_ok=True).sw == 0x6700
    with pytest.raises(MalformedApdu):
        channel.transmit(b"\x00", wrong_length_ok=True)
    channel.close()


def test_a_stalled_backend_call_ends_in_device_timeout_and_the_next_call_waits_for_it(bridged):
    channel = CardChannel(bridged, timeout=0.3)
    rig_of(bridged).slot.arm(FaultPlan(stall_at_apdu=1, stall_seconds=1.5))
    with pytest.raises(DeviceTimeout, match=r"within 0\.3 s"):
        channel.transmit(SELECT_JPKI)
    channel.timeout = 10
    assert channel.transmit(SELECT_JPKI).sw == 0x9000  # queued behind the stalled call, never beside it
    channel.close()


def test_every_io_backend_call_runs_under_a_deadline_on_the_channel_worker(bridged):
    seen: list[str] = []
    original = bridged.transmit

    def recording(apdu: bytes) -> bytes:
        seen.append(threading.current_thread().name)
        return original(apdu)

    bridged.transmit = recording  # type: ignore[method-assign]
    channel = CardChannel(bridged)  # no timeout set: the backstop deadline applies
    assert channel.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x0C, bytes.fromhex("D392F000260100000001"))).sw == 0x9000
    assert seen and seen[0] != threading.current_thread().name and seen[0].startswith("apdu-")
    channel.close()


def test_the_in_process_reader_is_called_directly_without_a_timeout(pcscd):
    reader = open_device("virtual:card")
    reader.power_on()
    channel = CardChannel(reader)
    assert channel.transmit(SELECT_JPKI).sw == 0x9000
    assert channel._worker is None
    reader.close()


def test_served_card_server_without_claim_still_blocks_the_slot(pcscd, no_leaked_threads):
    """A server started by hand (no claim) fills its reader: the next open takes another slot."""
    port, name = free_vpcd_slot()
    server = VpcdCardServer(CardSlot(VirtualCard.from_profile("card")), port=port).start()
    try:
        from pcsc_support import wait_reader  # loaded as this module's plugin by then

        assert wait_reader(name, True, 5)
        reader = open_device("virtual:card?via=pcsc")
        try:
            assert rig_of(reader).card_server.port != port
        finally:
            reader.close()
            PARKED.clear()
    finally:
        server.stop()


def test_a_parked_server_nobody_reuses_leaves_by_itself(pcscd, no_leaked_threads, monkeypatch):
    monkeypatch.setattr(vpcd_sessions, "IDLE_SECONDS", 0.2)
    reader = open_device("virtual:card?via=pcsc")
    reader.power_on()
    thread, port, name = rig_of(reader).card_server._thread, rig_of(reader).card_server.port, reader.name
    reader.close()
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and port not in PARKED.ports()
    from pcsc_support import wait_reader  # loaded as this module's plugin by then

    assert wait_reader(name, False, 3), "pcscd still shows the card of the expired server"
