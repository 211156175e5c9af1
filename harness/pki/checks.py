"""Certificate and signature checks a relying party makes on JPKI certificates (JPKI-FACTS §4, §6).

Loading, signature and chain checks raise ``PkiError`` with a one-line message so a suite failure
says what is wrong, not just that something is. Only the test hierarchy (``O=JPKI-TEST``, generated
by :mod:`harness.pki.generate`) and real JPKI certificates are in scope: RSA keys, PKCS#1 v1.5
signatures. The small readers here (``extension``, ``describe``…) are shared by the package's
revocation and profile checks.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15

from harness import fixtures

# DER of AlgorithmIdentifier+OCTET STRING header, per hash (RFC 8017 §9.2 note 1).
DIGEST_INFO_PREFIXES: dict[str, bytes] = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class PkiError(ValueError):
    """A certificate, signature, CRL or OCSP response that fails a check; one-line message."""


# --- loading -------------------------------------------------------------------------------


def load_certificate(data: bytes) -> x509.Certificate:
    """Parses a DER or PEM certificate; trailing zero fill (card EFs, §2) is ignored for DER."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(_strip_der_padding(data))
    except ValueError as exc:
        raise PkiError(f"not a certificate ({len(data)} bytes): {exc}") from None


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """Parses a DER or PEM CRL."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PkiError(f"not a CRL ({len(data)} bytes): {exc}") from None


def load_private_key(path: Path | str) -> rsa.RSAPrivateKey:
    """Loads an unencrypted PEM or DER RSA private key (the test keys are committed in clear)."""
    data = Path(path).read_bytes()
    try:
        return fixtures.load_fixture_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PkiError(f"{path}: not an unencrypted RSA private key: {exc}") from None


def _strip_der_padding(data: bytes) -> bytes:
    """Cuts a DER SEQUENCE to its encoded length, so a whole zero-filled EF can be passed."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        return data[: 2 + first]
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return data
    return data[: 2 + count + int.from_bytes(data[2 : 2 + count], "big")]


# --- signatures ----------------------------------------------------------------------------


def hash_algorithm(alg: str) -> hashes.HashAlgorithm:
    """The hash named ``alg`` (``sha256``, ``SHA-256``…); an unknown name is a ``PkiError``."""
    name = alg.lower().replace("-", "").replace("_", "")
    try:
        return _HASHES[name]()
    except KeyError:
        raise PkiError(f"unsupported hash {alg!r}; known: {', '.join(_HASHES)}") from None


def digest_info(data: bytes, alg: str = "sha256") -> bytes:
    """DigestInfo of ``data``: what the host sends the card to sign (§4; 51 bytes for SHA-256)."""
    algorithm = hash_algorithm(alg)
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return DIGEST_INFO_PREFIXES[algorithm.name] + digest.finalize()


def describe(cert: x509.Certificate) -> str:
    """How a message names a certificate: its subject, or its serial when the subject is empty."""
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"


def rsa_public_key(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PkiError(f"{describe(cert)} has a {type(key).__name__}, JPKI uses RSA")
    return key


def verify_signature(
    cert: x509.Certificate,
    signature: bytes,
    *,
    digest_info: bytes | None = None,
    data: bytes | None = None,
    hash_alg: str = "sha256",
) -> None:
    """Checks a card signature under ``cert``'s key.

    With ``data``: plain RSASSA-PKCS1-v1_5 over the data with ``hash_alg``. With
    ``digest_info``: the signature must open to a type-01 block around exactly that
    DigestInfo, since the card pads whatever DigestInfo the host sent (§4) and
    ``hash_alg`` is then not used.
    """
    if (digest_info is None) == (data is None):
        raise TypeError("give exactly one of digest_info= or data=")
    key = rsa_public_key(cert)
    expected = (key.key_size + 7) // 8
    if len(signature) != expected:
        raise PkiError(f"signature is {len(signature)} bytes, a {key.key_size}-bit key gives {expected}")
    if data is not None:
        try:
            key.verify(signature, data, PKCS1v15(), hash_algorithm(hash_alg))
        except InvalidSignature:
            raise PkiError(f"signature does not verify over the data ({hash_alg}) "
                           f"under {describe(cert)}") from None
        return
    assert digest_info is not None
    try:
        recovered = key.recover_data_from_signature(signature, PKCS1v15(), None)
    except InvalidSignature:
        raise PkiError(f"signature does not open to a PKCS#1 v1.5 type-01 block "
                       f"under {describe(cert)}") from None
    if not hmac.compare_digest(recovered, digest_info):
        raise PkiError(f"signature carries a different DigestInfo ({len(recovered)} bytes, "
                       f"{recovered[-8:].hex()}… vs {digest_info[-8:].hex()}…)")


# --- chains --------------------------------------------------------------------------------


def utc(at: datetime | None) -> datetime:
    """``at`` as an aware UTC time; None is now, a naive time is taken as UTC."""
    if at is None:
        return datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def extension(cert: x509.Certificate | x509.CertificateRevocationList, cls: type) -> x509.Extension | None:
    """The extension of class ``cls``, or None when absent (most checks report absence themselves)."""
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def subject_key_id(cert: x509.Certificate) -> bytes | None:
    ext = extension(cert, x509.SubjectKeyIdentifier)
    return ext.value.digest if ext else None


def authority_key_id(cert: x509.Certificate | x509.CertificateRevocationList) -> bytes | None:
    ext = extension(cert, x509.AuthorityKeyIdentifier)
    return ext.value.key_identifier if ext else None


def check_validity(cert: x509.Certificate, at: datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise PkiError(f"{describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}")
    if at > cert.not_valid_after_utc:
        raise PkiError(f"{describe(cert)} expired at {cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")


def check_ca(cert: x509.Certificate, *, crl: bool = False) -> None:
    bc = extension(cert, x509.BasicConstraints)
    if bc is None or not bc.value.ca:
        raise PkiError(f"{describe(cert)} is not a CA (BasicConstraints CA:TRUE missing)")
    ku = extension(cert, x509.KeyUsage)
    if ku is not None and not (ku.value.crl_sign if crl else ku.value.key_cert_sign):
        raise PkiError(f"{describe(cert)} KeyUsage lacks {'cRLSign' if crl else 'keyCertSign'}")


def verify_chain(
    cert: x509.Certificate, roots: Sequence[x509.Certificate], at: datetime | None = None
) -> x509.Certificate:
    """Returns the root in ``roots`` that issued ``cert``, checking signature and validity at ``at``.

    The issuer is chosen by AuthorityKeyIdentifier ↔ SubjectKeyIdentifier because several
    root generations share one DN (§6); the DN is only used when ``cert`` has no AKI.
    """
    when = utc(at)
    aki = authority_key_id(cert)
    if aki is not None:
        candidates = [root for root in roots if subject_key_id(root) == aki]
        if not candidates:
            raise PkiError(f"no root has key id {aki.hex()} (the AuthorityKeyIdentifier of {describe(cert)})")
    else:
        candidates = [root for root in roots if root.subject == cert.issuer]
        if not candidates:
            raise PkiError(f"no root is named {cert.issuer.rfc4514_string()}")
    failures = []
    for root in candidates:
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature) as exc:
            failures.append(str(exc) or type(exc).__name__)
            continue
        check_ca(root)
        check_validity(root, when)
        check_validity(cert, when)
        return root
    raise PkiError(f"{describe(cert)} is not signed by {cert.issuer.rfc4514_string()} "
                   f"({'; '.join(failures)})")


def crl_distribution_names(cert: x509.Certificate) -> list[x509.GeneralName]:
    """Every name of the certificate's CRL distribution points (a JPKI one is a DirName, §6)."""
    ext = extension(cert, x509.CRLDistributionPoints)
    return [name for dp in (ext.value if ext else []) for name in (dp.full_name or [])]
