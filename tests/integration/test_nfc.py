"""The nfcpy backend: URIs, typed errors without hardware, ATR synthesis, and activation over the UDP link.

Everything on the reader side is nfcpy's real code; the card is our Type B PICC on 127.0.0.1.
"""

import time
from dataclasses import replace
from pathlib import Path

import pytest

from devices import BackendUnavailable, NoCard, NoReader, ProtocolError, UnknownDevice, open_device
from devices.nfc.iso14443 import AtqbInfo, atr_from_atqb, atr_from_ats
from devices.nfc.reader import NfcReader, open_nfc
from devices.nfc.uri import parse_nfc_uri
from devices.nfc.usb import UsbReader, discover, stable_uri, usb_path_with_serial
from devices.virtual.bridges.iso_dep_picc import build_atqb
from devices.virtual.bridges.nfc import NfcUdpCard
from devices.virtual.card import VirtualCard
from devices.virtual.slot import CardSlot

pytestmark = pytest.mark.nfc

PKI = Path(__file__).resolve().parents[2] / "fixtures" / "pki"
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


@pytest.fixture(scope="module")
def pki_ready():
    """Another helper generates fixtures/pki; wait (bounded) until the card's certificate is there."""
    deadline = time.monotonic() + 120
    while not (PKI / "card-auth.der").exists():
        if time.monotonic() > deadline:
            pytest.fail("fixtures/pki/card-auth.der did not appear within 120 s")
        time.sleep(1)


@pytest.fixture
def card_server(pki_ready):
    server = NfcUdpCard(CardSlot(VirtualCard.from_profile("card"))).start()
    yield server
    server.stop()


# -- ATR synthesis (JPKI-FACTS §7) ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("app_data", "protocol", "atr"),
    [
        ("00 00 05 E0", "B3 81 A1", "3B 88 80 01 00 00 05 E0 B3 81 A1 00 7F"),
        ("00 4B 51 FF", "B3 81 D1", "3B 88 80 01 00 4B 51 FF B3 81 D1 00 0F"),
    ],
)
def test_atr_from_atqb_gives_the_atrs_pcsc_readers_report_for_the_card(app_data, protocol, atr):
    atqb = bytes.fromhex("50 4A504B49" + app_data.replace(" ", "") + protocol.replace(" ", ""))
    assert atr_from_atqb(atqb).hex(" ").upper() == atr


def test_atqb_is_taken_apart():
    info = AtqbInfo.parse(bytes.fromhex("50 01020304 000005E0 B3 81 D1"))
    assert (info.pupi, info.app_data) == (bytes.fromhex("01020304"), bytes.fromhex("000005E0"))
    assert (info.fsc, info.fwi, info.protocol_type, info.fo) == (256, 13, 1, 1)
    assert info.bit_rates == (106, 212, 424)
    assert info.fwt == pytest.approx(2.4745, abs=1e-4)
    with pytest.raises(Exception, match="not an ATQB"):
        AtqbInfo.parse(b"\x50\x00")


def test_atr_from_ats_uses_the_historical_bytes():
    # TL=8, T0=78 (TA, TB, TC present, FSCI 8), TA, TB, TC, historical "ABC"
    ats = bytes.fromhex("08 78 80 70 02 41 42 43")
    atr = atr_from_ats(ats)
    assert atr[:4].hex() == "3b838001" and atr[4:7] == b"ABC"
    assert atr_from_ats(b"").hex(" ").upper() == "3B 80 80 01 01"


# -- device names and errors without hardware ---------------------------------------------------------
@pytest.mark.parametrize(
    ("uri", "path", "targets"),
    [
        ("nfc:usb", "usb", ("106B", "106A")),
        ("nfc:usb:054c:06c3", "usb:054c:06c3", ("106B", "106A")),
        ("nfc:usb:001:004", "usb:001:004", ("106B", "106A")),
        ("nfc:tty:USB0:pn532", "tty:USB0:pn532", ("106B", "106A")),
        ("nfc:udp:127.0.0.1:54321", "udp:127.0.0.1:54321", ("106B",)),
        ("nfc:udp", "udp:127.0.0.1:54321", ("106B",)),
        ("nfc:usb?targets=106a", "usb", ("106A",)),
    ],
)
def test_uris_map_to_nfcpy_paths(uri, path, targets):
    parsed = parse_nfc_uri(uri)
    assert (parsed.path, parsed.targets) == (path, targets)


@pytest.mark.parametrize(
    "uri",
    ["nfc:", "nfc:bluetooth", "nfc:usb:xyz", "nfc:udp:example.org:1", "nfc:udp:127.0.0.1:70000",
     "nfc:usb?targets=212F", "nfc:usb?max_response=lots"],
)
def test_bad_uris_fail_with_one_line(uri):
    with pytest.raises(UnknownDevice) as caught:
        open_device(uri)
    assert "\n" not in str(caught.value)
    assert "nfc:" in str(caught.value)


@pytest.mark.parametrize("uri", ["nfc:usb", "nfc:usb:054c:06c3"])
def test_usb_without_a_reader_fails_fast_with_one_line(uri):
    started = time.monotonic()
    with pytest.raises((NoReader, BackendUnavailable)) as caught:
        open_device(uri)
    assert time.monotonic() - started < 3
    message = str(caught.value)
    assert "\n" not in message and message.startswith(uri)
    assert "RC-S380" in message or "libusb" in message


def test_serial_reader_that_is_not_there_is_no_reader():
    with pytest.raises(NoReader, match="serial port"):
        open_device("nfc:tty:USB9:pn532")


def test_discover_is_fast_and_explains_what_it_cannot_use():
    started = time.monotonic()
    found = discover()
    assert time.monotonic() - started < 3
    for info in found:  # none on this machine; any there are must say why they cannot be used
        assert info.uri.startswith("nfc:usb")
        assert info.problem or "through nfcpy" in info.description


RCS380_A = UsbReader(0x054C, 0x06C3, 1, 7, serial="0123A")
RCS380_B = UsbReader(0x054C, 0x06C3, 1, 9)
ACR122U = UsbReader(0x072F, 0x2200, 2, 3)


def test_usb_readers_get_a_stable_name_serial_first_then_model_then_bus_and_device():
    readers = [RCS380_A, RCS380_B, ACR122U]
    assert [stable_uri(r, readers) for r in readers] == [
        "nfc:usb?serial=0123A",  # survives a replug and another port
        "nfc:usb:001:009",  # a second RC-S380 without a serial: only bus:device tells it apart
        "nfc:usb:072f:2200"]  # the only ACR122U: its model is enough
    assert usb_path_with_serial("nfc:usb?serial=0123A", "0123A", readers) == "usb:001:007"


def test_a_usb_serial_nobody_has_is_one_line_naming_the_readers_present():
    with pytest.raises(NoReader) as missing:
        usb_path_with_serial("nfc:usb?serial=X", "X", [RCS380_A, ACR122U])
    assert str(missing.value) == ("nfc:usb?serial=X: no nfcpy-supported USB reader has serial X; readers present: "
                                  "Sony RC-S380 nfc:usb:001:007 serial 0123A; "
                                  "ACS ACR122U nfc:usb:002:003 serial (none)")
    with pytest.raises(NoReader, match="2 USB readers report serial S"):
        usb_path_with_serial("nfc:usb?serial=S", "S", [replace(RCS380_A, serial="S"), replace(RCS380_B, serial="S")])
    with pytest.raises(NoReader, match=r"^nfc:usb\?serial=NONE: no nfcpy-supported USB reader has serial NONE; "):
        open_nfc("nfc:usb?serial=NONE")  # this machine's real USB scan: no reader has it
    with pytest.raises(UnknownDevice, match="serial= names a USB reader by itself"):
        parse_nfc_uri("nfc:usb:054c:06c3?serial=0123A")


def test_registry_lists_the_nfc_backend():
    from devices.registry import discover as discover_all

    assert isinstance(discover_all()["nfc"], list)


# -- activation over the UDP link ---------------------------------------------------------------------
def test_activation_reports_the_atqb_and_the_synthesised_atr(card_server):
    with open_nfc(card_server.device_uri) as reader:
        reader.wait_for_card(3)
        atr = reader.power_on()
        spec = card_server.slot.card.profile.contactless
        atqb = build_atqb(spec)
        assert atr == atr_from_atqb(atqb)
        caps = reader.capabilities
        assert caps.contactless and caps.extended_apdu and caps.max_response == 65536
        d = caps.details
        assert d["type"] == "B" and d["atqb"] == atqb.hex(" ").upper()
        assert (d["max_frame"], d["fsc"], d["fsd"]) == ("256", "256", "256")
        assert (d["fwi"], d["fwt_ms"]) == ("10", "309.3")
        assert d["bit_rates"] == "106,212,424" and d["iso14443_4"] == "yes" and d["mbli"] == "0"
        assert d["pupi"] == spec.pupi.hex(" ").upper() and d["atr"] == atr.hex(" ").upper()
        assert d["nak_retries"] == "3"
        assert d["bit_rate"] == "424" and card_server.bit_rate == 424  # the fastest both sides offer
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
    # our ATTRIB: PUPI, param1 00, 424 kbit/s both ways (A) with FSDI 8 (256 bytes), ISO 14443-4, CID 0
    assert card_server.attrib.hex() == "1d" + spec.pupi.hex() + "00a80100"


@pytest.mark.parametrize(("option", "param2", "rate"), [("106", "08", 106), ("212", "58", 212), ("424", "a8", 424)])
def test_the_bit_rate_option_chooses_what_attrib_asks_for(card_server, option, param2, rate):
    with open_nfc(f"{card_server.device_uri}?bit_rate={option}") as reader:
        reader.wait_for_card(3)
        reader.power_on()
        assert reader.capabilities.details["bit_rate"] == str(rate) and card_server.bit_rate == rate
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        assert card_server.stats.ignored_frames == 0  # every frame after ATTRIB came at the chosen rate
    assert card_server.attrib.hex()[10:] == f"00{param2}0100"  # 106: nfcpy's own ATTRIB
    assert card_server.bit_rate == 106  # the field went off: the next activation starts at 106 again


def test_a_card_offering_only_106_is_activated_at_106(pki_ready):
    card = VirtualCard.from_profile("card")
    slow = replace(card.profile, contactless=replace(card.profile.contactless, bit_rates=(106,)))
    with NfcUdpCard(CardSlot(VirtualCard(slow))) as server:
        with open_nfc(server.device_uri) as reader:
            reader.wait_for_card(3)
            reader.power_on()
            assert reader.capabilities.details["bit_rate"] == "106"
            assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        assert server.attrib.hex()[10:] == "00080100"
        with open_nfc(f"{server.device_uri}?bit_rate=424") as reader, pytest.raises(ProtocolError) as refused:
            reader.wait_for_card(3)
    assert str(refused.value) == f"{server.device_uri}?bit_rate=424: bit_rate=424 but the card offers 106 kbit/s"


def test_bit_rates_nfcpy_cannot_reach_are_refused_in_the_name():
    with pytest.raises(UnknownDevice, match="bit_rate='848'; use auto or 106 or 212 or 424"):
        parse_nfc_uri("nfc:udp:127.0.0.1:9?bit_rate=848")


def test_short_apdu_option_is_reported():
    parsed = parse_nfc_uri("nfc:udp:127.0.0.1:9?extended=0&max_response=4096")
    assert (parsed.extended, parsed.max_response) == (False, 4096)


def test_wait_for_card_without_a_card_is_bounded(card_server):
    card_server.remove_from_field()
    with open_nfc(card_server.device_uri) as reader:
        started = time.monotonic()
        with pytest.raises(NoCard, match="no ISO-DEP card"):
            reader.wait_for_card(0.3)
        assert time.monotonic() - started < 2.5  # nfcpy checks terminate once per 1 s sense cycle
        with pytest.raises(NoCard):
            reader.transmit(SELECT_JPKI)


def test_power_on_reactivates_after_power_off(card_server):
    with open_nfc(card_server.device_uri) as reader:
        reader.wait_for_card(3)
        first = reader.power_on()
        reader.power_off()
        assert reader.power_on() == first
        assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
        assert card_server.stats.activations == 2 and card_server.stats.deselects == 1


def test_reader_class_is_the_registry_opener(card_server):
    reader = open_device(card_server.device_uri)
    try:
        assert isinstance(reader, NfcReader) and reader.uri == card_server.device_uri
    finally:
        reader.close()
        reader.close()  # idempotent
