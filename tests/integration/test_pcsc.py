"""The PC/SC backend against the real stack: pyscard → pcscd → vpcd → a virtual card in this process.

Nothing is mocked. The card answers like the My Number card (T=1); ``t0=1`` makes it answer like a
T=0 card so that the 61xx GET RESPONSE and 6Cxx handling run through pcscd too.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from robot.api import ExecutionResult
from smartcard import scard

import robot
from devices import open_device, registry
from devices.base import (
    BackendUnavailable,
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    NoCard,
    NoReader,
    ProtocolError,
)
from devices.pcsc.names import discover
from devices.pcsc.reader import PcscReader, open_pcsc
from devices.pcsc.scard import map_error
from devices.virtual.bridges.vpcd_sessions import free_vpcd_slot
from devices.virtual.profile import REPO_ROOT as REPO
from devices.virtual.rig import rig_of
from devices.virtual.slot import FaultPlan
from harness.iso import tlv
from harness.pki import checks

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card, bridged, bridged_t0, no_leaked_threads

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_CERT = bytes.fromhex("00A4020C02000A")
SELECT_TOKEN_INFO = bytes.fromhex("00A4020C020006")
EXTENDED_READ_ALL = bytes.fromhex("00B00000000000")


def select(reader, *commands: bytes) -> None:
    for command in commands:
        assert reader.transmit(command)[-2:] == b"\x90\x00", command.hex()


def auth_pin(reader) -> bytes:
    return rig_of(reader).slot.card.profile.pins["auth"].value.encode()


# -- discovery and names ----------------------------------------------------------------------
def test_discovery_lists_vpcd_readers_with_card_state_and_atr(served_card):
    server, name = served_card
    found = {info.uri: info for info in discover()}
    assert {"pcsc:Virtual PCD 00 00", "pcsc:Virtual PCD 00 01"} <= set(found)
    mine = found[f"pcsc:{name}"]
    assert mine.card_state == "present" and mine.problem == ""
    assert mine.atr == server.slot.card.atr == bytes.fromhex("3BE000FF8131FE4514")
    for info in found.values():
        assert info.card_state in ("present", "absent")
        assert info.atr or info.card_state == "absent"


def test_registry_discovery_includes_the_pcsc_readers(pcscd):
    listed = registry.discover()["pcsc"]
    assert isinstance(listed, list)
    assert any(info.uri.startswith("pcsc:Virtual PCD") for info in listed)


def test_reader_names_match_by_case_insensitive_substring(served_card):
    _server, name = served_card
    for uri in (f"pcsc:{name.lower()}", f"pcsc:{name.replace(' ', '%20')}", f"pcsc:{name[-5:]}"):
        with open_pcsc(uri) as reader:
            assert reader.name == name, uri
    with open_pcsc("pcsc:") as first:
        assert first.name == "Virtual PCD 00 00"


def test_ambiguous_and_unknown_names_are_one_line_no_reader_errors(pcscd):
    with pytest.raises(NoReader) as ambiguous:
        open_pcsc("pcsc:virtual pcd")
    assert "matches 2 PC/SC readers" in str(ambiguous.value)
    with pytest.raises(NoReader) as unknown:
        open_pcsc("pcsc:No Such Reader")
    message = str(unknown.value)
    assert "no PC/SC reader matches 'No Such Reader'" in message and "'Virtual PCD 00 00'" in message
    assert "\n" not in message and "\n" not in str(ambiguous.value)


def test_unknown_and_malformed_options_are_rejected(pcscd):
    with pytest.raises(DeviceError, match="unknown option"):
        open_pcsc("pcsc:Virtual PCD 00 00?getresponse=0")
    with pytest.raises(DeviceError, match="use 1 or 0"):
        open_pcsc("pcsc:Virtual PCD 00 00?get_response=maybe")
    with pytest.raises(DeviceError, match="unknown option"):
        open_device("virtual:card?via=pcsc&bogus=1")


# -- power and transmit ---------------------------------------------------------------------
def test_transmit_round_trip_through_pcscd(served_card):
    server, name = served_card
    with open_pcsc(f"pcsc:{name}") as reader:
        reader.wait_for_card(2)
        atr = reader.power_on()
        assert atr == server.slot.card.atr and reader.atr == atr
        assert reader.protocol == "T=1"
        select(reader, SELECT_JPKI, SELECT_AUTH_CERT)
        header = reader.transmit(bytes.fromhex("00B0000004"))
        assert header[:2] == b"\x30\x82" and header[-2:] == b"\x90\x00" and len(header) == 6


def test_transmit_before_power_on_and_close_is_idempotent(served_card):
    _server, name = served_card
    reader = open_pcsc(f"pcsc:{name}")
    with pytest.raises(DeviceError, match="before power_on"):
        reader.transmit(SELECT_JPKI)
    reader.close()
    reader.close()
    with pytest.raises(DeviceError, match="closed"):
        reader.wait_for_card(0.1)


def test_wait_for_card_is_bounded_on_an_empty_reader(pcscd):
    _port, name = free_vpcd_slot()
    with PcscReader(name) as reader:
        started = time.monotonic()
        with pytest.raises(NoCard, match=f"no card in reader '{name}' within 0.3 s"):
            reader.wait_for_card(0.3)
        assert time.monotonic() - started < 1.5
        reader.wait_for_removal(0.1)
        with pytest.raises(NoCard, match="SCARD_E_NO_SMARTCARD"):
            reader.power_on()


def test_power_cycle_loses_the_security_state(bridged):
    sign_pin = rig_of(bridged).slot.card.profile.pins["sign"].value.encode()
    select(bridged, SELECT_JPKI, bytes.fromhex("00A4020C02001B"))
    assert bridged.transmit(bytes.fromhex("00200080") + bytes((len(sign_pin),)) + sign_pin) == b"\x90\x00"
    select(bridged, bytes.fromhex("00A4020C020001"))
    assert bridged.transmit(bytes.fromhex("00B0000004"))[-2:] == b"\x90\x00"
    bridged.power_off()
    bridged.power_on()
    select(bridged, SELECT_JPKI, bytes.fromhex("00A4020C020001"))
    assert bridged.transmit(bytes.fromhex("00B0000004")) == b"\x69\x82"


def test_a_fresh_card_swapped_in_is_used_after_a_power_cycle(bridged):
    """The flow of the keyword Insert Fresh Virtual Card: swap the card, power off, power on."""
    old = rig_of(bridged).slot.card
    select(bridged, SELECT_JPKI, bytes.fromhex("00A4020C020018"))
    assert bridged.transmit(bytes.fromhex("002000800439393939")) == b"\x63\xc2"
    fresh = type(old)(old.profile)
    rig_of(bridged).slot.insert(fresh)
    bridged.power_off()
    bridged.power_on()
    select(bridged, SELECT_JPKI, bytes.fromhex("00A4020C020018"))
    assert bridged.transmit(bytes.fromhex("00200080")) == b"\x63\xc3"
    assert rig_of(bridged).slot.card is fresh


# -- sizes: 256-byte responses, extended APDUs, long runs -----------------------------------------
def test_short_le_00_returns_256_bytes(bridged):
    select(bridged, SELECT_JPKI, SELECT_AUTH_CERT)
    response = bridged.transmit(bytes.fromhex("00B0000000"))
    assert len(response) == 258 and response[-2:] == b"\x90\x00"


def test_extended_apdus_are_detected_and_carried(bridged):
    caps = bridged.capabilities
    assert caps.extended_apdu and caps.max_response == 65536 and caps.max_command_data == 65535
    assert caps.details["extended_source"].startswith("probe")
    assert caps.details["via"] == "vpcd" and caps.details["protocol"] == "T=1"
    assert bridged.transmit(bytes.fromhex("00A4040C00000AD392F000260100000001")) == b"\x90\x00"
    select(bridged, SELECT_AUTH_CERT)
    response = bridged.transmit(EXTENDED_READ_ALL)
    assert response[-2:] == b"\x90\x00" and len(response) == rig_of(bridged).slot.card.profile.cert_ef_size + 2
    ef = response[:-2]
    certificate = x509.load_der_x509_certificate(ef[: tlv.der_total_length(ef[:6])])
    assert certificate.public_key().key_size == 2048


def test_a_short_only_path_reports_no_extended_apdus(pcscd, no_leaked_threads):
    with open_device("virtual:card?via=pcsc&extended=0") as reader:
        reader.power_on()
        caps = reader.capabilities
        assert not caps.extended_apdu and caps.max_response == 256
        assert caps.details["extended_source"] == "probe: extended-Le READ BINARY answered 6700"
        assert reader.transmit(EXTENDED_READ_ALL) == b"\x67\x00"


def test_the_uri_option_decides_extended_support(served_card):
    _server, name = served_card
    with open_pcsc(f"pcsc:{name}?extended=0") as reader:
        reader.wait_for_card(2)
        reader.power_on()
        assert not reader.capabilities.extended_apdu
        assert reader.capabilities.details["extended_source"] == "URI option"


def test_two_hundred_apdus_back_to_back(bridged):
    times = []
    for _ in range(200):
        started = time.perf_counter()
        assert bridged.transmit(SELECT_JPKI) == b"\x90\x00"
        times.append(time.perf_counter() - started)
    # PLATFORM-NOTES latency trap: without TCP_QUICKACK on the card side each APDU takes ~44 ms.
    assert statistics.median(times) < 0.005, f"median {statistics.median(times) * 1000:.2f} ms"


# -- 61xx and 6Cxx ----------------------------------------------------------------------------
def test_get_response_collects_61xx_data(bridged_t0):
    select(bridged_t0, SELECT_JPKI, SELECT_AUTH_CERT)
    response = bridged_t0.transmit(EXTENDED_READ_ALL)
    size = rig_of(bridged_t0).slot.card.profile.cert_ef_size
    assert len(response) == size + 2 and response[-2:] == b"\x90\x00"
    commands = [command for command, _ in bridged_t0.auto_exchanges]
    assert commands == [bytes.fromhex("00C0000000")] * (size // 256)


def test_get_response_off_lets_61xx_through(bridged_t0):
    bridged_t0.get_response = False
    select(bridged_t0, SELECT_JPKI, SELECT_AUTH_CERT)
    assert bridged_t0.transmit(EXTENDED_READ_ALL) == b"\x61\x00"
    assert bridged_t0.auto_exchanges == []
    chunk = bridged_t0.transmit(bytes.fromhex("00C0000000"))
    assert len(chunk) == 258 and chunk[-2:] == b"\x61\x00"


def test_resend_6c_with_the_exact_le(bridged_t0):
    select(bridged_t0, SELECT_JPKI, SELECT_TOKEN_INFO)
    response = bridged_t0.transmit(bytes.fromhex("00B0000000"))
    assert response[-2:] == b"\x90\x00"
    assert response.startswith(b"JPKIAPICCTOKEN2")
    assert bridged_t0.auto_exchanges[0][0] == bytes((0x00, 0xB0, 0x00, 0x00, len(response) - 2))


def test_resend_6c_off_lets_6cxx_through(pcscd, no_leaked_threads):
    with open_device("virtual:card?via=pcsc&t0=1&resend_6c=0&get_response=0") as reader:
        reader.power_on()
        assert reader.get_response is False and reader.resend_6c is False
        assert reader.capabilities.details["resend_6c"] == "off"
        select(reader, SELECT_JPKI, SELECT_TOKEN_INFO)
        response = reader.transmit(bytes.fromhex("00B0000000"))
        assert response[0] == 0x6C and len(response) == 2 and reader.auto_exchanges == []


def test_case_4_signature_comes_back_through_get_response(bridged_t0):
    pin = auth_pin(bridged_t0)
    select(bridged_t0, SELECT_JPKI, bytes.fromhex("00A4020C020018"))
    assert bridged_t0.transmit(bytes.fromhex("00200080") + bytes((len(pin),)) + pin) == b"\x90\x00"
    message = b"signed through pcscd as a T=0 card"
    digest_info = checks.digest_info(message)
    select(bridged_t0, bytes.fromhex("00A4020C020017"))
    response = bridged_t0.transmit(bytes.fromhex("802A0080") + bytes((len(digest_info),)) + digest_info + b"\x00")
    assert response[-2:] == b"\x90\x00" and len(response) == 258
    assert bridged_t0.auto_exchanges[-1][0] == bytes.fromhex("00C0000000")
    certificate = x509.load_der_x509_certificate(rig_of(bridged_t0).slot.card.profile.pki_file("auth.der").read_bytes())
    certificate.public_key().verify(response[:-2], message, padding.PKCS1v15(), hashes.SHA256())


# -- removal, reconnection, sharing -------------------------------------------------------------
def test_card_pulled_mid_apdu_is_card_removed(bridged):
    rig_of(bridged).slot.arm(FaultPlan(remove_at_apdu=1))
    started = time.monotonic()
    with pytest.raises(CardRemoved) as caught:
        bridged.transmit(SELECT_JPKI)
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert f"'{bridged.name}'" in message and "\n" not in message
    with pytest.raises(CardRemoved, match="SCARD_W_REMOVED_CARD"):
        bridged.transmit(SELECT_JPKI)


def test_pins_never_appear_in_error_messages(bridged):
    pin = auth_pin(bridged)
    select(bridged, SELECT_JPKI, bytes.fromhex("00A4020C020018"))
    rig_of(bridged).slot.arm(FaultPlan(remove_at_apdu=1))
    with pytest.raises(CardRemoved) as caught:
        bridged.transmit(bytes.fromhex("00200080") + bytes((len(pin),)) + pin)
    message = str(caught.value)
    assert "****" in message
    assert pin.hex().upper() not in message.replace(" ", "").upper() and pin.decode() not in message


def test_removal_then_reinsertion_then_reconnect(bridged):
    card = rig_of(bridged).slot.remove()
    bridged.wait_for_removal(3)
    with pytest.raises(CardRemoved):
        bridged.transmit(SELECT_JPKI)
    bridged.power_off()
    with pytest.raises(NoCard):
        bridged.power_on()
    rig_of(bridged).slot.insert(card)
    bridged.wait_for_card(3)
    with pytest.raises(DeviceTimeout, match="still in reader"):
        bridged.wait_for_removal(0.2)
    atr = bridged.reconnect(5)
    assert atr == card.atr
    assert bridged.transmit(SELECT_JPKI) == b"\x90\x00"


def test_power_on_after_a_swap_drops_the_stale_connection(bridged):
    card = rig_of(bridged).slot.remove()
    bridged.wait_for_removal(3)
    rig_of(bridged).slot.insert(card)
    bridged.wait_for_card(3)
    assert bridged.power_on() == card.atr  # no power_off first: the old handle is stale
    assert bridged.transmit(SELECT_JPKI) == b"\x90\x00"


def test_exclusive_holder_makes_power_on_device_busy(served_card):
    _server, name = served_card
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    hr, hcard, _protocol = scard.SCardConnect(context, name, scard.SCARD_SHARE_EXCLUSIVE,
                                              scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    assert hr == scard.SCARD_S_SUCCESS
    try:
        with open_pcsc(f"pcsc:{name}") as reader, pytest.raises(DeviceBusy) as caught:
            reader.power_on()
        assert "held exclusively by another program" in str(caught.value)
        busy = {info.uri: info for info in discover()}[f"pcsc:{name}"]
        assert busy.problem == "held exclusively by another program"
    finally:
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)


def test_exclusive_option_keeps_others_out(served_card):
    _server, name = served_card
    with open_pcsc(f"pcsc:{name}?share=exclusive") as owner:
        owner.wait_for_card(2)
        owner.power_on()
        with open_pcsc(f"pcsc:{name}") as other, pytest.raises(DeviceBusy):
            other.power_on()
        assert owner.transmit(SELECT_JPKI) == b"\x90\x00"


# -- error mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "kind"), [
    (scard.SCARD_E_NO_SERVICE, BackendUnavailable),
    (scard.SCARD_E_SERVICE_STOPPED, BackendUnavailable),
    (scard.SCARD_E_NO_READERS_AVAILABLE, NoReader),
    (scard.SCARD_E_UNKNOWN_READER, DeviceGone),
    (scard.SCARD_E_READER_UNAVAILABLE, DeviceGone),
    (scard.SCARD_E_INVALID_HANDLE, DeviceGone),
    (scard.SCARD_E_NO_SMARTCARD, NoCard),
    (scard.SCARD_W_REMOVED_CARD, CardRemoved),
    (scard.SCARD_W_RESET_CARD, CardRemoved),
    (scard.SCARD_W_UNPOWERED_CARD, CardRemoved),
    (scard.SCARD_E_SHARING_VIOLATION, DeviceBusy),
    (scard.SCARD_E_TIMEOUT, DeviceTimeout),
    (scard.SCARD_W_UNRESPONSIVE_CARD, ProtocolError),
    (scard.SCARD_E_PROTO_MISMATCH, ProtocolError),
    (scard.SCARD_F_INTERNAL_ERROR, DeviceError),
])
def test_every_pcsc_error_maps_to_a_typed_one_line_error(code, kind):
    error = map_error(code, "doing something", "Some Reader 00 00")
    assert type(error) is kind
    assert "\n" not in str(error) and str(error).startswith("doing something")


def test_a_client_without_pcscd_gets_the_start_command():
    """libpcsclite pointed at a socket nobody serves: the real no-service path, the session pcscd untouched."""
    code = ("from devices.pcsc.reader import open_pcsc\n"
            "try:\n    open_pcsc('pcsc:')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    env = {**os.environ, "PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    assert proc.stdout.startswith("BackendUnavailable ")
    assert "pcscd --foreground &" in proc.stdout and proc.stdout.count("\n") == 1


# -- the Robot suite ------------------------------------------------------------------------------
@pytest.mark.slow
def test_pcsc_transport_suite_passes(pcscd, no_leaked_threads, tmp_path):
    with open(tmp_path / "console.txt", "w") as console:
        robot.run(str(REPO / "robot/transport/pcsc_transport.robot"), outputdir=str(tmp_path), stdout=console,
                  stderr=console)
    result = ExecutionResult(str(tmp_path / "output.xml"))
    stats = result.statistics.total
    failures = [f"{t.name}: {t.message}" for t in result.suite.all_tests if t.status != "PASS"]
    assert failures == [] and stats.passed >= 16
    ids = sorted(tag for t in result.suite.all_tests for tag in t.tags if tag.startswith("TRN-"))
    assert len(ids) == len(set(ids)) == stats.passed
