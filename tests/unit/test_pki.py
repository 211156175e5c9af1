"""harness.pki (checks, revocation, profile, testpki) on the committed fixtures/pki hierarchy (real RSA, no mocks)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.pki import checks, generate, profile, revocation, testpki
from harness.pki.checks import PkiError
from harness.pki.revocation import RevocationStatus
from harness.relying_party.ocsp import make_ocsp_response

DATA = "本人確認のテスト".encode()
AUTH_CA_DN = [("C", "JP"), ("O", "JPKI-TEST"), ("OU", "JPKI for user authentication"),
              ("OU", "Japan Agency for Local Authority Information Systems")]


@pytest.fixture(scope="module")
def test_pki() -> testpki.TestPki:
    return testpki.load_test_pki()


@pytest.fixture(scope="module")
def holders() -> dict[str, dict[str, str]]:
    return tomllib.loads((testpki.DEFAULT_PKI_DIR / "holders.toml").read_text("utf-8"))


@pytest.fixture(scope="module")
def card(test_pki: testpki.TestPki) -> testpki.HolderPki:
    return test_pki.holder("card")


def _flip(data: bytes, index: int = -1) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


# --- DigestInfo and signatures ------------------------------------------------------------


def test_digest_info_layout() -> None:
    sha256 = checks.digest_info(DATA)
    assert len(sha256) == 51
    assert sha256[:19] == bytes.fromhex("3031300D060960864801650304020105000420")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(DATA)
    assert sha256[19:] == digest.finalize()
    sha1 = checks.digest_info(DATA, "sha1")
    assert len(sha1) == 35
    assert sha1[:15] == bytes.fromhex("3021300906052B0E03021A05000414")
    assert checks.digest_info(DATA, "SHA-256") == sha256
    with pytest.raises(PkiError):
        checks.digest_info(DATA, "md5")


def test_card_style_signature_verifies_both_ways(card: testpki.HolderPki) -> None:
    signature = card.auth_key().sign(DATA, PKCS1v15(), hashes.SHA256())
    checks.verify_signature(card.auth_cert, signature, digest_info=checks.digest_info(DATA))
    checks.verify_signature(card.auth_cert, signature, data=DATA)


def test_sha1_digest_info_signature(card: testpki.HolderPki) -> None:
    signature = card.sign_key().sign(DATA, PKCS1v15(), hashes.SHA1())
    checks.verify_signature(card.sign_cert, signature, digest_info=checks.digest_info(DATA, "sha1"))
    checks.verify_signature(card.sign_cert, signature, data=DATA, hash_alg="sha1")
    with pytest.raises(PkiError, match="different DigestInfo"):
        checks.verify_signature(card.sign_cert, signature, digest_info=checks.digest_info(DATA))


@pytest.mark.parametrize("index", [0, 100, -1])
def test_flipped_bit_is_rejected(card: testpki.HolderPki, index: int) -> None:
    signature = _flip(card.auth_key().sign(DATA, PKCS1v15(), hashes.SHA256()), index)
    with pytest.raises(PkiError):
        checks.verify_signature(card.auth_cert, signature, digest_info=checks.digest_info(DATA))
    with pytest.raises(PkiError):
        checks.verify_signature(card.auth_cert, signature, data=DATA)


def test_wrong_certificate_is_rejected(test_pki: testpki.TestPki, card: testpki.HolderPki) -> None:
    signature = card.auth_key().sign(DATA, PKCS1v15(), hashes.SHA256())
    for other in (test_pki.holder("phone").auth_cert, card.sign_cert):
        with pytest.raises(PkiError, match="type-01"):
            checks.verify_signature(other, signature, digest_info=checks.digest_info(DATA))
        with pytest.raises(PkiError):
            checks.verify_signature(other, signature, data=DATA)


def test_wrong_digest_is_rejected(card: testpki.HolderPki) -> None:
    signature = card.auth_key().sign(DATA, PKCS1v15(), hashes.SHA256())
    with pytest.raises(PkiError, match="different DigestInfo"):
        checks.verify_signature(card.auth_cert, signature, digest_info=checks.digest_info(DATA + b"!"))
    with pytest.raises(PkiError):
        checks.verify_signature(card.auth_cert, signature, data=DATA + b"!")


def test_truncated_signature_and_bad_arguments(card: testpki.HolderPki) -> None:
    signature = card.auth_key().sign(DATA, PKCS1v15(), hashes.SHA256())
    with pytest.raises(PkiError, match="255 bytes"):
        checks.verify_signature(card.auth_cert, signature[1:], data=DATA)
    with pytest.raises(TypeError):
        checks.verify_signature(card.auth_cert, signature)
    with pytest.raises(TypeError):
        checks.verify_signature(card.auth_cert, signature, data=DATA, digest_info=checks.digest_info(DATA))


# --- loading and chains -------------------------------------------------------------------


def test_load_certificate_der_pem_and_zero_filled_ef(card: testpki.HolderPki) -> None:
    der = card.auth_cert_path.read_bytes()
    assert checks.load_certificate(der) == card.auth_cert
    assert checks.load_certificate(card.auth_cert.public_bytes(serialization.Encoding.PEM)) == card.auth_cert
    assert checks.load_certificate(der + bytes(2048 - len(der))) == card.auth_cert
    with pytest.raises(PkiError):
        checks.load_certificate(b"\x30\x03\x02\x01\x00")


def test_keys_match_certificates(test_pki: testpki.TestPki) -> None:
    for holder in test_pki.holders.values():
        for cert, key in ((holder.auth_cert, holder.auth_key()), (holder.sign_cert, holder.sign_key())):
            assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert set(test_pki.holders) == {"card", "phone", "revoked"}
    with pytest.raises(PkiError, match="no holder"):
        test_pki.holder("nobody")


def test_chain_picks_the_right_root(test_pki: testpki.TestPki) -> None:
    for holder in test_pki.holders.values():
        assert checks.verify_chain(holder.auth_cert, test_pki.roots) == test_pki.auth_root
        assert checks.verify_chain(holder.sign_cert, test_pki.roots) == test_pki.sign_root
    assert test_pki.hierarchy_of(test_pki.holder("card").sign_cert) is test_pki.sign
    assert checks.verify_chain(test_pki.auth.ocsp_cert, test_pki.roots) == test_pki.auth_root


def test_chain_fails_against_the_other_root(card: testpki.HolderPki, test_pki: testpki.TestPki) -> None:
    with pytest.raises(PkiError, match="no root has key id"):
        checks.verify_chain(card.auth_cert, [test_pki.sign_root])
    with pytest.raises(PkiError, match="no root has key id"):
        checks.verify_chain(card.sign_cert, [test_pki.auth_root])


def test_chain_checks_validity_period(card: testpki.HolderPki, test_pki: testpki.TestPki) -> None:
    end = card.auth_cert.not_valid_after_utc
    assert checks.verify_chain(card.auth_cert, test_pki.roots, at=end - timedelta(seconds=1)) == test_pki.auth_root
    with pytest.raises(PkiError, match="expired"):
        checks.verify_chain(card.auth_cert, test_pki.roots, at=end + timedelta(seconds=1))
    with pytest.raises(PkiError, match="not valid before"):
        checks.verify_chain(card.auth_cert, test_pki.roots,
                         at=card.auth_cert.not_valid_before_utc - timedelta(days=1))


@pytest.fixture(scope="module")
def same_dn_root() -> generate.Issued:
    """Another generation of the auth root: same DN, different key (§6)."""
    return generate.make_root(generate.AUTH, datetime.now(UTC) - timedelta(days=1))


def test_chain_chooses_issuer_by_key_id_not_name(
    card: testpki.HolderPki, test_pki: testpki.TestPki, same_dn_root: generate.Issued
) -> None:
    assert same_dn_root.cert.subject == test_pki.auth_root.subject
    assert checks.verify_chain(card.auth_cert, [same_dn_root.cert, test_pki.auth_root]) == test_pki.auth_root
    with pytest.raises(PkiError, match="no root has key id"):
        checks.verify_chain(card.auth_cert, [same_dn_root.cert])


def test_chain_rejects_forged_key_id(card: testpki.HolderPki, test_pki: testpki.TestPki,
                                     same_dn_root: generate.Issued) -> None:
    """A certificate claiming the real root's key id but signed by another key does not chain."""
    real = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
        test_pki.auth_root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    forged = (
        x509.CertificateBuilder()
        .subject_name(card.auth_cert.subject)
        .issuer_name(test_pki.auth_root.subject)
        .public_key(card.auth_cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(card.auth_cert.not_valid_before_utc)
        .not_valid_after(card.auth_cert.not_valid_after_utc)
        .add_extension(real, critical=False)
        .sign(same_dn_root.key, hashes.SHA256())
    )
    with pytest.raises(PkiError, match="not signed by"):
        checks.verify_chain(forged, test_pki.roots)


# --- certificate profiles -----------------------------------------------------------------


def test_roots_are_self_signed_cas(test_pki: testpki.TestPki) -> None:
    assert [(a.rfc4514_attribute_name, a.value) for a in test_pki.auth_root.subject] == AUTH_CA_DN
    for root in test_pki.roots:
        root.verify_directly_issued_by(root)
        bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
        ku = root.extensions.get_extension_for_class(x509.KeyUsage)
        assert bc.critical and bc.value.ca
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert root.not_valid_after_utc - root.not_valid_before_utc > timedelta(days=19 * 365)


def test_auth_certificate_profile(test_pki: testpki.TestPki, holders: dict[str, dict[str, str]]) -> None:
    for name, holder in test_pki.holders.items():
        cert = holder.auth_cert
        assert cert.version is x509.Version.v3
        assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha256"
        assert [a.oid for a in cert.subject] == [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME]
        assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "JP"
        assert profile.auth_identifier(cert) == holders[name]["auth_cn"]
        assert len(profile.auth_identifier(cert)) == 23
        ext = cert.extensions
        ku = ext.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
        assert ExtendedKeyUsageOID.CLIENT_AUTH in ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        policies = ext.get_extension_for_class(x509.CertificatePolicies)
        assert policies.critical
        assert [p.policy_identifier.dotted_string for p in policies.value] == ["1.2.392.200149.8.5.1.3.30"]
        (dp,) = ext.get_extension_for_class(x509.CRLDistributionPoints).value
        assert dp.full_name is not None and isinstance(dp.full_name[0], x509.DirectoryName)
        aia = ext.get_extension_for_class(x509.AuthorityInformationAccess).value
        assert [(d.access_method, d.access_location.value) for d in aia] == [
            (x509.AuthorityInformationAccessOID.OCSP, "http://127.0.0.1:8089/ocsp/auth")]
        end = cert.not_valid_after_utc
        assert (end.hour, end.minute, end.second) == (14, 59, 59)
        assert (end.month, end.day) == (int(holders[name]["birth_date"][4:6]), int(holders[name]["birth_date"][6:]))
        numbers = cert.public_key().public_numbers()
        assert numbers.n.bit_length() == 2048 and numbers.e == 65537
        assert profile.holder_attributes(cert) == {}
        assert profile.auth_profile_problems(cert) == []


def test_profile_checks_catch_the_other_kind(card: testpki.HolderPki) -> None:
    problems = profile.auth_profile_problems(card.sign_cert)
    assert any("subject" in p for p in problems)
    assert any("clientAuth" in p for p in problems)
    assert any("1.2.392.200149.8.5.1.3.30" in p for p in problems)
    assert profile.sign_profile_problems(card.sign_cert) == []
    assert any("SubjectAltName" in p for p in profile.sign_profile_problems(card.auth_cert))


def test_sign_certificate_carries_holder_attributes(
    test_pki: testpki.TestPki, holders: dict[str, dict[str, str]]
) -> None:
    for name, holder in test_pki.holders.items():
        expected = {key: holders[name][key] for key in ("name", "sex", "birth_date", "address")}
        expected |= {"name_substitute": expected["name"], "address_substitute": expected["address"]}  # §10: all six
        assert profile.holder_attributes(holder.sign_cert) == expected
        ku = holder.sign_cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
    assert "　" in profile.holder_attributes(test_pki.holder("card").sign_cert)["name"]  # U+3000 kept


def test_der_strings_round_trip() -> None:
    long_address = "東京都" * 50  # > 127 bytes: long-form length
    assert profile.decode_der_string(profile.der_utf8_string(long_address)) == long_address
    assert profile.decode_der_string(profile.der_printable_string("19800401")) == "19800401"
    assert profile.der_printable_string("1") == b"\x13\x011"
    with pytest.raises(ValueError):
        profile.der_printable_string("試験")
    with pytest.raises(PkiError):
        profile.decode_der_string(b"\x0c\x05abc")


# --- CRL ----------------------------------------------------------------------------------


def test_crl_reports_revoked_and_good(test_pki: testpki.TestPki) -> None:
    revoked, card = test_pki.holder("revoked"), test_pki.holder("card")
    for kind, hierarchy in (("auth", test_pki.auth), ("sign", test_pki.sign)):
        assert revocation.check_crl(getattr(revoked, f"{kind}_cert"), hierarchy.crl, hierarchy.root) \
            is RevocationStatus.REVOKED
        assert revocation.check_crl(getattr(card, f"{kind}_cert"), hierarchy.crl, hierarchy.root) \
            is RevocationStatus.GOOD
    entry = test_pki.auth.crl.get_revoked_certificate_by_serial_number(revoked.auth_cert.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.key_compromise
    assert revocation.check_crl(card.auth_cert, test_pki.auth.crl_path.read_bytes(), test_pki.auth_root) \
        is RevocationStatus.GOOD


def test_crl_checks_issuer_signature_and_time(test_pki: testpki.TestPki, same_dn_root: generate.Issued) -> None:
    card = test_pki.holder("card")
    with pytest.raises(PkiError, match="issued by"):
        revocation.check_crl(card.auth_cert, test_pki.sign.crl, test_pki.auth_root)
    with pytest.raises(PkiError, match="stale"):
        revocation.check_crl(card.auth_cert, test_pki.auth.crl, test_pki.auth_root,
                      at=test_pki.auth.crl.next_update_utc + timedelta(seconds=1))
    with pytest.raises(PkiError, match="key id"):
        revocation.check_crl(card.auth_cert, test_pki.auth.crl, same_dn_root.cert)
    der = test_pki.auth.crl_path.read_bytes()
    with pytest.raises(PkiError, match="signature"):
        revocation.check_crl(card.auth_cert, _flip(der), test_pki.auth_root)


# --- OCSP ---------------------------------------------------------------------------------


def _response(test_pki: testpki.TestPki, holder: str, status: RevocationStatus, **kwargs) -> bytes:
    auth = test_pki.auth
    return make_ocsp_response(test_pki.holder(holder).auth_cert, auth.root, auth.ocsp_cert,
                                  auth.ocsp_key(), status, **kwargs)


def test_ocsp_request_names_the_certificate(card: testpki.HolderPki, test_pki: testpki.TestPki) -> None:
    request = ocsp.load_der_ocsp_request(revocation.build_ocsp_request(card.auth_cert, test_pki.auth_root,
                                                                nonce=b"n" * 16))
    assert request.serial_number == card.auth_cert.serial_number
    assert request.issuer_key_hash == x509.SubjectKeyIdentifier.from_public_key(
        test_pki.auth_root.public_key()).digest
    assert request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16


@pytest.mark.parametrize("status", list(RevocationStatus))
def test_ocsp_delegated_response_verifies(test_pki: testpki.TestPki, status: RevocationStatus) -> None:
    der = _response(test_pki, "card", status, nonce=b"x" * 16)
    card = test_pki.holder("card").auth_cert
    assert revocation.check_ocsp_response(der, card, test_pki.auth_root, nonce=b"x" * 16) is status
    assert revocation.check_ocsp_response(der, card, test_pki.auth_root) is status


def test_ocsp_response_signed_by_issuer(test_pki: testpki.TestPki) -> None:
    revoked = test_pki.holder("revoked").sign_cert
    der = make_ocsp_response(revoked, test_pki.sign_root, test_pki.sign_root, test_pki.sign.key(),
                                 RevocationStatus.REVOKED, datetime.now(UTC) - timedelta(days=1))
    assert ocsp.load_der_ocsp_response(der).certificates == []
    assert revocation.check_ocsp_response(der, revoked, test_pki.sign_root) is RevocationStatus.REVOKED


def test_tampered_ocsp_response_is_rejected(test_pki: testpki.TestPki) -> None:
    card = test_pki.holder("card").auth_cert
    der = _response(test_pki, "card", RevocationStatus.GOOD, nonce=b"A" * 16)
    tampered = der.replace(b"A" * 16, b"B" * 16)
    assert tampered != der
    with pytest.raises(PkiError, match="signature does not verify"):
        revocation.check_ocsp_response(tampered, card, test_pki.auth_root)
    signature = ocsp.load_der_ocsp_response(der).signature
    with pytest.raises(PkiError, match="signature does not verify"):
        revocation.check_ocsp_response(der.replace(signature, _flip(signature)), card, test_pki.auth_root)
    with pytest.raises(PkiError, match="nonce"):
        revocation.check_ocsp_response(der, card, test_pki.auth_root, nonce=b"C" * 16)
    with pytest.raises(PkiError, match="not an OCSP response"):
        revocation.check_ocsp_response(der[:-10], card, test_pki.auth_root)


def test_ocsp_response_for_another_certificate_is_rejected(test_pki: testpki.TestPki) -> None:
    der = _response(test_pki, "card", RevocationStatus.GOOD)
    with pytest.raises(PkiError, match="no status for serial"):
        revocation.check_ocsp_response(der, test_pki.holder("phone").auth_cert, test_pki.auth_root)


def test_ocsp_responder_must_be_authorised(test_pki: testpki.TestPki) -> None:
    card = test_pki.holder("card")
    # The sign hierarchy's responder did not get its certificate from the auth root.
    foreign = make_ocsp_response(card.auth_cert, test_pki.auth_root, test_pki.sign.ocsp_cert,
                                     test_pki.sign.ocsp_key(), RevocationStatus.GOOD)
    with pytest.raises(PkiError, match="not issued by"):
        revocation.check_ocsp_response(foreign, card.auth_cert, test_pki.auth_root)
    # ... unless configured locally as trusted.
    assert revocation.check_ocsp_response(foreign, card.auth_cert, test_pki.auth_root, [test_pki.sign.ocsp_cert]) \
        is RevocationStatus.GOOD
    # Issued by the auth root, but without EKU OCSPSigning.
    phone = test_pki.holder("phone")
    no_eku = make_ocsp_response(card.auth_cert, test_pki.auth_root, phone.auth_cert, phone.auth_key(),
                                    RevocationStatus.GOOD)
    with pytest.raises(PkiError, match="OCSPSigning"):
        revocation.check_ocsp_response(no_eku, card.auth_cert, test_pki.auth_root)


def test_ocsp_response_time_window(test_pki: testpki.TestPki) -> None:
    card = test_pki.holder("card").auth_cert
    this_update = datetime.now(UTC) - timedelta(hours=3)
    der = _response(test_pki, "card", RevocationStatus.GOOD, this_update=this_update,
                    next_update=this_update + timedelta(hours=1))
    with pytest.raises(PkiError, match="stale"):
        revocation.check_ocsp_response(der, card, test_pki.auth_root)
    assert revocation.check_ocsp_response(der, card, test_pki.auth_root, at=this_update + timedelta(minutes=30)) \
        is RevocationStatus.GOOD
    with pytest.raises(PkiError, match="future"):
        revocation.check_ocsp_response(der, card, test_pki.auth_root, at=this_update - timedelta(hours=1))


def test_ocsp_responder_certificates(test_pki: testpki.TestPki) -> None:
    for hierarchy in (test_pki.auth, test_pki.sign):
        cert = hierarchy.ocsp_cert
        cert.verify_directly_issued_by(hierarchy.root)
        assert ExtendedKeyUsageOID.OCSP_SIGNING in cert.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value
        cert.extensions.get_extension_for_class(x509.OCSPNoCheck)


def test_a_fixture_key_loads_without_the_primality_check_and_a_damaged_one_is_refused(tmp_path):
    """``load_fixture_key`` skips OpenSSL's ~31 ms check; n = p·q and the CRT numbers are still checked."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    from harness.fixtures import load_fixture_key, pki_dir

    key = load_fixture_key((pki_dir() / "card-auth.key.pem").read_bytes())
    signature = key.sign(b"data", PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"data", PKCS1v15(), hashes.SHA256())  # raises if the key were wrong
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    assert load_fixture_key(der).private_numbers() == key.private_numbers()
    numbers = key.private_numbers()
    for damaged in (
        rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d, numbers.dmp1 + 2, numbers.dmq1, numbers.iqmp,
                              numbers.public_numbers),
        rsa.RSAPrivateNumbers(numbers.p, numbers.q, numbers.d, numbers.dmp1, numbers.dmq1, numbers.iqmp + 1,
                              numbers.public_numbers),
    ):
        pem = damaged.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        with pytest.raises(ValueError, match="do not fit together"):
            load_fixture_key(pem)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret"))
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    for bad, words in ((encrypted, "encrypted"), (ec_key, "not an RSA key"), (b"garbage", "deserialize")):
        with pytest.raises(ValueError, match=words):
            load_fixture_key(bad)
    (tmp_path / "bad.pem").write_bytes(ec_key)
    with pytest.raises(PkiError, match="not an unencrypted RSA private key"):
        checks.load_private_key(tmp_path / "bad.pem")
