"""The card OS state machine: selection, access conditions, PIN counters, lock, signing, every SW."""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from devices.virtual.cardos import Applet, CardOptions, CardOS, ElementaryFile, FileKind, PinObject

AID = bytes.fromhex("D392F000260100000001")
DIGEST_INFO = bytes.fromhex("3031300D060960864801650304020105000420") + bytes(range(32))


@pytest.fixture(scope="module")
def key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def card(key):
    applet = Applet("jpki", AID)
    applet.add(ElementaryFile(0x0002, content=b"\x30\x03\x02\x01\x05" + bytes(45)))
    applet.add(ElementaryFile(0x0001, content=b"secret-cert" + bytes(5), read_pins=("sign",), sfi=1))
    applet.add(ElementaryFile(0x0017, FileKind.KEY, key=key, key_pin="auth"))
    applet.add(ElementaryFile(0x0018, FileKind.PIN, pin=PinObject("auth", b"1234", 3,
                                                                   policy=lambda v: len(v) == 4 and v.isdigit())))
    applet.add(ElementaryFile(0x001B, FileKind.PIN, pin=PinObject("sign", b"ABC123", 5)))
    other = Applet("other", bytes.fromhex("D3921000310001010408"))
    os_ = CardOS([applet, other])
    os_.reset()
    return os_


def send(card: CardOS, hex_apdu: str) -> str:
    return card.process(bytes.fromhex(hex_apdu.replace(" ", ""))).hex().upper()


def select(card, fid="0018"):
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, f"00A4020C02 {fid}") == "9000"


def test_select_by_aid_and_fid_and_absent_ones(card):
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, "00A4040C05 A000000001") == "6A82"
    assert send(card, "00A4020C02 0099") == "6A82"
    assert send(card, "00A4070C02 0001") == "6A86"
    assert send(card, "00A4020702 0001") == "6A86"
    assert send(card, "00A4020C03 000100") == "6700"


def test_select_ef_before_any_applet_is_not_found():
    card = CardOS([Applet("jpki", AID)])
    assert send(card, "00A4020C02 0001") == "6A82"


def test_read_binary_free_protected_and_bounds(card):
    select(card, "0002")
    assert send(card, "00B0000005") == "3003020105" + "9000"
    assert send(card, "00B0002D00").endswith("9000")  # Le beyond the end returns the rest
    assert len(bytes.fromhex(send(card, "00B0002D00"))) == 5 + 2
    assert send(card, "00B0003210") == "6B00"
    assert send(card, "00B00000") == "6700"
    assert send(card, "00A4020C02 0001") == "9000"
    assert send(card, "00B0000004") == "6982"
    assert send(card, "00A4020C02 0017") == "9000"
    assert send(card, "00B0000004") == "6981"


def test_read_binary_by_short_file_identifier(card):
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, "00B0810004") == "6982"
    select(card, "001B")
    assert send(card, "0020008006 414243313233") == "9000"
    assert send(card, "00B0810004") == "73656372" + "9000"
    assert send(card, "00B0850004") == "6A82"
    assert send(card, "00B0E10004") == "6A86"


def test_read_without_current_ef(card):
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, "00B0000004") == "6986"


def test_retry_query_is_63cx_even_after_success_and_counters(card):
    select(card)
    assert send(card, "00200080") == "63C3"
    assert send(card, "0020008004 31323334") == "9000"
    assert send(card, "00200080") == "63C3"
    assert send(card, "0020008004 39393939") == "63C2"
    assert send(card, "00200080") == "63C2"
    assert send(card, "0020008004 31323334") == "9000"
    assert send(card, "00200080") == "63C3"


def test_lock_is_permanent_across_power_cycles(card):
    select(card)
    assert [send(card, "0020008004 30303030") for _ in range(3)] == ["63C2", "63C1", "63C0"]
    assert send(card, "0020008004 31323334") == "6984"
    assert send(card, "00200080") == "63C0"
    card.reset()
    select(card)
    assert send(card, "0020008004 31323334") == "6984"
    assert send(card, "00200080") == "63C0"
    assert send(card, "0024018004 31313131") == "6984"


def test_power_cycle_and_applet_change_drop_the_security_state(card):
    select(card, "001B")
    assert send(card, "0020008006 414243313233") == "9000"
    card.reset()
    select(card, "0001")
    assert send(card, "00B0000004") == "6982"
    select(card, "001B")
    assert send(card, "0020008006 414243313233") == "9000"
    assert send(card, "00A4040C0A D3921000310001010408") == "9000"
    select(card, "0001")
    assert send(card, "00B0000004") == "6982"


def test_verify_parameters_and_targets(card):
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, "00200080") == "6A88"
    select(card, "0002")
    assert send(card, "00200080") == "6981"
    select(card)
    assert send(card, "00200180") == "6A86"
    assert send(card, "0020008004 3132333400") == "6700"


def test_change_reference_data(card):
    select(card)
    assert send(card, "0024018004 35353535") == "6982"
    assert send(card, "0020008004 31323334") == "9000"
    assert send(card, "0024018004 3535414A") == "6A80"  # policy: digits only
    assert send(card, "0024008004 35353535") == "6A86"
    assert send(card, "00240180") == "6700"
    assert send(card, "0024018004 35353535") == "9000"
    card.reset()
    select(card)
    assert send(card, "0020008004 31323334") == "63C2"
    assert send(card, "0020008004 35353535") == "9000"


def test_signing_needs_the_pin_and_produces_pkcs1_signature(card, key):
    select(card, "0017")
    assert send(card, f"802A008033 {DIGEST_INFO.hex()} 00") == "6982"
    select(card)
    assert send(card, "0020008004 31323334") == "9000"
    assert send(card, "00A4020C02 0017") == "9000"
    answer = bytes.fromhex(send(card, f"802A008033 {DIGEST_INFO.hex()} 00"))
    assert answer[-2:] == b"\x90\x00" and len(answer) == 258
    assert key.public_key().recover_data_from_signature(answer[:-2], padding.PKCS1v15(), None) == DIGEST_INFO
    key.public_key().verify(answer[:-2], bytes(range(32)), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    assert send(card, "802A008004 01020304 00") == "6A80"
    assert send(card, "802A0180 04 01020304 00") == "6A86"
    assert send(card, "802A0080") == "6700"
    select(card, "0002")
    assert send(card, f"802A008033 {DIGEST_INFO.hex()} 00") == "6981"
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, f"802A008033 {DIGEST_INFO.hex()} 00") == "6986"


def test_class_and_instruction_errors(card):
    assert send(card, "00EE0000") == "6D00"
    assert send(card, "80A40000") == "6D00"
    assert send(card, "A0A4040C00") == "6E00"
    assert send(card, "01A4040C0A D392F000260100000001") == "6881"
    assert send(card, "0CA4040C0A D392F000260100000001") == "6882"
    assert send(card, "00A4") == "6700"
    assert send(card, "") == "6700"


def test_get_challenge_and_its_switch(card):
    answer = bytes.fromhex(send(card, "0084000008"))
    assert len(answer) == 10 and answer[-2:] == b"\x90\x00"
    assert send(card, "0084010008") == "6A86"
    assert send(card, "00840000") == "6700"
    no_challenge = CardOS([Applet("jpki", AID)], CardOptions(get_challenge=False))
    assert send(no_challenge, "0084000008") == "6D00"


def test_internal_failure_is_answered_6f00_not_raised(card):
    def explode(cmd):
        raise RuntimeError("boom")

    card._iso_handlers = lambda: {0xB0: explode}  # type: ignore[method-assign]
    assert send(card, "00B0000004") == "6F00"
