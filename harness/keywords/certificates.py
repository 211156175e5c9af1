"""Keywords that check certificates and signatures read from the card (JPKI-FACTS §4, §6)."""

from __future__ import annotations

from cryptography import x509
from robotlibcore import keyword

from harness import fixtures
from harness.pki import checks, profile, testpki

from .context import LibraryComponent


class CertificateKeywords(LibraryComponent):
    def _expected_path(self, which: str):
        path = self.ctx.facts.expected_certificates.get(which)
        if path is None:
            raise AssertionError(
                f"no expected {which} certificate is known for {self.ctx.device_name} (lab inventory)"
            )
        return path

    @keyword
    def certificate_should_match_fixture(self, der: bytes, which: str) -> None:
        """Fails unless the certificate read equals the one the device is expected to hold."""
        expected = self._expected_path(which).read_bytes()
        if der != expected:
            raise AssertionError(f"{which} certificate read ({len(der)} bytes) differs from "
                                 f"{self._expected_path(which).name} ({len(expected)} bytes)")

    @keyword
    def certificate_should_differ_from_pki_file(self, der: bytes, filename: str) -> None:
        """Fails if the certificate read equals ``fixtures/pki/<filename>`` (e.g. the card's, on a phone)."""
        if der == (fixtures.pki_dir() / filename).read_bytes():
            raise AssertionError(f"certificate read is {filename}, expected a different one")

    @keyword
    def certificate_should_chain_to_test_root(self, der: bytes, hierarchy: str) -> None:
        """Fails unless the certificate chains to the test ``auth`` or ``sign`` root (chosen by key id)."""
        roots = testpki.load_test_pki()
        root = roots.auth_root if hierarchy == "auth" else roots.sign_root
        checks.verify_chain(checks.load_certificate(der), [root])

    @keyword
    def auth_certificate_should_follow_jpki_profile(self, der: bytes) -> None:
        """Subject only C=JP and a 23-character CN; KU, EKU, policy, CRL DP, AIA and 14:59:59Z end."""
        cert = checks.load_certificate(der)
        problems = profile.auth_profile_problems(cert)
        if problems:
            raise AssertionError("; ".join(problems))

    @keyword
    def sign_certificate_should_carry_holder(self, der: bytes) -> None:
        """Fails unless the sign certificate's SubjectAltName holds the expected holder's attributes."""
        holder = self.ctx.facts.holder
        if holder is None:
            raise AssertionError(f"the expected holder of {self.ctx.device_name} is unknown")
        attributes = profile.holder_attributes(checks.load_certificate(der))
        expected = {"name": holder.name, "address": holder.address, "birth_date": holder.birth_date,
                    "sex": holder.sex}
        differing = [k for k, v in expected.items() if attributes.get(k) != v]
        if differing:
            raise AssertionError(f"sign certificate attributes differ: {', '.join(differing)}")

    @keyword
    def signature_should_verify(self, signature: bytes, data: str | bytes, certificate: bytes,
                                algorithm: str = "sha256") -> None:
        """Fails unless ``signature`` is a valid RSASSA-PKCS1-v1_5 signature of ``data`` under the certificate."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        checks.verify_signature(checks.load_certificate(certificate), signature, data=raw, hash_alg=algorithm)

    @keyword
    def signature_should_not_verify(self, signature: bytes, data: str | bytes, certificate: bytes) -> None:
        """Fails if ``signature`` verifies over ``data`` under the certificate."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        try:
            checks.verify_signature(checks.load_certificate(certificate), signature, data=raw)
        except checks.PkiError:
            return
        raise AssertionError("the signature verified, but it was expected not to")

    @keyword
    def certificate_key_should_be_rsa_2048(self, der: bytes) -> None:
        """Fails unless the certificate's public key is RSA-2048 with e = 65537."""
        cert: x509.Certificate = checks.load_certificate(der)
        numbers = cert.public_key().public_numbers()  # type: ignore[union-attr]
        if numbers.n.bit_length() != 2048 or numbers.e != 65537:
            raise AssertionError(f"key is {numbers.n.bit_length()} bits, e={numbers.e}")
