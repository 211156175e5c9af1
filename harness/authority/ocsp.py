"""OCSP for everything the authority knows: the test CAs' card certificates and the phone certificates it issued.

It is the relying party's :class:`~harness.relying_party.ocsp.OcspResponder` (same request parsing, same signed
answers from the delegated responders) with two sources added: the certificates in the authority's database,
and the revocations recorded there (a superseded phone, a revoked card and the phone bound to it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from harness.pki import checks, revocation, testpki
from harness.relying_party.ocsp import OcspResponder

from .store import Store


class _KnownCertificates(dict):
    """The fixture certificates of one CA, then the ones the authority issued (looked up in its database)."""

    def __init__(self, base: dict[int, x509.Certificate], lookup: Callable[[int], x509.Certificate | None]) -> None:
        super().__init__(base)
        self.lookup = lookup

    def get(self, serial, default=None):  # type: ignore[override]
        found = super().get(serial)
        return found if found is not None else (self.lookup(serial) or default)


@dataclass(frozen=True)
class _KeyedHierarchy(testpki.Hierarchy):
    """A hierarchy whose responder key is parsed once (every OCSP answer signs with it)."""

    def ocsp_key(self) -> rsa.RSAPrivateKey:
        return _responder_key(self.ocsp_key_path)


class AuthorityOcsp(OcspResponder):
    """Answers in-process (:meth:`answer`); the authority's HTTP server routes ``/ocsp/<auth|sign>`` here."""

    def __init__(self, test_pki: testpki.TestPki, store: Store) -> None:
        super().__init__(test_pki)
        self.store = store
        for kind in ("auth", "sign"):
            entry = self._authorities[kind]
            entry.hierarchy = _keyed(entry.hierarchy)
            entry.certificates = _KnownCertificates(entry.certificates, self._issued(kind))

    def _issued(self, kind: str) -> Callable[[int], x509.Certificate | None]:
        def lookup(serial: int) -> x509.Certificate | None:
            record = self.store.certificate(f"{serial:x}")
            if record is None or record.kind != kind:
                return None
            return checks.load_certificate(record.der)
        return lookup

    def status_of(self, authority: str, cert: x509.Certificate) -> revocation.RevocationStatus:
        serial = f"{cert.serial_number:x}"
        issued = self.store.certificate(serial)
        if issued is not None:
            revoked = issued.revoked_at is not None
            return revocation.RevocationStatus.REVOKED if revoked else revocation.RevocationStatus.GOOD
        if self.store.card_revocation(serial) is not None:
            return revocation.RevocationStatus.REVOKED
        return super().status_of(authority, cert)


def _keyed(hierarchy: testpki.Hierarchy) -> _KeyedHierarchy:
    return _KeyedHierarchy(**{f.name: getattr(hierarchy, f.name) for f in fields(hierarchy)})


@functools.lru_cache(maxsize=8)
def _responder_key(path: Path) -> rsa.RSAPrivateKey:
    return checks.load_private_key(path)
