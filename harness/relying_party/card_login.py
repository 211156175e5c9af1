"""What every card-using service of the planning document does at its reader: a one-time challenge, the card's
signature over it with the auth key, the certificate's chain to the auth CA and its status by OCSP at the issuing
authority. Services differ only in what they do with the holder once known."""

from __future__ import annotations

import secrets
import threading

from cryptography import x509

from harness.authority.client import AuthorityClient, AuthorityError
from harness.pki import checks, revocation, testpki


class CardRefused(Exception):
    """``code``: ``no_challenge``, ``bad_card``, ``revoked``, ``unreachable`` (or a service's own)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CardVerifier:
    def __init__(self, authority_url: str, test_pki: testpki.TestPki) -> None:
        self.authority = AuthorityClient(authority_url)
        self.pki = test_pki
        self._challenges: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def challenge(self) -> tuple[str, bytes]:
        challenge_id, value = secrets.token_hex(8), secrets.token_bytes(32)
        with self._lock:
            self._challenges[challenge_id] = value
        return challenge_id, value

    def status(self, cert: x509.Certificate, kind: str = "auth") -> revocation.RevocationStatus:
        """Chain to the CA of ``kind`` and OCSP at the authority (nonce checked)."""
        root = self.pki.auth.root if kind == "auth" else self.pki.sign.root
        try:
            checks.verify_chain(cert, [root])
            nonce = secrets.token_bytes(8)
            answer = self.authority.ocsp(kind, revocation.build_ocsp_request(cert, root, nonce=nonce))
            return revocation.check_ocsp_response(answer, cert, root, nonce=nonce)
        except checks.PkiError as exc:
            raise CardRefused("bad_card", str(exc)) from None
        except AuthorityError as exc:
            raise CardRefused("unreachable", str(exc)) from None

    def good_certificate(self, cert_der: bytes, kind: str = "auth") -> x509.Certificate:
        """The certificate, if it chains and OCSP says good (a card read without its PIN: identification only)."""
        try:
            cert = checks.load_certificate(cert_der)
        except checks.PkiError as exc:
            raise CardRefused("bad_card", str(exc)) from None
        if self.status(cert, kind) is not revocation.RevocationStatus.GOOD:
            raise CardRefused("revoked", f"the card's {kind} certificate is not good")
        return cert

    def verify(self, challenge_id: str, auth_cert_der: bytes, signature: bytes) -> x509.Certificate:
        """The auth certificate of a card that signed this (one-time) challenge and is not revoked."""
        with self._lock:
            value = self._challenges.pop(challenge_id, None)
        if value is None:
            raise CardRefused("no_challenge", "unknown or used challenge")
        try:
            cert = checks.load_certificate(auth_cert_der)
            checks.verify_signature(cert, signature, data=value)
        except checks.PkiError as exc:
            raise CardRefused("bad_card", str(exc)) from None
        if self.status(cert) is not revocation.RevocationStatus.GOOD:
            raise CardRefused("revoked", "the card's auth certificate is not good")
        return cert
