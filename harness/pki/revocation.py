"""Revocation checks: is a JPKI certificate revoked, by its CA's CRL or by OCSP (RFC 6960)?

The client side only; the responder that answers OCSP requests is :mod:`harness.relying_party.ocsp`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from harness.pki.checks import (
    PkiError,
    authority_key_id,
    check_ca,
    check_validity,
    crl_distribution_names,
    describe,
    extension,
    hash_algorithm,
    load_crl,
    rsa_public_key,
    subject_key_id,
    utc,
)

OCSP_CLOCK_SKEW = timedelta(minutes=5)  # tolerated between the responder's clock and ours


class RevocationStatus(enum.Enum):
    """What a CRL or an OCSP response says of one certificate."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


# RevocationStatus ↔ cryptography's OCSP status, both ways (the responder builds with it too).
OCSP_STATUS = {
    RevocationStatus.GOOD: ocsp.OCSPCertStatus.GOOD,
    RevocationStatus.REVOKED: ocsp.OCSPCertStatus.REVOKED,
    RevocationStatus.UNKNOWN: ocsp.OCSPCertStatus.UNKNOWN,
}


def check_crl(
    cert: x509.Certificate,
    crl: x509.CertificateRevocationList | bytes,
    issuer: x509.Certificate,
    at: datetime | None = None,
) -> RevocationStatus:
    """Status of ``cert`` by ``crl``, after checking the CRL is the issuer's, signed and current."""
    if isinstance(crl, bytes):
        crl = load_crl(crl)
    when = utc(at)
    if cert.issuer != issuer.subject:
        raise PkiError(f"{describe(cert)} is issued by {cert.issuer.rfc4514_string()}, "
                       f"not {issuer.subject.rfc4514_string()}")
    if crl.issuer != issuer.subject:
        raise PkiError(f"CRL is issued by {crl.issuer.rfc4514_string()}, not {issuer.subject.rfc4514_string()}")
    crl_aki, ski = authority_key_id(crl), subject_key_id(issuer)
    if crl_aki is not None and ski is not None and crl_aki != ski:
        raise PkiError(f"CRL key id {crl_aki.hex()} is not the issuer's {ski.hex()}")
    check_ca(issuer, crl=True)
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"CRL signature does not verify under {describe(issuer)}")
    if when < crl.last_update_utc:
        raise PkiError(f"CRL thisUpdate {crl.last_update_utc:%Y-%m-%dT%H:%M:%SZ} is in the future")
    if crl.next_update_utc is not None and when > crl.next_update_utc:
        raise PkiError(f"CRL is stale: nextUpdate was {crl.next_update_utc:%Y-%m-%dT%H:%M:%SZ}")
    idp = extension(crl, x509.IssuingDistributionPoint)
    if idp is not None and idp.value.full_name:
        scope = list(idp.value.full_name)
        if not any(name in scope for name in crl_distribution_names(cert)):
            raise PkiError(f"CRL scope does not cover {describe(cert)} (CRL distribution point differs)")
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    return RevocationStatus.REVOKED if entry is not None else RevocationStatus.GOOD


# --- OCSP ----------------------------------------------------------------------------------


def build_ocsp_request(
    cert: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None, hash_alg: str = "sha1"
) -> bytes:
    """DER OCSP request for ``cert``; SHA-1 CertID by default, as responders universally accept."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hash_algorithm(hash_alg))
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _key_hash(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey bits: the ResponderID byKey form (RFC 6960 §4.2.1)."""
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest  # type: ignore[arg-type]


def _is_responder(response: ocsp.OCSPResponse, cert: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        return response.responder_key_hash == _key_hash(cert)
    return response.responder_name == cert.subject


def _ocsp_signer(
    response: ocsp.OCSPResponse,
    issuer: x509.Certificate,
    responder_roots: Sequence[x509.Certificate],
    at: datetime,
) -> x509.Certificate:
    """The certificate authorised to sign this response (RFC 6960 §4.2.2.2)."""
    if _is_responder(response, issuer):
        return issuer
    for trusted in responder_roots:
        if _is_responder(response, trusted):
            return trusted
    for embedded in response.certificates:
        if not _is_responder(response, embedded):
            continue
        try:
            embedded.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise PkiError(f"OCSP responder {describe(embedded)} is not issued by {describe(issuer)}") from None
        eku = extension(embedded, x509.ExtendedKeyUsage)
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku.value:
            raise PkiError(f"OCSP responder {describe(embedded)} lacks EKU OCSPSigning")
        check_validity(embedded, at)
        return embedded
    raise PkiError("OCSP response is signed by a responder that is neither the issuer, "
                   "a trusted responder, nor an embedded delegated responder")


def check_ocsp_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    responder_roots: Sequence[x509.Certificate] = (),
    *,
    at: datetime | None = None,
    nonce: bytes | None = None,
) -> RevocationStatus:
    """Status of ``cert`` from a DER OCSP response, after checking who signed it and when.

    The signer must be the issuer, a certificate in ``responder_roots`` (responders trusted
    by local configuration), or a responder certificate embedded in the response that the
    issuer signed with EKU OCSPSigning. ``nonce``, when given, must be echoed.
    """
    when = utc(at)
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise PkiError(f"not an OCSP response ({len(der)} bytes): {exc}") from None
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise PkiError(f"OCSP responder answered {response.response_status.name}")
    signer = _ocsp_signer(response, issuer, responder_roots, when)
    hash_algorithm = response.signature_hash_algorithm
    if hash_algorithm is None:
        raise PkiError("OCSP response signature algorithm has no hash")
    try:
        rsa_public_key(signer).verify(response.signature, response.tbs_response_bytes, PKCS1v15(),
                                       hash_algorithm)
    except InvalidSignature:
        raise PkiError(f"OCSP response signature does not verify under {describe(signer)}") from None
    single = _single_response_for(response, cert, issuer)
    if single.this_update_utc > when + OCSP_CLOCK_SKEW:
        raise PkiError(f"OCSP thisUpdate {single.this_update_utc:%Y-%m-%dT%H:%M:%SZ} is in the future")
    if single.next_update_utc is not None and when > single.next_update_utc + OCSP_CLOCK_SKEW:
        raise PkiError(f"OCSP response is stale: nextUpdate was {single.next_update_utc:%Y-%m-%dT%H:%M:%SZ}")
    if nonce is not None:
        echoed = _extension_value(response.extensions, x509.OCSPNonce)
        if echoed is None or echoed.nonce != nonce:
            raise PkiError("OCSP response does not echo the request nonce")
    return {v: k for k, v in OCSP_STATUS.items()}[single.certificate_status]


def _extension_value(extensions: x509.Extensions, cls: type) -> object | None:
    try:
        return extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _single_response_for(
    response: ocsp.OCSPResponse, cert: x509.Certificate, issuer: x509.Certificate
) -> ocsp.OCSPSingleResponse:
    for single in response.responses:
        if single.serial_number != cert.serial_number:
            continue
        try:
            probe = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, single.hash_algorithm).build()
        except ValueError:
            continue  # a CertID hash the builder cannot compute cannot be ours to check
        if (single.issuer_name_hash, single.issuer_key_hash) == (probe.issuer_name_hash, probe.issuer_key_hash):
            return single
    raise PkiError(f"OCSP response has no status for serial {cert.serial_number:x} of {describe(issuer)}")


