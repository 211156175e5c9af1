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


def test_an_exception_that_is_not_the_cards_own_goes_through(card):
    """Robot's stop on Ctrl-C is raised from its signal handler wherever the main thread is: never a 6F00."""
    class StopTheRun(Exception):  # how robot.errors.ExecutionFailed is built: on Exception, no narrower
        pass

    def interrupted(cmd):
        raise StopTheRun("Execution terminated by signal")

    card._iso_handlers = lambda: {0xB0: interrupted}  # type: ignore[method-assign]
    with pytest.raises(StopTheRun):
        send(card, "00B0000004")


def _verified_auth_key(card):
    select(card)
    assert send(card, "0020008004 31323334") == "9000"
    assert send(card, "00A4020C02 0017") == "9000"


@pytest.mark.parametrize("data", [b"\x01", bytes(36), bytes.fromhex("3020300C06082A864886F70D020505000410") + bytes(16),
                                  bytes(range(245))])
def test_signing_pads_any_input_of_1_to_245_bytes(card, key, data):
    """JPKI-FACTS §10: raw input, TLS 1.0's 36 bytes, an MD5 DigestInfo, the longest input all get type-01 padding."""
    _verified_auth_key(card)
    answer = bytes.fromhex(send(card, f"802A0080{len(data):02X}{data.hex()}00"))
    assert answer[-2:] == b"\x90\x00" and len(answer) == 258
    assert key.public_key().recover_data_from_signature(answer[:-2], padding.PKCS1v15(), None) == data
    em = pow(int.from_bytes(answer[:-2], "big"), 65537, key.public_key().public_numbers().n).to_bytes(256, "big")
    assert em == b"\x00\x01" + b"\xff" * (253 - len(data)) + b"\x00" + data


def test_signing_refuses_input_longer_than_the_padding_allows(card):
    _verified_auth_key(card)
    assert send(card, f"802A0080F6{'AB' * 246}00") == "6A80"


def test_strict_card_signs_only_known_digest_infos(key):
    applet = Applet("jpki", AID)
    applet.add(ElementaryFile(0x0017, FileKind.KEY, key=key))
    strict = CardOS([applet], CardOptions(strict_digest_info=True))
    select(strict, "0017")
    assert send(strict, "802A008004 01020304 00") == "6A80"
    assert send(strict, f"802A008033 {DIGEST_INFO.hex()} 00").endswith("9000")


def test_signing_names_the_key_by_sfi(card, key):
    select(card)
    assert send(card, "0020008004 31323334") == "9000"
    answer = bytes.fromhex(send(card, f"802A009733 {DIGEST_INFO.hex()} 00"))
    assert answer[-2:] == b"\x90\x00"
    assert key.public_key().recover_data_from_signature(answer[:-2], padding.PKCS1v15(), None) == DIGEST_INFO
    assert send(card, f"802A009933 {DIGEST_INFO.hex()} 00") == "6A82"
    assert send(CardOS([Applet("jpki", AID)], CardOptions(sign_key_by_sfi=False)), "802A009701AA00") == "6A86"


def test_verify_and_retry_query_by_sfi_without_select_ef(card):
    """JPKI-FACTS §10: 00 20 00 (80|SFI); the SFI is the low 5 bits of the FID (0018 → 98)."""
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, "00200098") == "63C3"
    assert send(card, "0020009804 39393939") == "63C2"
    assert send(card, "0020009804 31323334") == "9000"
    assert send(card, "00200098") == "63C3"
    assert send(card, "0020009B") == "63C5"
    assert send(card, "00200099") == "6A88"  # no EF with SFI 19
    assert send(card, "00200082") == "6981"  # SFI 2 is a binary EF
    assert send(card, "00B0820005") == "3003020105" + "9000"  # SFI defaults to the FID's low 5 bits
    assert send(card, "002000A0") == "6A86"


def test_query_after_a_good_verify_can_answer_9000():
    applet = Applet("jpki", AID)
    applet.add(ElementaryFile(0x0018, FileKind.PIN, pin=PinObject("auth", b"1234", 3)))
    os_ = CardOS([applet], CardOptions(query_ok_after_verify=True))
    select(os_)
    assert send(os_, "00200080") == "63C3"
    assert send(os_, "0020008004 31323334") == "9000"
    assert send(os_, "00200080") == "9000"


def test_read_record_by_sfi_and_current_ef():
    applet = Applet("common", bytes.fromhex("D3921000310001010100"))
    applet.add(ElementaryFile(0x0001, FileKind.RECORD, records=(b"\x01\x02AB", b"second")))
    applet.add(ElementaryFile(0x0002, content=b"binary"))
    os_ = CardOS([applet])
    assert send(os_, "00B2010C00") == "6986"
    assert send(os_, "00A4040C0A D3921000310001010100") == "9000"
    assert send(os_, "00B2010C00") == "01024142" + "9000"  # JPKI-FACTS §10: 共通AP's exact command
    assert send(os_, "00B2020C03") == "736563" + "9000"
    assert send(os_, "00B2030C00") == "6A83"
    assert send(os_, "00B2010C") == "6700"
    assert send(os_, "00B2000C00") == "6A86"
    assert send(os_, "00B2011400") == "6981"  # SFI 2 is binary
    assert send(os_, "00B0810004") == "6981"
    assert send(os_, "00A4020C02 0001") == "9000"
    assert send(os_, "00B2020400") == "7365636F6E64" + "9000"


def test_single_source_switches(card):
    assert send(card, "00A4000C02 3F00") == "6A86"  # right after reset
    assert send(card, "00A4040C0A D392F000260100000001") == "9000"
    assert send(card, "00A4000C02 3F00") == "9000"  # no change while an AP is selected
    assert send(card, "0CB0000004") == "69FC"
    assert send(card, "0C20008000") == "69FC"
    assert send(card, "0084000000 0008") == "6985"
    assert send(CardOS([Applet("jpki", AID)], CardOptions(select_mf=False)), "00A4000C02 3F00") == "6A86"


def test_reselecting_the_same_ap_keeps_or_clears_the_state(card):
    select(card, "001B")
    assert send(card, "0020008006 414243313233") == "9000"
    select(card, "0001")
    assert send(card, "00B0000004") == "73656372" + "9000"
    clearing = CardOS(list(card.applets.values()), CardOptions(reselect_clears_security=True))
    clearing.reset()
    select(clearing, "001B")
    assert send(clearing, "0020008006 414243313233") == "9000"
    select(clearing, "0001")
    assert send(clearing, "00B0000004") == "6982"
