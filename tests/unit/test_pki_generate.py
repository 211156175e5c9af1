"""harness.pki.generate: a fresh hierarchy loads, chains and follows the profile (slowish: RSA key generation)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from harness.pki import checks, generate, profile, revocation, testpki
from harness.pki.revocation import RevocationStatus
from harness.relying_party.ocsp import make_ocsp_response

HOLDERS = ("card", "phone", "revoked")
EXPECTED = {
    "README.md", "holders.toml",
    "auth-ca.der", "auth-ca.key.pem", "sign-ca.der", "sign-ca.key.pem",
    "auth-ocsp.der", "auth-ocsp.key.pem", "sign-ocsp.der", "sign-ocsp.key.pem",
    "auth.crl.der", "sign.crl.der", "card-data.key.pem",
    *(f"{h}-{k}{ext}" for h in HOLDERS for k in ("auth", "sign") for ext in (".der", ".key.pem")),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("pki")
    return out, generate.generate(out)


def test_generate_writes_every_file(generated: tuple[Path, list[Path]]) -> None:
    out, written = generated
    assert {p.name for p in written} == EXPECTED
    assert {p.name for p in out.iterdir()} == EXPECTED
    assert all(p.stat().st_size > 0 for p in written)
    assert (out / "holders.toml").read_bytes() == generate.DEFAULT_HOLDERS_FILE.read_bytes()
    assert "hil pki generate" in (out / "README.md").read_text("utf-8")
    assert (out / "card-auth.key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_generated_hierarchy_loads_and_chains(generated: tuple[Path, list[Path]]) -> None:
    out, _ = generated
    test_pki = testpki.load_test_pki(out)
    assert set(test_pki.holders) == set(HOLDERS)
    other = testpki.load_test_pki(generate.generate(out.parent / "other-seed", seed="another seed")[0].parent)
    for holder in test_pki.holders.values():
        assert checks.verify_chain(holder.auth_cert, test_pki.roots) == test_pki.auth_root
        assert checks.verify_chain(holder.sign_cert, test_pki.roots) == test_pki.sign_root
        with pytest.raises(checks.PkiError):
            checks.verify_chain(holder.auth_cert, other.roots)
        assert holder.auth_key().public_key().public_numbers() == holder.auth_cert.public_key().public_numbers()
        assert holder.sign_key().public_key().public_numbers() == holder.sign_cert.public_key().public_numbers()
        assert profile.auth_profile_problems(holder.auth_cert) == []
        assert profile.sign_profile_problems(holder.sign_cert) == []
        assert profile.auth_identifier(holder.auth_cert) == holder.data["auth_cn"]
        attributes = profile.holder_attributes(holder.sign_cert)
        assert attributes == {**{k: holder.data[k] for k in ("name", "sex", "birth_date", "address")},
                              "name_substitute": holder.data["name"], "address_substitute": holder.data["address"]}
    for hierarchy in (test_pki.auth, test_pki.sign):
        assert checks.verify_chain(hierarchy.ocsp_cert, test_pki.roots) == hierarchy.root
        assert hierarchy.key().public_key().public_numbers() == hierarchy.root.public_key().public_numbers()


def test_generated_revocation_data(generated: tuple[Path, list[Path]]) -> None:
    test_pki = testpki.load_test_pki(generated[0])
    for kind, hierarchy in (("auth", test_pki.auth), ("sign", test_pki.sign)):
        statuses = {name: revocation.check_crl(getattr(h, f"{kind}_cert"), hierarchy.crl, hierarchy.root)
                    for name, h in test_pki.holders.items()}
        assert statuses == {"card": RevocationStatus.GOOD, "phone": RevocationStatus.GOOD,
                            "revoked": RevocationStatus.REVOKED}
        cert = test_pki.holder("revoked").auth_cert if kind == "auth" else test_pki.holder("revoked").sign_cert
        der = make_ocsp_response(cert, hierarchy.root, hierarchy.ocsp_cert, hierarchy.ocsp_key(),
                                     RevocationStatus.REVOKED)
        assert revocation.check_ocsp_response(der, cert, hierarchy.root) is RevocationStatus.REVOKED


def test_generated_validity_periods(generated: tuple[Path, list[Path]]) -> None:
    test_pki = testpki.load_test_pki(generated[0])
    now = datetime.now(UTC)
    for root in test_pki.roots:
        assert root.not_valid_before_utc < now
        assert root.not_valid_after_utc.year - root.not_valid_before_utc.year == 20
    for hierarchy in (test_pki.auth, test_pki.sign):
        assert hierarchy.crl.next_update_utc is not None
        assert hierarchy.crl.next_update_utc - now > timedelta(days=9 * 365)
    for holder in test_pki.holders.values():
        for cert in (holder.auth_cert, holder.sign_cert):
            assert cert.not_valid_before_utc == generate.ISSUED < now
            lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
            assert timedelta(days=4 * 365) < lifetime <= timedelta(days=5 * 366)


@pytest.mark.parametrize(("birth", "issued", "expected"), [
    ("19800401", datetime(2026, 11, 23, tzinfo=UTC), datetime(2031, 4, 1, 14, 59, 59, tzinfo=UTC)),
    ("19800401", datetime(2026, 1, 10, tzinfo=UTC), datetime(2030, 4, 1, 14, 59, 59, tzinfo=UTC)),
    ("19800401", datetime(2026, 4, 1, tzinfo=UTC), datetime(2031, 4, 1, 14, 59, 59, tzinfo=UTC)),
    ("20000229", datetime(2026, 3, 1, tzinfo=UTC), datetime(2031, 2, 28, 14, 59, 59, tzinfo=UTC)),
    ("20000229", datetime(2027, 3, 1, tzinfo=UTC), datetime(2032, 2, 29, 14, 59, 59, tzinfo=UTC)),
])
def test_expiry_is_fifth_birthday_after_issuance(birth: str, issued: datetime, expected: datetime) -> None:
    assert generate.expiry_for(birth, issued) == expected


def test_custom_holders_file(tmp_path: Path) -> None:
    holders = tmp_path / "in.toml"
    holders.write_text('[leap]\nauth_cn = "TESTLEAP000000000000001"\nname = "閏　年子"\n'
                       'address = "京都府京都市上京区"\nbirth_date = "20000229"\nsex = "9"\n', "utf-8")
    out = tmp_path / "out"
    written = generate.generate(out, holders)
    assert {p.name for p in written} >= {"leap-auth.der", "leap-sign.der", "holders.toml"}
    assert not (out / "card-auth.der").exists()
    test_pki = testpki.load_test_pki(out)
    leap = test_pki.holder("leap")
    assert profile.holder_attributes(leap.sign_cert)["sex"] == "9"
    assert leap.sign_cert.subject.get_attributes_for_oid(x509.NameOID.LOCALITY_NAME)[0].value == "京都府"
    assert revocation.check_crl(leap.auth_cert, test_pki.auth.crl, test_pki.auth_root) is RevocationStatus.GOOD
    assert list(test_pki.auth.crl) == []
    assert tomllib.loads((out / "holders.toml").read_text("utf-8"))["leap"]["birth_date"] == "20000229"


def test_bad_holder_data_is_refused(tmp_path: Path) -> None:
    holders = tmp_path / "bad.toml"
    holders.write_text('[x]\nauth_cn = "SHORT"\nname = "a"\naddress = "b"\nbirth_date = "19800401"\nsex = "1"\n')
    with pytest.raises(ValueError, match="23 characters"):
        generate.generate(tmp_path / "out", holders)
    assert not (tmp_path / "out").exists()


def test_generation_is_deterministic_and_matches_the_committed_fixtures(generated: tuple[Path, list[Path]],
                                                                        tmp_path: Path) -> None:
    """Same seed, same bytes: a second run writes identical files, and they are the committed ones."""
    _, written = generated
    again = generate.generate(tmp_path / "again")
    assert {p.name: p.read_bytes() for p in again} == {p.name: p.read_bytes() for p in written}
    stale = [p.name for p in written if p.read_bytes() != (testpki.DEFAULT_PKI_DIR / p.name).read_bytes()]
    assert stale == [], "fixtures/pki is stale; rebuild with: hil pki generate"


def test_certificates_have_the_real_sizes(generated: tuple[Path, list[Path]]) -> None:
    """JPKI-FACTS §10: auth ≈1571-1573 bytes, sign ≈1742 (the sign size follows name and address)."""
    out, _ = generated
    for holder in HOLDERS:
        assert 1571 <= (out / f"{holder}-auth.der").stat().st_size <= 1573
        assert 1720 <= (out / f"{holder}-sign.der").stat().st_size <= 1770
    assert abs((out / "card-sign.der").stat().st_size - 1742) <= 2


def test_holder_certificates_carry_the_section_6_extensions(generated: tuple[Path, list[Path]]) -> None:
    test_pki = testpki.load_test_pki(generated[0])
    cert = test_pki.holder("card").sign_cert
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert policies.critical
    qualifiers = policies.value[0].policy_qualifiers
    assert qualifiers[0] == generate.CPS_URL and isinstance(qualifiers[1], x509.UserNotice)
    issuer_alt = cert.extensions.get_extension_for_class(x509.IssuerAlternativeName).value
    assert issuer_alt.get_values_for_type(x509.DirectoryName)[0].get_attributes_for_oid(
        x509.NameOID.ORGANIZATION_NAME)[0].value == generate.ISSUER_ALT_ORG
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [o.type_id for o in san.get_values_for_type(x509.OtherName)] == [
        profile.HOLDER_ATTRIBUTE_OIDS[k] for k in ("name", "name_substitute", "sex", "birth_date", "address",
                                               "address_substitute")]
