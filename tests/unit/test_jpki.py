"""The host-side JPKI client against the in-process virtual card and phone."""

import pytest

from devices import open_device
from harness.channel import CardChannel
from harness.jpki import CardStatusError, JpkiClient, PinKind
from harness.pin_guard import PinGuard
from harness.pki import checks, testpki


def guarded(client: JpkiClient) -> PinGuard:
    """VERIFY and CHANGE are built only by the guard; this virtual card is expendable."""
    return PinGuard(client, expendable=True, device=f"jpki-test-{id(client)}")


def client_for(uri: str) -> JpkiClient:
    reader = open_device(uri)
    reader.power_on()
    return JpkiClient(CardChannel(reader))


@pytest.fixture
def card():
    return client_for("virtual:card")


def test_certificate_read_takes_one_read_binary_with_extended_apdus(card):
    card.select_jpki()
    before = card.channel.apdu_count
    der = card.read_certificate("auth")
    assert card.channel.apdu_count - before == 2  # SELECT EF + one extended READ BINARY
    assert der == (testpki.load_test_pki().holder("card").auth_cert_path.read_bytes())


def test_certificate_read_in_256_byte_chunks_without_extended_apdus():
    short = client_for("virtual:card?extended=0")
    short.select_jpki()
    before = short.channel.apdu_count
    der = short.read_certificate("auth")
    expected_reads = -(-len(der) // 256)
    assert short.channel.apdu_count - before == 1 + expected_reads
    assert all(len(bytes.fromhex(e.hex.replace(" ", "")[:10])) == 5 for e in short.channel.trace.entries
               if e.direction == "C-APDU" and e.hex.startswith("00 B0"))


def test_reader_le_limit_is_respected():
    limited = client_for("virtual:card?max_response=1000")
    limited.select_jpki()
    before = limited.channel.apdu_count
    der = limited.read_certificate("auth")
    assert limited.channel.apdu_count - before == 1 + -(-len(der) // 1000)


def read_binary_les(client: JpkiClient) -> list[str]:
    """The Le field (hex) of each READ BINARY the client sent, from the trace."""
    return [e.hex.split(" ", 4)[4] for e in client.channel.trace.entries
            if e.direction == "C-APDU" and e.hex.startswith("00 B0")]


@pytest.mark.nfc
def test_a_contactless_reader_reads_the_der_header_then_exactly_its_length():
    nfc = client_for("virtual:card?via=nfc")
    try:
        assert nfc.channel.capabilities.contactless and nfc.reads_header_first
        nfc.select_jpki()
        nfc.channel.trace.clear()
        der = nfc.read_certificate("auth")
        assert der == testpki.load_test_pki().holder("card").auth_cert_path.read_bytes()
        rest = len(der) - 6
        assert read_binary_les(nfc) == ["06", f"00 {rest >> 8:02X} {rest & 0xFF:02X}"]  # 6, then the rest
        nfc.channel.trace.clear()
        JpkiClient(nfc.channel, header_first=False).read_certificate("auth")
        assert read_binary_les(nfc) == ["00 00 00"]  # the whole 2 KB EF, zero-filled past the DER
    finally:
        nfc.channel.reader.close()


def test_contact_readers_keep_one_read_and_the_choice_can_be_forced(card):
    assert not card.reads_header_first
    card.select_jpki()
    card.channel.trace.clear()
    der = JpkiClient(card.channel, header_first=True).read_certificate("auth")
    assert read_binary_les(card)[0] == "06" and len(read_binary_les(card)) == 2
    assert der == testpki.load_test_pki().holder("card").auth_cert_path.read_bytes()


def test_pin_queries_verification_and_tries(card):
    assert card.query_tries(PinKind.AUTH) == 3
    assert card.query_tries(PinKind.SIGN) == 5
    assert card.query_tries(PinKind.TEXT) == 3
    wrong = guarded(card).verify(PinKind.AUTH, "0000")
    assert not wrong.ok and wrong.tries_left == 2
    assert guarded(card).verify(PinKind.AUTH, "2580").ok
    assert card.query_tries(PinKind.AUTH) == 3


def test_sign_and_change_pin(card):
    assert card.sign("auth", checks.digest_info(b"x"), check=False).sw == 0x6982
    with pytest.raises(CardStatusError, match="6982"):
        card.sign("auth", checks.digest_info(b"x"))
    assert guarded(card).verify(PinKind.AUTH, "2580").ok
    signature = card.sign("auth", checks.digest_info(b"x")).data
    cert = checks.load_certificate(card.read_certificate("auth"))
    checks.verify_signature(cert, signature, data=b"x")
    assert guarded(card).change(PinKind.AUTH, "2580", "1357").ok
    assert guarded(card).verify(PinKind.AUTH, "1357").ok
    with pytest.raises(CardStatusError):
        guarded(card).change(PinKind.AUTH, "2580", "2468")


def test_text_ap_reads(card):
    assert guarded(card).verify(PinKind.TEXT, "2580").ok
    assert card.read_my_number() == "123456789018"
    basic = card.read_basic_four()
    assert basic.name == "試験\u3000太郎" and basic.birth_date == "19800401" and basic.sex == "1"


def test_phone_token_and_unknown_names():
    phone = client_for("virtual:phone")
    phone.select_jpki()
    assert phone.read_token_label() == "JPKIAPGPSETOKEN"
    with pytest.raises(ValueError, match="unknown certificate"):
        phone.read_certificate("nonsense")
    with pytest.raises(ValueError, match="unknown PIN"):
        PinKind.named("nonsense")
    with pytest.raises(CardStatusError, match="6A82"):
        phone.select_applet("text")
