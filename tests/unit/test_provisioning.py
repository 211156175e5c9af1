"""The phone's secure element before personalisation (devices/virtual/provisioning.py): its state machine,
answered APDU by APDU as a reader would send them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from devices.virtual.card import VirtualCard
from devices.virtual.cardos import CardOS
from devices.virtual.profile import PROFILES_DIR, ProfileError, load_profile
from devices.virtual.provisioning import ProvisioningOS, State, public_key_template, state_of
from harness.iso import tlv
from harness.iso.apdu import CommandApdu
from harness.pki import checks

JPKI = bytes.fromhex("D392F000260100000001")
ISSUER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def send(card: VirtualCard, cmd: CommandApdu | bytes) -> tuple[bytes, int]:
    answer = card.process(bytes(cmd))
    return answer[:-2], int.from_bytes(answer[-2:], "big")


def select(card: VirtualCard, fid: int) -> None:
    assert send(card, CommandApdu(0x00, 0xA4, 0x04, 0x0C, JPKI))[1] == 0x9000
    assert send(card, CommandApdu(0x00, 0xA4, 0x02, 0x0C, fid.to_bytes(2, "big")))[1] == 0x9000


def generate(card: VirtualCard, key_fid: int, p1: int = 0x80) -> tuple[bytes, int]:
    select(card, key_fid)
    return send(card, CommandApdu(0x00, 0x46, p1, 0x00, le=65536))


def public_key(template: bytes) -> rsa.RSAPublicKey:
    parts = {item.tag: item.value for item in tlv.parse_one(template).children()}
    return rsa.RSAPublicNumbers(int.from_bytes(parts[0x82], "big"), int.from_bytes(parts[0x81], "big")).public_key()


def certificate_for(key: rsa.RSAPublicKey) -> bytes:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provisioning test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1)).sign(ISSUER_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def update(card: VirtualCard, fid: int, data: bytes, chunk: int = 255) -> int:
    select(card, fid)
    status = 0x9000
    for offset in range(0, len(data), chunk):
        status = send(card, CommandApdu(0x00, 0xD6, offset >> 8, offset & 0xFF, data[offset:offset + chunk]))[1]
        if status != 0x9000:
            return status
    return status


def set_pin(card: VirtualCard, fid: int, value: bytes, p1: int = 0x01) -> int:
    select(card, fid)
    return send(card, CommandApdu(0x00, 0x24, p1, 0x80, value))[1]


def blank() -> VirtualCard:
    card = VirtualCard.from_profile("blank-phone")
    card.power_on()
    return card


def with_keys_and_certificates(card: VirtualCard) -> dict[int, bytes]:
    certs = {}
    for key_fid, cert_fid in ((0x17, 0x0A), (0x1A, 0x01)):
        template, status = generate(card, key_fid)
        assert status == 0x9000
        certs[cert_fid] = certificate_for(public_key(template))
        assert update(card, cert_fid, certs[cert_fid]) == 0x9000
    return certs


def test_a_blank_phone_is_empty_with_unset_pins_and_no_keys() -> None:
    card = blank()
    assert isinstance(card.os, ProvisioningOS) and state_of(card.os) is State.EMPTY
    for pin in (0x18, 0x1B):
        select(card, pin)
        assert send(card, CommandApdu(0x00, 0x20, 0x00, 0x80))[1] == 0x6A88  # query on an unset PIN
        assert send(card, CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234"))[1] == 0x6A88
    assert generate(card, 0x17, p1=0x81)[1] == 0x6A88  # no public key to read yet
    assert set_pin(card, 0x18, b"1234") == 0x6985  # no PIN before the certificates
    select(card, 0x17)
    assert send(card, CommandApdu(0x80, 0x2A, 0x00, 0x80, checks.digest_info(b"x")))[1] == 0x6981  # no key


def test_generated_keys_are_rsa_2048_and_readable_again() -> None:
    card = blank()
    template, status = generate(card, 0x17)
    assert status == 0x9000 and template[:2] == b"\x7f\x49"
    key = public_key(template)
    assert (key.key_size, key.public_numbers().e) == (2048, 65537)
    assert generate(card, 0x17, p1=0x81) == (template, 0x9000)
    assert state_of(card.os) is State.EMPTY  # one of two key pairs
    generate(card, 0x1A)
    assert state_of(card.os) is State.KEYS_GENERATED
    select(card, 0x17)
    assert send(card, CommandApdu(0x00, 0x46, 0x80, 0x00, le=256))[1] == 0x6700  # template needs extended Le
    select(card, 0x0A)
    assert send(card, CommandApdu(0x00, 0x46, 0x80, 0x00, le=65536))[1] == 0x6981  # not a key EF


def test_a_certificate_counts_only_when_it_matches_the_generated_key() -> None:
    card = blank()
    generate(card, 0x17)
    generate(card, 0x1A)
    stranger = certificate_for(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
    assert update(card, 0x0A, stranger) == 0x9000
    assert update(card, 0x01, stranger) == 0x9000
    assert state_of(card.os) is State.KEYS_GENERATED
    assert set_pin(card, 0x18, b"1234") == 0x6985


def test_the_full_provisioning_order_reaches_pins_set_and_then_locks() -> None:
    card = blank()
    certs = with_keys_and_certificates(card)
    assert state_of(card.os) is State.CERTIFICATES_STORED
    assert set_pin(card, 0x18, b"12AB") == 0x6A80  # auth PIN: 4 digits
    assert set_pin(card, 0x18, b"1234", p1=0x00) == 0x6A86  # only the P1 the profile names
    assert set_pin(card, 0x18, b"1234") == 0x9000
    assert update(card, 0x0A, certs[0x0A]) == 0x6985  # personalisation began: no more writes
    assert generate(card, 0x1A)[1] == 0x6985
    assert set_pin(card, 0x1B, b"PHONEPASS7") == 0x9000
    assert state_of(card.os) is State.PINS_SET
    card.power_off()
    card.power_on()
    assert state_of(card.os) is State.PINS_SET  # non-volatile
    select(card, 0x0A)
    assert send(card, CommandApdu(0x00, 0xB0, 0x00, 0x00, le=4))[1] == 0x6982  # §8: auth cert behind the PIN
    select(card, 0x18)
    assert send(card, CommandApdu(0x00, 0x20, 0x00, 0x80))[1] == 0x63C3
    assert send(card, CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234"))[1] == 0x9000
    select(card, 0x0A)
    data, status = send(card, CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536))
    assert status == 0x9000 and data.startswith(certs[0x0A])
    select(card, 0x17)
    signature, status = send(card, CommandApdu(0x80, 0x2A, 0x00, 0x80, checks.digest_info(b"hello"), le=256))
    assert status == 0x9000
    x509.load_der_x509_certificate(certs[0x0A]).public_key().verify(
        signature, b"hello", padding.PKCS1v15(), hashes.SHA256())
    select(card, 0x18)
    assert send(card, CommandApdu(0x00, 0x24, 0x01, 0x80, b"5678"))[1] == 0x9000  # ordinary change now


def test_a_new_key_makes_the_stored_certificate_worthless() -> None:
    card = blank()
    with_keys_and_certificates(card)
    generate(card, 0x17)
    assert state_of(card.os) is State.KEYS_GENERATED
    select(card, 0x0A)
    assert card.os.current_ef is not None and not any(card.os.current_ef.content)


def test_writes_past_the_ef_or_outside_the_certificate_efs_are_refused() -> None:
    card = blank()
    select(card, 0x0A)
    assert send(card, CommandApdu(0x00, 0xD6, 0x08, 0x00, b"\x01"))[1] == 0x6B00  # offset 2048: past the end
    assert send(card, CommandApdu(0x00, 0xD6, 0x07, 0xFF, b"\x01\x02"))[1] == 0x6700
    select(card, 0x06)
    assert send(card, CommandApdu(0x00, 0xD6, 0x00, 0x00, b"x"))[1] == 0x6981  # the token EF is not writable


def test_the_put_data_option_replaces_update_binary(tmp_path: Path) -> None:
    text = (PROFILES_DIR / "blank-phone.toml").read_text(encoding="utf-8")
    path = tmp_path / "put-data-phone.toml"
    path.write_text(text.replace('certificate_command = "update_binary"', 'certificate_command = "put_data"'),
                    encoding="utf-8")
    card = VirtualCard(load_profile(str(path)))
    card.power_on()
    template, _ = generate(card, 0x17)
    cert = certificate_for(public_key(template))
    select(card, 0x0A)
    assert send(card, CommandApdu(0x00, 0xD6, 0x00, 0x00, cert[:200]))[1] == 0x6D00
    assert send(card, CommandApdu(0x00, 0xA4, 0x04, 0x0C, JPKI))[1] == 0x9000
    assert send(card, CommandApdu(0x00, 0xDA, 0x00, 0x0A, cert))[1] == 0x9000
    assert card.os.applet.files[0x0A].content.startswith(cert)


def test_a_bad_provisioning_option_names_the_file_and_key(tmp_path: Path) -> None:
    text = (PROFILES_DIR / "blank-phone.toml").read_text(encoding="utf-8")
    path = tmp_path / "bad.toml"
    path.write_text(text.replace('"update_binary"', '"write_record"'), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"provisioning\.certificate_command"):
        VirtualCard(load_profile(str(path)))


def test_profiles_without_a_provisioning_table_are_untouched() -> None:
    for name in ("card", "phone", "revoked-card"):
        card = VirtualCard.from_profile(name)
        assert type(card.os) is CardOS and state_of(card.os) is None


def test_the_public_key_template_is_iso_7816_8_shaped() -> None:
    key = ISSUER_KEY.public_key()
    template = public_key_template(key)
    outer = tlv.parse_one(template)
    assert outer.tag == 0x7F49
    assert [item.tag for item in outer.children()] == [0x81, 0x82]
    assert public_key(template).public_numbers() == key.public_numbers()
