"""Issues the phone's auth and sign certificates from the test CAs, in the JPKI-FACTS §6 profile.

The phone's certificates are new certificates on the phone's own keys, not copies of the card's: the auth
certificate carries only C=JP and a new 23-character identifier, the sign certificate the same holder
attributes as the card's sign certificate. ASSUMPTION (not public): they end when the card's sign certificate
ends (its notAfter is already 14:59:59Z, §6), and the phone identifier is derived from the ceremony.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.pki import profile, testpki
from harness.pki.generate import AUTH, SIGN, HierarchySpec

PHONE_CN_PREFIX = "JPKIPHONE"  # ASSUMPTION: our own identifier scheme for phone auth certificates


class KeyRejected(ValueError):
    """A phone public key the authority will not certify (not RSA-2048 e=65537, or both keys alike)."""


@dataclass(frozen=True)
class PhoneCertificates:
    auth: x509.Certificate
    sign: x509.Certificate


def phone_identifier(ceremony_id: str) -> str:
    """The phone auth certificate's CN: 23 characters like the card's (§6), unique per ceremony."""
    digest = hashlib.sha256(ceremony_id.encode("utf-8")).hexdigest().upper()
    return (PHONE_CN_PREFIX + digest)[: profile.AUTH_CN_LENGTH]


def load_phone_key(der: bytes, which: str) -> rsa.RSAPublicKey:
    """A SubjectPublicKeyInfo the phone's secure element produced; RSA-2048, e = 65537 (§4)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as exc:
        raise KeyRejected(f"{which} key is not a SubjectPublicKeyInfo: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyRejected(f"{which} key is {type(key).__name__}, not RSA")
    if key.key_size != profile.RSA_BITS or key.public_numbers().e != profile.RSA_EXPONENT:
        raise KeyRejected(f"{which} key is RSA-{key.key_size} e={key.public_numbers().e}, not RSA-2048 e=65537")
    return key


def _key_usage(non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=non_repudiation, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                         encipher_only=False, decipher_only=False)


def _builder(spec: HierarchySpec, root: x509.Certificate, subject: x509.Name, key: rsa.RSAPublicKey,
             not_before: datetime, not_after: datetime, ocsp_url: str) -> x509.CertificateBuilder:
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(spec.policy, None)]), critical=True)
        .add_extension(x509.CRLDistributionPoints([
            x509.DistributionPoint([x509.DirectoryName(spec.crl_dp_name)], None, None, None)]), critical=False)
        .add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(x509.AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(ocsp_url))]), critical=False)
    )


class Issuer:
    """Signs with the two test roots' keys (loaded once)."""

    def __init__(self, test_pki: testpki.TestPki) -> None:
        self.pki = test_pki
        self._auth_key = test_pki.auth.key()
        self._sign_key = test_pki.sign.key()

    def issue(self, ceremony_id: str, card_sign_cert: x509.Certificate, auth_key: rsa.RSAPublicKey,
              sign_key: rsa.RSAPublicKey, now: datetime, ocsp_base: str) -> PhoneCertificates:
        if auth_key.public_numbers() == sign_key.public_numbers():
            raise KeyRejected("the phone offered one key for both certificates")
        not_before = now - timedelta(minutes=5)  # small clock skew between authority and relying parties
        not_after = card_sign_cert.not_valid_after_utc
        auth_subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                                  x509.NameAttribute(NameOID.COMMON_NAME, phone_identifier(ceremony_id))])
        auth = (
            _builder(AUTH, self.pki.auth.root, auth_subject, auth_key, not_before, not_after, f"{ocsp_base}/auth")
            .add_extension(_key_usage(non_repudiation=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._auth_key, hashes.SHA256())
        )
        san = card_sign_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        sign = (
            _builder(SIGN, self.pki.sign.root, card_sign_cert.subject, sign_key, not_before, not_after,
                     f"{ocsp_base}/sign")
            .add_extension(_key_usage(non_repudiation=True), critical=True)
            .add_extension(san.value, critical=san.critical)
            .sign(self._sign_key, hashes.SHA256())
        )
        return PhoneCertificates(auth, sign)
