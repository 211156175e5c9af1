"""Who a card's answer to a challenge proves: the JPKI 利用者証明 checks a relying party makes.

The auth certificate must follow the JPKI profile, chain to the test auth root, sign the challenge,
and be good by OCSP (a real responder over HTTP, with a nonce) and by the CRL. Every failure is a
:class:`~harness.relying_party.records.Refused` with a stable code.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request

from cryptography import x509

from harness.pki import checks, profile, revocation, testpki

from .records import Identity, Refused

OCSP_TIMEOUT = 5.0


def verify_identity(test_pki: testpki.TestPki, certificate: bytes, signature: bytes, challenge: bytes, *,
                    ocsp_url: str, check_crl: bool, holder_by_cn: dict[str, str]) -> Identity:
    """The identity a signed challenge proves (platform ID still empty: linking is the platform's)."""
    try:
        cert = checks.load_certificate(certificate)
    except checks.PkiError as exc:
        raise Refused("bad_certificate", str(exc), 400) from None
    problems = profile.auth_profile_problems(cert)
    if problems:
        raise Refused("not_auth_certificate", f"not a JPKI auth certificate: {problems[0]}")
    try:
        root = checks.verify_chain(cert, [test_pki.auth_root])
    except checks.PkiError as exc:
        raise Refused("untrusted", str(exc)) from None
    try:
        checks.verify_signature(cert, signature, data=challenge)
    except checks.PkiError as exc:
        raise Refused("bad_signature", str(exc), 401) from None
    ocsp_status = ocsp_status_of(ocsp_url, cert, root)
    crl_status = revocation.check_crl(cert, test_pki.auth.crl, root) if check_crl else ocsp_status
    if revocation.RevocationStatus.REVOKED in (ocsp_status, crl_status):
        raise Refused("revoked", f"certificate {cert.serial_number:x} is revoked "
                                 f"(OCSP {ocsp_status.value}, CRL {crl_status.value})")
    if ocsp_status is not revocation.RevocationStatus.GOOD:
        raise Refused("revocation_unknown", f"OCSP says {ocsp_status.value} for {cert.serial_number:x}")
    cn = profile.auth_identifier(cert)
    return Identity("", cn, cert.serial_number, holder_by_cn.get(cn, ""), cert)


def ocsp_status_of(ocsp_url: str, cert: x509.Certificate, issuer: x509.Certificate) -> revocation.RevocationStatus:
    """Asks the auth CA's responder under ``ocsp_url`` (``…/ocsp``); an unreachable or bad answer is a refusal."""
    if not ocsp_url:
        raise Refused("revocation_unavailable", "no OCSP responder configured", 503)
    nonce = os.urandom(16)
    request = urllib.request.Request(f"{ocsp_url}/auth",
                                     data=revocation.build_ocsp_request(cert, issuer, nonce=nonce),
                                     headers={"Content-Type": "application/ocsp-request"})
    try:
        with urllib.request.urlopen(request, timeout=OCSP_TIMEOUT) as answer:
            der = answer.read()
    except (urllib.error.URLError, OSError) as exc:
        raise Refused("revocation_unavailable", f"OCSP responder unreachable: {exc}", 503) from None
    try:
        return revocation.check_ocsp_response(der, cert, issuer, nonce=nonce)
    except checks.PkiError as exc:
        raise Refused("revocation_unavailable", f"OCSP answer rejected: {exc}", 503) from None
