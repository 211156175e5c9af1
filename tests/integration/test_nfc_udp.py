"""The virtual card and phone as Type B PICCs on nfcpy's UDP link, with nfcpy's real reader side in front.

Nothing of nfcpy is mocked: every APDU below crosses ATTRIB, I/R/S blocks, chaining and WTX.
"""

import dataclasses
import hashlib
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from devices import CardRemoved, DeviceBusy, DeviceError, NoCard, open_device
from devices.nfc.reader import NfcReader
from devices.virtual.bridges.iso_dep_picc import State, bit_rate_byte, build_atqb, fsci_for
from devices.virtual.bridges.nfc import NfcUdpCard, serve_forever
from devices.virtual.card import VirtualCard
from devices.virtual.profile import load_profile
from devices.virtual.rig import rig_of
from devices.virtual.slot import CardSlot, FaultPlan

pytestmark = pytest.mark.nfc

REPO = Path(__file__).resolve().parents[2]
PKI = REPO / "fixtures" / "pki"
SELECT_JPKI = "00A4040C0AD392F000260100000001"
SHA256_PREFIX = bytes.fromhex("3031300D060960864801650304020105000420")


@pytest.fixture(scope="module", autouse=True)
def pki_ready():
    """Another helper generates fixtures/pki; wait (bounded) for the certificates the cards load."""
    deadline = time.monotonic() + 120
    while not all((PKI / name).exists() for name in ("card-auth.der", "phone-auth.der", "sign-ca.der")):
        if time.monotonic() > deadline:
            pytest.fail("fixtures/pki did not appear within 120 s")
        time.sleep(1)


@pytest.fixture
def reader():
    with open_device("virtual:card?via=nfc") as r:
        r.wait_for_card(3)
        r.power_on()
        yield r


@pytest.fixture
def phone():
    with open_device("virtual:phone?via=nfc") as r:
        r.wait_for_card(3)
        r.power_on()
        yield r


def tx(reader, apdu: str) -> bytes:
    return reader.transmit(bytes.fromhex(apdu.replace(" ", "")))


def sw(answer: bytes) -> str:
    return answer[-2:].hex().upper()


def verify_auth(reader) -> None:
    pin = rig_of(reader).slot.card.profile.pins["auth"].value.encode()
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(tx(reader, "00A4020C020018")) == "9000"
    assert sw(tx(reader, f"00200080{len(pin):02X}{pin.hex()}")) == "9000"


def sign_auth(reader, message: bytes) -> bytes:
    digest_info = SHA256_PREFIX + hashlib.sha256(message).digest()
    assert sw(tx(reader, "00A4020C020017")) == "9000"
    return tx(reader, f"802A0080{len(digest_info):02X}{digest_info.hex()}00")


# -- ATQB from the profile ---------------------------------------------------------------------------
def test_atqb_follows_the_profile():
    card, phone = load_profile("card").contactless, load_profile("phone").contactless
    expected = "50 " + card.pupi.hex(" ") + " " + card.app_data.hex(" ") + " B3 81 A1"
    assert build_atqb(card).hex(" ").upper() == expected.upper()
    assert build_atqb(phone)[-1] == 0xD1  # FWI 13
    assert [fsci_for(n) for n in (16, 100, 256, 1000)] == [0, 6, 8, 8]
    assert bit_rate_byte((106,)) == 0 and bit_rate_byte((106, 212, 424)) == 0xB3


# -- APDUs, chaining --------------------------------------------------------------------------------------
def test_apdu_round_trip(reader):
    assert isinstance(reader, NfcReader)
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(tx(reader, "00A4020C020006")) == "9000"
    label = tx(reader, "00B0000020")
    assert label[:-2].rstrip() == b"JPKIAPICCTOKEN2" and sw(label) == "9000"
    record = rig_of(reader).link.last_exchange
    assert (record.blocks_in, record.blocks_out, record.wtx) == (1, 1, 0)


def test_two_kilobyte_certificate_read_with_extended_le_is_chained(reader):
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(tx(reader, "00A4020C02000A")) == "9000"
    answer = tx(reader, "00B0000000 0000")  # extended Le 65536: the whole 2048-byte EF in one APDU
    assert sw(answer) == "9000" and len(answer) == 2050
    der = (PKI / "card-auth.der").read_bytes()
    assert answer[: len(der)] == der
    x509.load_der_x509_certificate(answer[: len(der)])
    record = rig_of(reader).link.last_exchange
    assert record.chained_response and record.blocks_out == 9  # 2050 bytes in 253-byte INF fields
    stats = rig_of(reader).link.snapshot()
    assert stats["chained_blocks_out"] == 8 and stats["acks_in"] == 8
    assert stats["largest_frame_out"] == 256 and stats["largest_frame_in"] <= 256


def test_long_command_is_chained_to_the_card(reader):
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    answer = tx(reader, "00A4040C00012C" + "A0" * 300)  # 307-byte APDU > 253-byte INF
    assert sw(answer) == "6A82"
    record = rig_of(reader).link.last_exchange
    assert record.chained_command and record.blocks_in == 2 and record.command_length == 307
    stats = rig_of(reader).link.snapshot()
    assert stats["chained_blocks_in"] == 1 and stats["acks_out"] == 1 and stats["oversize_frames_in"] == 0


# -- WTX -----------------------------------------------------------------------------------------------
def test_slow_signature_is_bridged_with_wtx_and_verifies(reader):
    card = rig_of(reader).slot.card
    card.profile = dataclasses.replace(card.profile, sign_delay_ms=700)  # FWT is 309 ms (FWI 10)
    verify_auth(reader)
    started = time.monotonic()
    answer = sign_auth(reader, b"contactless challenge")
    assert time.monotonic() - started >= 0.7
    assert sw(answer) == "9000" and len(answer) == 258
    record = rig_of(reader).link.last_exchange
    assert record.wtx >= 2 and record.chained_response  # 258 bytes need two blocks
    cert = x509.load_der_x509_certificate((PKI / "card-auth.der").read_bytes())
    cert.public_key().verify(answer[:-2], b"contactless challenge", padding.PKCS1v15(), hashes.SHA256())


def test_a_stalled_apdu_gets_wtx_too(reader):
    rig_of(reader).slot.arm(FaultPlan(stall_at_apdu=1, stall_seconds=0.5))
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert rig_of(reader).link.last_exchange.wtx >= 1


def test_a_card_that_never_finishes_goes_quiet_and_is_reported(reader):
    rig_of(reader).link.max_busy_seconds = 0.4
    rig_of(reader).slot.arm(FaultPlan(stall_at_apdu=1, stall_seconds=2))
    started = time.monotonic()
    with pytest.raises(CardRemoved, match="stopped answering"):
        tx(reader, SELECT_JPKI)
    assert time.monotonic() - started < 1.5
    assert rig_of(reader).link.last_exchange.outcome == "abandoned"


# -- R(NAK) --------------------------------------------------------------------------------------------
def test_lost_answer_is_retransmitted_after_r_nak(reader):
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    rig_of(reader).link.faults.drop_responses = 1
    assert sw(tx(reader, "00A4020C02000A")) == "9000"
    stats = rig_of(reader).link.snapshot()
    assert stats["naks_in"] == 1 and stats["retransmissions"] == 1 and stats["dropped_frames"] == 1


def test_lost_command_is_resent_after_r_nak_and_r_ack(reader):
    rig_of(reader).link.faults.ignore_commands = 1
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    stats = rig_of(reader).link.snapshot()
    assert stats["naks_in"] == 1 and stats["acks_out"] == 1 and stats["apdus"] == 1


def test_lost_chained_block_is_recovered(reader):
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(tx(reader, "00A4020C02000A")) == "9000"
    rig_of(reader).link.faults.drop_responses = 1
    answer = tx(reader, "00B00000000000")
    assert len(answer) == 2050 and answer[:-2].startswith((PKI / "card-auth.der").read_bytes())


def test_presence_check_is_answered_with_r_ack(reader):
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    reader.wait_for_card(1)  # already activated and used: nfcpy's R(NAK) presence check
    stats = rig_of(reader).link.snapshot()
    assert stats["naks_in"] == 1 and stats["acks_out"] == 1


# -- the card leaving the field -----------------------------------------------------------------------
def test_removal_mid_apdu_is_card_removed(reader):
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    rig_of(reader).slot.arm(FaultPlan(remove_at_apdu=1))
    started = time.monotonic()
    with pytest.raises(CardRemoved, match="left the field") as caught:
        tx(reader, "00A4020C020006")
    assert time.monotonic() - started < 3  # FWT + 3 R(NAK) retries
    assert "\n" not in str(caught.value) and "3 R(NAK)" in str(caught.value)
    assert rig_of(reader).link.last_exchange.outcome == "removed"
    with pytest.raises(NoCard):
        tx(reader, SELECT_JPKI)


def test_removal_during_a_slow_signature(reader):
    card = rig_of(reader).slot.card
    card.profile = dataclasses.replace(card.profile, sign_delay_ms=400)
    verify_auth(reader)
    rig_of(reader).slot.arm(FaultPlan(remove_at_apdu=2, stall_at_apdu=2, stall_seconds=0.4))
    assert sw(tx(reader, "00A4020C020017")) == "9000"
    with pytest.raises(CardRemoved):
        tx(reader, "802A008033" + (SHA256_PREFIX + bytes(32)).hex() + "00")
    assert rig_of(reader).link.snapshot()["wtx_sent"] >= 1


def test_card_comes_back_with_a_fresh_session(reader):
    verify_auth(reader)
    rig_of(reader).link.remove_from_field()
    assert not rig_of(reader).link.in_field and rig_of(reader).link.state is State.OFF
    with pytest.raises(CardRemoved):
        tx(reader, SELECT_JPKI)
    with pytest.raises(NoCard):
        reader.wait_for_card(0.2)
    rig_of(reader).link.return_to_field()
    reader.wait_for_card(3)
    atr = reader.power_on()
    assert atr.startswith(bytes.fromhex("3B888001"))
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(sign_auth(reader, b"x")) == "6982"  # the auth PIN did not survive the field loss
    assert rig_of(reader).link.stats.activations == 2


def test_returning_before_the_reader_noticed_still_reactivates(reader):
    verify_auth(reader)
    rig_of(reader).link.remove_from_field()
    rig_of(reader).link.return_to_field()
    reader.wait_for_card(3)  # the presence check goes unanswered: discovery and activation again
    reader.power_on()
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(sign_auth(reader, b"x")) == "6982"


def test_power_off_deselects_and_clears_the_security_state(reader):
    verify_auth(reader)
    reader.power_off()
    assert rig_of(reader).link.stats.deselects == 1
    reader.power_on()
    assert sw(tx(reader, SELECT_JPKI)) == "9000"
    assert sw(sign_auth(reader, b"x")) == "6982"


def test_a_fresh_card_inserted_into_the_slot_is_served(reader):
    fresh = VirtualCard(rig_of(reader).slot.card.profile)
    rig_of(reader).slot.insert(fresh)
    reader.power_off()
    reader.power_on()
    assert sw(tx(reader, SELECT_JPKI)) == "9000" and rig_of(reader).card is fresh


# -- the phone over NFC (JPKI-FACTS §8) -----------------------------------------------------------------
def test_phone_over_nfc(phone):
    details = phone.capabilities.details
    assert (details["fwi"], details["fwt_ms"], details["max_frame"]) == ("13", "2474.5", "256")
    assert details["nak_retries"] == "0"  # nfcpy: min(int(1 / FWT), 5)
    assert sw(tx(phone, SELECT_JPKI)) == "9000"
    assert sw(tx(phone, "00A4020C020006")) == "9000"
    assert tx(phone, "00B0000020")[:-2].rstrip() == b"JPKIAPGPSETOKEN"
    assert sw(tx(phone, "00A4020C02000A")) == "9000"
    assert sw(tx(phone, "00B0000004")) == "6982"  # the auth certificate needs the auth PIN first
    verify_auth(phone)
    assert sw(tx(phone, "00A4020C02000A")) == "9000"
    answer = tx(phone, "00B00000000000")
    assert answer[:-2].startswith((PKI / "phone-auth.der").read_bytes())
    assert rig_of(phone).link.last_exchange.chained_response
    assert sw(tx(phone, "00A4040C0AD3921000310001010408")) == "6A82"  # no text AP on the phone


# -- lifecycle ---------------------------------------------------------------------------------------------
def test_close_stops_the_card_and_frees_the_port():
    reader = open_device("virtual:card?via=nfc")
    server = rig_of(reader).link
    reader.close()
    reader.close()
    assert all(not t.is_alive() for t in threading.enumerate() if t.name.endswith(f"-{server.port}"))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", server.port))
    probe.close()


def test_two_cards_on_two_ports_at_once():
    with open_device("virtual:card?via=nfc") as a, open_device("virtual:phone?via=nfc") as b:
        assert rig_of(a).link.port != rig_of(b).link.port
        for r in (a, b):
            r.wait_for_card(3)
            r.power_on()
            assert sw(tx(r, SELECT_JPKI)) == "9000"
        assert a.capabilities.details["fwi"] == "10" and b.capabilities.details["fwi"] == "13"


def test_stray_datagrams_are_ignored():
    with NfcUdpCard(CardSlot(VirtualCard.from_profile("card"))) as server:
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(1)
        try:
            for junk in (b"", b"hello", b"106B zz", b"106A 26", b"106B 1D00000000"):
                client.sendto(junk, ("127.0.0.1", server.port))
            client.sendto(b"106B 050000", ("127.0.0.1", server.port))
            answer, _ = client.recvfrom(1024)
        finally:
            client.close()
        assert answer.startswith(b"106B 50")
        assert server.stats.ignored_frames >= 4


def test_cid_halt_and_wakeup_at_the_frame_level():
    """A reader other than nfcpy may use a CID and HLTB; the PICC follows ISO 14443-3/-4 for them."""
    with NfcUdpCard(CardSlot(VirtualCard.from_profile("card"))) as server:
        pupi = server.slot.card.profile.contactless.pupi.hex()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(1)

        def exchange(hex_frame: str) -> str:
            client.sendto(b"106B " + hex_frame.encode(), ("127.0.0.1", server.port))
            return client.recvfrom(1024)[0].decode().split()[1].upper()

        try:
            assert exchange("050000").startswith("50")
            assert exchange(f"1D{pupi}00080103") == "03"  # ATTRIB with CID 3 → MBLI 0 | CID 3
            assert exchange("0A03" + SELECT_JPKI) == "0A039000"  # I-block with CID, answered with it
            assert exchange("CA03") == "CA03"  # S(DESELECT) with CID → HALT
            client.sendto(b"106B 050000", ("127.0.0.1", server.port))  # SENSB_REQ: a halted card is silent
            with pytest.raises(TimeoutError):
                client.settimeout(0.2)
                client.recvfrom(1024)
            client.settimeout(1)
            assert exchange("050008").startswith("50")  # ALLB_REQ wakes it
            assert exchange(f"50{pupi}") == "00"  # HLTB → HALT
            client.sendto(b"106B 05A008", ("127.0.0.1", server.port))  # family A0 is not this card's
            with pytest.raises(TimeoutError):
                client.settimeout(0.2)
                client.recvfrom(1024)
        finally:
            client.close()


def test_attrib_switches_the_bit_rate_at_the_frame_level():
    """ATTRIB's Param 2 chooses the rate (ISO 14443-3 §7.10.4); its answer still goes at 106 kbit/s, every
    frame after it at the new rate; a frame at the old rate is not heard; a rate not offered gets no answer."""
    with NfcUdpCard(CardSlot(VirtualCard.from_profile("card"))) as server:
        pupi = server.slot.card.profile.contactless.pupi.hex()
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(1)

        def send(label: str, hex_frame: str) -> None:
            client.sendto(f"{label} {hex_frame}".encode(), ("127.0.0.1", server.port))

        def answer() -> str:
            return client.recvfrom(1024)[0].decode().upper()

        def silent() -> None:
            client.settimeout(0.2)
            with pytest.raises(TimeoutError):
                client.recvfrom(1024)
            client.settimeout(1)

        try:
            send("106B", "050000")
            assert answer().startswith("106B 50")
            send("106B", f"1D{pupi}00A80100")  # 424 kbit/s both ways, FSDI 8, CID 0
            assert answer() == "106B 00"
            ignored = server.snapshot()["ignored_frames"]
            send("106B", "02" + SELECT_JPKI)
            silent()
            assert server.snapshot()["ignored_frames"] == ignored + 1
            send("424B", "02" + SELECT_JPKI)
            assert answer() == "424B 029000"
            send("424B", "C2")  # S(DESELECT): answered at 424, then the card is back at 106 in HALT
            assert answer() == "424B C2"
            with server.lock:  # held while the frame is handled: the switch back is done once we get it
                assert server.bit_rate == 106
            send("106B", "050008")  # ALLB_REQ wakes it
            assert answer().startswith("106B 50")
            send("106B", f"1D{pupi}00F80100")  # 848 kbit/s: the ATQB does not offer it
            silent()
            send("106B", f"1D{pupi}00580100")  # 212 kbit/s is offered
            assert answer() == "106B 00"
            with server.lock:
                assert server.bit_rate == 212
        finally:
            client.close()


def test_serve_forever_announces_and_stops():
    lines: list[str] = []
    port_probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    thread = threading.Thread(target=serve_forever, args=("phone", port),
                              kwargs={"duration": 3, "announce": lines.append}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 2
    while not lines and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lines == [f"virtual phone as a Type B card on nfcpy's UDP link: open nfc:udp:127.0.0.1:{port}"]
    with open_device(f"nfc:udp:127.0.0.1:{port}") as r:
        r.wait_for_card(3)
        r.power_on()
        assert sw(tx(r, SELECT_JPKI)) == "9000"
    thread.join(5)
    assert not thread.is_alive()


def test_serving_on_a_port_in_use_or_an_unknown_profile_is_one_line():
    with NfcUdpCard(CardSlot(VirtualCard.from_profile("card"))) as server:
        busy = server.port
        with pytest.raises(DeviceBusy, match=f"UDP 127.0.0.1:{busy}"):
            NfcUdpCard(CardSlot(), port=busy)
    with pytest.raises(DeviceError, match="no card profile 'tablet'"):
        serve_forever("tablet", 0, duration=0)


def test_serve_forever_exits_cleanly_on_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "devices.virtual.bridges.nfc", "card", "0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("virtual card as a Type B card") and "nfc:udp:127.0.0.1:" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def _named_udp_port() -> tuple[int, str]:
    """A port above 1024 that the services database names (Debian's netbase: 57000 is dircproxy)."""
    for port in range(1025, 65536):
        name = socket.getnameinfo(("127.0.0.1", port), socket.NI_NUMERICHOST)[1]
        if not name.isdigit():
            return port, name
    raise AssertionError("no named port in the services database (/etc/services, Debian's netbase)")


def test_a_port_the_services_database_names_is_refused_on_both_sides_in_one_line():
    """nfcpy's UDP driver reads its port back with getnameinfo and int()s it, so a named port cannot be opened:
    the bridge asked for one refuses it, and the reader says so instead of a ValueError traceback."""
    from devices.base import UnknownDevice

    port, name = _named_udp_port()
    with pytest.raises(DeviceBusy) as refused:
        NfcUdpCard(CardSlot(VirtualCard.from_profile("card")), port=port)
    assert str(refused.value) == (f"cannot serve the card on UDP 127.0.0.1:{port}: the services database calls "
                                  f"that port '{name}', and nfcpy's UDP driver then cannot open it; choose another")
    with pytest.raises(UnknownDevice) as unknown:
        open_device(f"nfc:udp:127.0.0.1:{port}")
    assert str(unknown.value) == (f"nfc:udp:127.0.0.1:{port}: nfcpy's UDP driver cannot open that port, which the "
                                  f"services database names (invalid literal for int() with base 10: '{name}'); "
                                  "use a port without a name")


def test_any_free_port_the_bridge_takes_is_one_nfcpy_can_open(monkeypatch):
    """With port 0 the kernel may hand out a named port (a shard's error: 57000); the bridge takes the next one."""
    from devices.virtual.bridges import nfc as bridge

    handed: list[int] = []
    real = bridge.service_name

    def first_two_named(host: str, port: int) -> str:  # the services database, as if it named the first two
        handed.append(port)
        return "named" if len(handed) <= 2 else real(host, port)

    monkeypatch.setattr(bridge, "service_name", first_two_named)
    with NfcUdpCard(CardSlot(VirtualCard.from_profile("card"))) as card:
        assert len(set(handed)) == 3 and card.port == handed[-1] and card.port not in handed[:2]
        for refused in handed[:2]:  # released again
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", refused))
