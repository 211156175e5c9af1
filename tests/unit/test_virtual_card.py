"""The virtual card and phone built from their profiles: files, PINs, signatures, faults in the slot."""

import re
import shutil
import subprocess
import time
import zlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import CardRemoved, NoCard
from devices.registry import check_uri
from devices.virtual import pkifiles
from devices.virtual.applets import basic_four_ef, my_number_ef, number_b, wareki_yymmdd
from devices.virtual.card import VirtualCard
from devices.virtual.profile import PROFILES_DIR, ProfileError, load_profile
from devices.virtual.slot import CardSlot, FaultPlan
from harness import apfiles
from harness.iso import tlv
from harness.pki import checks

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
    digest_info = checks.digest_info(b"challenge")
    answer = run(card, SELECT_JPKI, "00A4020C020018", f"0020008004{pin}", "00A4020C020017",
                 f"802A0080{len(digest_info):02X}{digest_info.hex()}00")[-1]
    assert answer.endswith("9000")
    cert = checks.load_certificate(card.profile.pki_file("auth.der").read_bytes())
    cert.public_key().verify(bytes.fromhex(answer[:-4]), b"challenge", padding.PKCS1v15(), hashes.SHA256())
    cert.public_key().verify(bytes.fromhex(answer[:-4]), checks.digest_info(b"challenge")[19:], padding.PKCS1v15(),
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


# --- JPKI-FACTS §10: the files of every AP --------------------------------------------------------
SELECT_TEXT = "00A4040C0AD3921000310001010408"
SELECT_VISUAL = "00A4040C0AD3921000310001010402"
SELECT_COMMON = "00A4040C0AD3921000310001010100"
SELECT_JUKI = "00A4040C0AD3921000310001010401"


def read_whole(card: VirtualCard, fid: str) -> bytes:
    """SELECT EF ``fid`` of the current AP and read it with one extended READ BINARY."""
    answer = run(card, f"00A4020C02{fid}", "00B00000000000")[-1]
    assert answer.endswith("9000"), answer
    return bytes.fromhex(answer[:-4])


def test_jpki_ef_0008_and_the_unpublished_efs(card):
    assert run(card, SELECT_JPKI, "00B0880000") == ["9000", "8F8F009000"]
    assert run(card, "00A4020C020009", "00A4020C020016") == ["9000", "9000"]


def test_token_info_is_a_160_byte_ck_token_info(card):
    data = bytes.fromhex(run(card, SELECT_JPKI, "00B0860000")[-1][:-4])
    assert len(data) == 160 and data[:32].rstrip() == b"JPKIAPICCTOKEN2"
    assert int.from_bytes(data[96:100], "big") == 0x040D
    assert (int.from_bytes(data[116:120], "big"), int.from_bytes(data[120:124], "big")) == (16, 6)


def test_text_ap_records_are_well_formed_and_signed(card):
    assert run(card, SELECT_TEXT, "00B0850000")[-1].endswith("9000")
    info = bytes.fromhex(run(card, "00B0850000")[-1][:-4])
    assert apfiles.ap_info_problems(info) == [] and len(info) == 256
    cv_cert = read_whole(card, "0004")
    assert apfiles.cv_certificate_problems(cv_cert) == []
    assert run(card, "00A4020C020003", "00B0000004")[-1] == "6982"
    pin = card.profile.pins["text"].value.encode().hex()
    assert run(card, f"0020009104{pin}") == ["9000"]  # VERIFY by SFI, §10
    record = read_whole(card, "0003")
    number, basic = read_whole(card, "0001"), read_whole(card, "0002")
    assert apfiles.integrity_problems(record, number, basic, apfiles.cv_public_key(cv_cert)) == []
    assert apfiles.integrity_problems(record, number, basic[:-1], apfiles.cv_public_key(cv_cert)) == [
        "DF32 is not the SHA-256 of the second data EF"]
    assert run(card, "00A4020C020012", "00200080", "0020008004 30303030") == ["9000", "63C0", "6984"]


def test_card_face_layout_images_and_collation_numbers(card):
    holder = card.profile.holder
    assert run(card, SELECT_VISUAL, "00A4020C020002", "00B0000004")[-1] == "6982"
    number_a = holder.my_number.encode().hex()
    assert run(card, "00A4020C020013", f"002000800C{number_a}") == ["9000", "9000"]
    face = read_whole(card, "0002")
    assert apfiles.card_face_problems(face, holder.birth_date, holder.sex) == []
    assert apfiles.card_face_problems(face, "19990101", holder.sex) == [
        "birth date (DF22) differs from the expected holder's"]
    fields = {item.tag: item.value for item in tlv.parse_one(face).children()}
    assert list(fields) == [0xDF21, *range(0xDF22, 0xDF2B)]
    for tag in (0xDF25, 0xDF26, 0xDF2A):
        png = fields[tag]
        assert png.startswith(apfiles.PNG_SIGNATURE)
        width, height, depth = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"), png[24]
        idat = png[33 + 8 : -12 - 4]
        assert len(zlib.decompress(idat)) == height * (1 + (width * depth + 7) // 8)
    jp2 = fields[0xDF27]
    codestream = jp2[jp2.index(b"jp2c") + 4 :]
    assert jp2.startswith(apfiles.JP2_SIGNATURE) and codestream[:4] == b"\xff\x4f\xff\x51"
    assert codestream.endswith(b"\xff\xd9")
    card.power_on()
    b = number_b(holder).encode().hex()
    assert len(number_b(holder)) == 14
    assert run(card, SELECT_VISUAL, "00A4020C020012", f"002000800E{b}", "00A4020C020002", "00B0000004")[-1].endswith(
        "9000")
    assert run(card, "00A4020C020001", "00B0000004")[-1] == "6982"  # the My Number side needs 照合番号A
    assert run(card, "00A4020C020003", "00A4020C020004", "00A4020C020005") == ["9000"] * 3


def test_common_and_juki_aps_hold_pin_001c_and_the_record_file(card):
    assert run(card, SELECT_JUKI, "00A4020C02001C", "00200080") == ["9000", "9000", "63C3"]
    assert run(card, SELECT_COMMON, "0020009C") == ["9000", "63C3"]
    record = bytes.fromhex(run(card, "00B2010C00")[-1][:-4])
    assert apfiles.card_id_record_problems(record) == [] and record[:2] == b"\x01\x1c"
    pin = card.profile.pins["juki"].value.encode().hex()
    assert run(card, f"0020009C04{pin}", "0020009C") == ["9000", "63C3"]
    assert card.pin("juki").verified is False  # 住基AP's object is its own
    assert card.pin("common_juki").verified is True


def test_2024_card_differs_only_in_its_atr():
    card_2024 = VirtualCard.from_profile("card-2024")
    assert card_2024.power_on() == bytes.fromhex("3BDA13FF8131FB468012392F31C173C601C03B")
    assert run(card_2024, SELECT_JPKI, "00B0860020")[-1][:-4] == run(VirtualCard.from_profile("card"), SELECT_JPKI,
                                                                      "00B0860020")[-1][:-4]


def test_realistic_timing_charges_signing_and_bytes_on_the_air():
    timed = VirtualCard.from_profile("card-timed")
    timed.power_on()
    run(timed, SELECT_JPKI, "00A4020C02000A")
    assert timed.response_delay(bytes.fromhex("00B00000000000")) == pytest.approx(2048 * 10 / 106_000)
    assert timed.response_delay(bytes.fromhex("00B0000004")) == pytest.approx(4 * 10 / 106_000)
    assert timed.response_delay(bytes.fromhex("00B0880000")) == pytest.approx(3 * 10 / 106_000)  # by SFI: 3 left
    assert timed.response_delay(bytes.fromhex("802A00800401020304")) == pytest.approx(0.450)
    assert timed.response_delay(bytes.fromhex(SELECT_JPKI)) == 0.0
    run(timed, "00A4020C020001")
    assert timed.response_delay(bytes.fromhex("00B0000004")) == 0.0  # refused (6982): nothing on the air
    assert VirtualCard.from_profile("card").response_delay(bytes.fromhex("802A00800401020304")) == 0.0


def test_cards_share_parsed_keys_but_not_their_state():
    before = pkifiles.cache_info()
    first, second = VirtualCard.from_profile("card"), VirtualCard.from_profile("card")
    after = pkifiles.cache_info()
    assert after["misses"] == before["misses"]  # both built from keys parsed before (by the fixtures above)
    key_of = lambda c: c.os.applets[bytes.fromhex(SELECT_JPKI[10:])].files[0x0017].key  # noqa: E731
    assert key_of(first) is key_of(second)
    first.power_on(), second.power_on()
    run(first, SELECT_JPKI, "00A4020C020018", "0020008004 30303030")
    assert first.pin("auth").tries_left == 2 and second.pin("auth").tries_left == 3


@pytest.mark.parametrize(("edit", "message"), [
    (("max_tries = 3 }", "max_tries = 3.5 }"), "'pins.auth.max_tries' must be an integer, got a float"),
    (("max_tries = 3 }", "max_tries = 99999999999999999999 }"), None),
    (("max_tries = 5 }", "max_tries = 0 }"), "'pins.sign.max_tries' must be 1-15, got 0"),
    (("fwi = 10", "fwi = \"ten\""), "'contactless.fwi' must be an integer, got a string"),
    (("fwi = 10", "fwi = 99"), "'contactless.fwi' must be 0-14, got 99"),
    (("bit_rates = [106, 212, 424]", "bit_rates = [106, 300]"), "'contactless.bit_rates' must be"),
    (("max_frame = 256", "max_frame = 100"), "'contactless.max_frame' must be one of"),
    (("cert_ef_size = 2048", "cert_ef_size = -1"), "'jpki.cert_ef_size' must be 256-32767, got -1"),
    (("expendable = true", "expendable = 1"), "'expendable' must be a boolean, got an integer"),
    (('kind = "card"', 'kind = "watch"'), "'kind' must be one of"),
    (("sign_delay_ms = 0 ", "sign_delay_ms = 1e400 "), "'timing.sign_delay_ms' must be an integer, got a float"),
    (("strict_digest_info = false", "strict_digest_info = 0"), "'options.strict_digest_info' must be a boolean"),
    (("select_mf = true", "select_mf = true\nbogus_option = 1"), "'options.bogus_option' is not a known key"),
    (('pupi = "4A 50 4B 49"', 'pupi = "4A 50"'), "'contactless.pupi' must be 4-4 bytes, got 2"),
    (('atr = "3B E0 00 FF 81 31 FE 45 14"', 'atr = "zz"'), "'atr' is not hex"),
    (("[contactless]", "[contactless.inner]"), "'contactless.inner' is not a known key"),
    (('holder = "card"', 'holder = ["card"]'), "'holder' must be a string, got an array"),
])
def test_profile_with_wrong_types_or_ranges_is_one_line_naming_the_file(tmp_path, edit, message):
    """#17: wrong value types must not escape as TypeError/OverflowError; one line names the file and key."""
    text = (PROFILES_DIR / "card.toml").read_text("utf-8")
    old, new = edit
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1), "utf-8")
    with pytest.raises(ProfileError) as excinfo:
        load_profile(str(path))
    line = str(excinfo.value)
    assert "\n" not in line and str(path) in line
    if message:
        assert message in line
    else:
        assert "max_tries" in line


def test_deeply_nested_profile_is_one_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n", "utf-8")
    with pytest.raises(ProfileError, match=r"deep\.toml") as excinfo:
        load_profile(str(path))
    assert "\n" not in str(excinfo.value)


def test_face_photo_stand_in_decodes_with_openjpeg(card, tmp_path):
    """An independent JPEG 2000 decoder (OpenJPEG, installed by scripts/setup.sh) reads the DF27 stand-in."""
    decoder = shutil.which("opj_decompress")
    assert decoder, "opj_decompress is missing: run scripts/setup.sh (it installs libopenjp2-tools)"
    number_a = card.profile.holder.my_number.encode().hex()
    run(card, SELECT_VISUAL, "00A4020C020013", f"002000800C{number_a}")
    fields = {item.tag: item.value for item in tlv.parse_one(read_whole(card, "0002")).children()}
    source, decoded = tmp_path / "face.jp2", tmp_path / "face.pgm"
    source.write_bytes(fields[0xDF27])
    proc = subprocess.run([decoder, "-i", str(source), "-o", str(decoded)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-1000:]
    header = decoded.read_bytes().split(b"\n")
    assert header[0] == b"P5" and b"48 60" in header


def test_globalplatform_isd_aid_selects_by_default_and_can_be_switched_off(tmp_path):
    assert run(VirtualCard.from_profile("card"), "00A4040C07A0000001510000") == ["9000"]
    text = (PROFILES_DIR / "card.toml").read_text("utf-8").replace("isd_selectable = true", "isd_selectable = false")
    path = tmp_path / "no-isd.toml"
    path.write_text(text, "utf-8")
    assert run(VirtualCard(load_profile(str(path))), "00A4040C07A0000001510000") == ["6A82"]


_TOML_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=False).map(repr),
    st.booleans().map(lambda b: str(b).lower()),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n\r'), max_size=40)
    .map(lambda s: f'"{s}"'),
)
_TOML_VALUES = st.recursive(_TOML_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
    st.dictionaries(st.sampled_from(["a", "value", "max_tries", "fwi"]), inner, max_size=3)
    .map(lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"),
), max_leaves=6)
_PROFILE_LINES = [(i, line) for i, line in enumerate((PROFILES_DIR / "card.toml").read_text("utf-8").splitlines())
                  if re.match(r"^[a-z_]+ = ", line)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.sampled_from(_PROFILE_LINES), value=_TOML_VALUES, serial=st.uuids())
def test_fuzzed_profile_values_give_a_profile_or_one_profile_error(tmp_path, choice, value, serial):
    """#17: any value in any key of a valid profile loads or fails as one ProfileError line, nothing else."""
    index, line = choice
    lines = (PROFILES_DIR / "card.toml").read_text("utf-8").splitlines()
    lines[index] = f"{line.split(' = ', 1)[0]} = {value}"
    path = tmp_path / f"fuzz-{serial}.toml"  # a new file each time: the profile cache keys on path and mtime
    path.write_text("\n".join(lines) + "\n", "utf-8")
    try:
        VirtualCard(load_profile(str(path)))
    except ProfileError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


def test_a_broken_profile_is_refused_before_a_run(tmp_path):
    """``hil run --device virtual:<broken.toml>`` checks the URI first: one ProfileError line, no suite runs."""
    path = tmp_path / "broken.toml"
    path.write_text((PROFILES_DIR / "card.toml").read_text("utf-8").replace("max_tries = 3 }", 'max_tries = "x" }', 1),
                    "utf-8")
    with pytest.raises(ProfileError, match=r"broken\.toml: 'pins\.auth\.max_tries' must be an integer") as excinfo:
        check_uri(f"virtual:{path}")
    assert "\n" not in str(excinfo.value)
    check_uri("virtual:card-2024")


def test_a_profile_naming_an_unknown_holder_is_one_line_naming_the_profile(tmp_path):
    """Found by the profile fuzzer (holder = "0"): the line named only holders.toml, not the profile that asked."""
    path = tmp_path / "stranger.toml"
    path.write_text((PROFILES_DIR / "card.toml").read_text("utf-8").replace('holder = "card"', 'holder = "nobody"', 1),
                    "utf-8")
    with pytest.raises(ProfileError) as excinfo:
        load_profile(str(path))
    message = str(excinfo.value)
    assert message.startswith(f"{path}: 'holder': ") and "no holder 'nobody'; known: card" in message
    assert "\n" not in message
