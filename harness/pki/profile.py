"""The JPKI certificate profile (JPKI-FACTS §6): what a card's auth and sign certificates carry.

The holder attributes of a sign certificate, the auth certificate's identifier, the DER strings they
are written in, and how a certificate departs from the profile. :mod:`harness.pki.generate` builds
the test hierarchy from the same constants.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from harness.pki.checks import PkiError, authority_key_id, crl_distribution_names, extension

# §6: policy of the auth certificate (critical); the sign policy OID is the test hierarchy's choice.
AUTH_POLICY_OID = x509.ObjectIdentifier("1.2.392.200149.8.5.1.3.30")
SIGN_POLICY_OID = x509.ObjectIdentifier("1.2.392.200149.8.5.1.1.10")
# §6: holder attributes in the sign certificate's SubjectAltName, as otherName entries.
HOLDER_ATTRIBUTE_OIDS: dict[str, x509.ObjectIdentifier] = {
    "name": x509.ObjectIdentifier("1.2.392.200149.8.5.5.1"),
    "name_substitute": x509.ObjectIdentifier("1.2.392.200149.8.5.5.2"),
    "sex": x509.ObjectIdentifier("1.2.392.200149.8.5.5.3"),
    "birth_date": x509.ObjectIdentifier("1.2.392.200149.8.5.5.4"),
    "address": x509.ObjectIdentifier("1.2.392.200149.8.5.5.5"),
    "address_substitute": x509.ObjectIdentifier("1.2.392.200149.8.5.5.6"),
}
AUTH_CN_LENGTH = 23  # §6: the auth certificate's only CN is a 23-character identifier
RSA_BITS = 2048
RSA_EXPONENT = 65537

_PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_STRING_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x1E: "utf-16-be"}


def _der_header(tag: int, length: int) -> bytes:
    if length < 0x80:
        return bytes([tag, length])
    size = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size


def der_utf8_string(text: str) -> bytes:
    """DER UTF8String, the encoding of the name and address otherName values."""
    raw = text.encode("utf-8")
    return _der_header(0x0C, len(raw)) + raw


def der_printable_string(text: str) -> bytes:
    """DER PrintableString, the encoding of the sex and birth date otherName values (ASCII digits)."""
    if not set(text) <= _PRINTABLE:
        raise ValueError(f"{text!r} is not a PrintableString")
    raw = text.encode("ascii")
    return _der_header(0x13, len(raw)) + raw


def decode_der_string(der: bytes) -> str:
    """Text of a DER UTF8String, PrintableString, IA5String or BMPString."""
    if len(der) < 2 or der[0] not in _STRING_TAGS:
        raise PkiError(f"not a DER string: {der[:4].hex()}")
    length, pos = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    if pos + length != len(der):
        raise PkiError(f"DER string length {length} does not match its {len(der) - pos} content bytes")
    try:
        return der[pos:].decode(_STRING_TAGS[der[0]])
    except UnicodeDecodeError as exc:
        raise PkiError(f"DER string does not decode: {exc}") from None


def holder_attributes(sign_cert: x509.Certificate) -> dict[str, str]:
    """The JPKI otherName SAN entries of a sign certificate, keyed like ``HOLDER_ATTRIBUTE_OIDS``.

    Empty when the certificate carries none (an auth certificate must carry none, §6).
    """
    ext = extension(sign_cert, x509.SubjectAlternativeName)
    if ext is None:
        return {}
    keys = {oid: key for key, oid in HOLDER_ATTRIBUTE_OIDS.items()}
    return {
        keys[other.type_id]: decode_der_string(other.value)
        for other in ext.value.get_values_for_type(x509.OtherName)
        if other.type_id in keys
    }


def auth_identifier(auth_cert: x509.Certificate) -> str:
    """The auth certificate's CN: the holder's identifier, the only personal datum it carries (§6)."""
    names = auth_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise PkiError(f"auth certificate has {len(names)} CNs, expected one")
    return str(names[0].value)


def _common_problems(cert: x509.Certificate, policy: x509.ObjectIdentifier) -> list[str]:
    problems = []
    if cert.version is not x509.Version.v3:
        problems.append(f"version is {cert.version.name}, not v3")
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSA_WITH_SHA256:
        problems.append(f"signature algorithm {cert.signature_algorithm_oid.dotted_string} is not sha256WithRSA")
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        problems.append(f"key is {type(key).__name__}, not RSA")
    elif key.key_size != RSA_BITS or key.public_numbers().e != RSA_EXPONENT:
        problems.append(f"key is RSA-{key.key_size} e={key.public_numbers().e}, not RSA-2048 e=65537")
    policies = extension(cert, x509.CertificatePolicies)
    if policies is None or policy not in [p.policy_identifier for p in policies.value]:
        problems.append(f"CertificatePolicies lacks {policy.dotted_string}")
    elif not policies.critical:
        problems.append("CertificatePolicies is not critical")
    if not any(isinstance(n, x509.DirectoryName) for n in crl_distribution_names(cert)):
        problems.append("no CRL distribution point given as a DirName")
    aia = extension(cert, x509.AuthorityInformationAccess)
    if aia is None or not any(d.access_method == x509.AuthorityInformationAccessOID.OCSP for d in aia.value):
        problems.append("AuthorityInformationAccess has no OCSP URL")
    if authority_key_id(cert) is None:
        problems.append("no AuthorityKeyIdentifier")
    end = cert.not_valid_after_utc
    if (end.hour, end.minute, end.second) != (14, 59, 59):
        problems.append(f"notAfter {end:%H:%M:%S}Z is not 14:59:59Z")
    return problems


def auth_profile_problems(cert: x509.Certificate) -> list[str]:
    """How an auth certificate departs from the JPKI profile (§6); empty when it conforms."""
    problems = _common_problems(cert, AUTH_POLICY_OID)
    oids = [attr.oid for attr in cert.subject]
    if oids != [NameOID.COUNTRY_NAME, NameOID.COMMON_NAME]:
        problems.append(f"subject is {cert.subject.rfc4514_string()}, expected only C=JP and CN")
    else:
        if cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value != "JP":
            problems.append("subject C is not JP")
        cn = auth_identifier(cert)
        if len(cn) != AUTH_CN_LENGTH:
            problems.append(f"CN {cn!r} has {len(cn)} characters, not {AUTH_CN_LENGTH}")
    ku = extension(cert, x509.KeyUsage)
    if ku is None or not ku.critical or not ku.value.digital_signature:
        problems.append("KeyUsage is not critical digitalSignature")
    eku = extension(cert, x509.ExtendedKeyUsage)
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku.value:
        problems.append("ExtendedKeyUsage lacks clientAuth")
    if holder_attributes(cert):
        problems.append("carries holder attributes in SubjectAltName")
    return problems


def sign_profile_problems(cert: x509.Certificate) -> list[str]:
    """How a sign certificate departs from the test hierarchy's profile (§6); empty when it conforms."""
    problems = _common_problems(cert, SIGN_POLICY_OID)
    ku = extension(cert, x509.KeyUsage)
    if ku is None or not ku.critical or not (ku.value.digital_signature and ku.value.content_commitment):
        problems.append("KeyUsage is not critical digitalSignature+nonRepudiation")
    missing = {"name", "sex", "birth_date", "address"} - set(holder_attributes(cert))
    if missing:
        problems.append(f"SubjectAltName lacks {', '.join(sorted(missing))}")
    return problems


