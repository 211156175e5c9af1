"""The virtual card and phone built from their profiles: files, PINs, signatures, faults in the slot."""

import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils

from devices import CardRemoved, NoCard
from devices.virtual.applets import basic_four_ef, my_number_ef, number_b, wareki_yymmdd
from devices.virtual.card import VirtualCard
from devices.virtual.profile import ProfileError, load_profile
from devices.virtual.slot import CardSlot, FaultPlan
from harness import pki, tlv

SELECT_JPKI = "00A4040C0AD392F000260100000001"


def run(card: VirtualCard, *apdus: str) -> list[str]:
    return [card.process(bytes.fromhex(a.replace(" ", ""))).hex().upper() for a in apdus]


@pytest.fixture
def card():
    c = VirtualCard.from_profile("card")
    c.power_on()
    return c


@pytest.fixture
def phone():
    c = VirtualCard.from_profile("phone")
    c.power_on()
    return c


def test_token_labels_differ_between_card_and_phone(card, phone):
    for c, label in ((card, "JPKIAPICCTOKEN2"), (phone, "JPKIAPGPSETOKEN")):
        answer = run(c, SELECT_JPKI, "00A4020C020006", "00B0000020")[-1]
        assert bytes.fromhex(answer[:-4]).decode().rstrip() == label


def test_certificate_efs_are_zero_filled_and_hold_the_fixture(card):
    answer = run(card, SELECT_JPKI, "00A4020C02000A", "00B000000000 00".replace(" ", ""))[-1]
    data = bytes.fromhex(answer[:-4])
    fixture = card.profile.pki_file("auth.der").read_bytes()
    assert len(data) == card.profile.cert_ef_size and data.startswith(fixture)
    assert not any(data[len(fixture):])
    assert tlv.der_total_length(data[:4]) == len(fixture)


def test_phone_auth_certificate_needs_the_auth_pin_but_the_cards_does_not(card, phone):
    assert run(card, SELECT_JPKI, "00A4020C02000A", "00B0000004")[-1].endswith("9000")
    assert run(phone, SELECT_JPKI, "00A4020C02000A", "00B0000004")[-1] == "6982"
    pin = phone.profile.pins["auth"].value.encode().hex()
    assert run(phone, "00A4020C020018", f"0020008004{pin}", "00A4020C02000A", "00B0000004")[-1].endswith("9000")


def test_phone_has_no_text_ap(phone):
    assert run(phone, "00A4040C0AD3921000310001010408") == ["6A82"]


def test_signature_from_the_card_verifies_under_its_certificate(card):
    pin = card.profile.pins["auth"].value.encode().hex()
    digest_info = pki.digest_info(b"challenge")
    answer = run(card, SELECT_JPKI, "00A4020C020018", f"0020008004{pin}", "00A4020C020017",
                 f"802A0080{len(digest_info):02X}{digest_info.hex()}00")[-1]
    assert answer.endswith("9000")
    cert = pki.load_certificate(card.profile.pki_file("auth.der").read_bytes())
    cert.public_key().verify(bytes.fromhex(answer[:-4]), b"challenge", padding.PKCS1v15(), hashes.SHA256())
    cert.public_key().verify(bytes.fromhex(answer[:-4]), pki.digest_info(b"challenge")[19:], padding.PKCS1v15(),
                             utils.Prehashed(hashes.SHA256()))


def test_text_ap_layout_follows_the_facts(card):
    holder = card.profile.holder
    assert my_number_ef(holder) == bytes.fromhex("FF100C") + holder.my_number.encode() + b"\xff\xff"
    assert len(my_number_ef(holder)) == 17
    outer = tlv.parse_one(basic_four_ef(holder))
    assert outer.tag == 0xFF20
    assert [c.tag for c in outer.children()] == [0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25]
    assert wareki_yymmdd("19800401") == "550401"
    assert wareki_yymmdd("19890108") == "010108"
    assert wareki_yymmdd("20190501") == "010501"
    assert len(number_b(holder)) == 14 and number_b(holder).isdigit()


def test_text_ap_files_open_with_their_collation_numbers(card):
    holder = card.profile.holder
    number_a = holder.my_number.encode().hex()
    run(card, "00A4040C0AD3921000310001010408")
    assert run(card, "00A4020C020001", "00B0000011")[-1] == "6982"
    assert run(card, "00A4020C020014", f"002000800C{number_a}")[-1] == "9000"
    assert run(card, "00A4020C020001", "00B0000011")[-1] == my_number_ef(holder).hex().upper() + "9000"
    assert run(card, "00A4020C020002", "00B0000004")[-1] == "6982"  # number A does not open the basic four


def test_pins_survive_power_cycles_but_verification_does_not(card):
    pin = card.pin("auth")
    run(card, SELECT_JPKI, "00A4020C020018", "0020008004 30303030")
    assert pin.tries_left == 2
    card.power_on()
    assert pin.tries_left == 2 and not pin.verified


def test_unknown_profile_and_malformed_profile_fail_with_one_line(tmp_path):
    with pytest.raises(ProfileError, match="no card profile 'nosuch'"):
        load_profile("nosuch")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\napplets = [1,,]\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"bad\.toml.*line") as excinfo:
        load_profile(str(bad))
    assert "\n" not in str(excinfo.value)
    bad.write_text('name = "x"\nkind = "card"\nholder = "card"\napplets = ["jpki", "bogus"]\n', encoding="utf-8")
    with pytest.raises(ProfileError, match="applets must include"):
        load_profile(str(bad))


def test_slot_faults_remove_the_card_mid_apdu_and_stall():
    slot = CardSlot(VirtualCard.from_profile("card"))
    slot.power_on()
    slot.arm(FaultPlan(remove_at_apdu=2))
    assert slot.exchange(bytes.fromhex(SELECT_JPKI)) == b"\x90\x00"
    with pytest.raises(CardRemoved):
        slot.exchange(bytes.fromhex(SELECT_JPKI))
    assert not slot.present
    with pytest.raises(NoCard):
        slot.exchange(bytes.fromhex(SELECT_JPKI))
    assert slot.wait(True, 0.05) is False
    slot.insert(VirtualCard.from_profile("card"))
    assert slot.wait(True, 0.05) is True
    slot.power_on()
    slot.arm(FaultPlan(stall_at_apdu=1, stall_seconds=0.2))
    start = time.perf_counter()
    assert slot.exchange(bytes.fromhex(SELECT_JPKI)) == b"\x90\x00"
    assert time.perf_counter() - start >= 0.2
