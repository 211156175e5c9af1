"""The virtual issuing authority (J-LIS stand-in) for the phone download ceremony, without its HTTP layer.

Each step runs in one database transaction (:meth:`Authority._step`): the request id is looked up first (a
retry gets the answer already given, byte for byte), then the step's checks and writes, then the answer is
stored with them. ``fault`` is called at ``(step, "before_commit")`` and ``(step, "after_commit")`` so tests can
crash the authority at either point.

Rules (JPKI-FACTS §8): one live phone per card; a new registration revokes the old phone's certificates;
revoking the card revokes the phone's. The card is named by its sign certificate, which signs the application.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness import fixtures
from harness.pki import checks, revocation, testpki

from . import protocol
from .issuer import Issuer, KeyRejected, load_phone_key
from .ocsp import AuthorityOcsp
from .store import Ceremony, Store, Tx

OPEN_STATES = ("open", "applied")
REASON_SUPERSEDED = "superseded"  # a newer phone of the same card
REASON_CARD_REVOKED = "card_revoked"
REASON_CANCELLED = "cancelled"
REASON_EXPIRED = "expired"


class Refused(Exception):
    """A step the authority turns down; ``code`` is stable for tests. 4xx answers other than 400 are final."""

    def __init__(self, code: str, message: str, http_status: int = 403, ceremony: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.ceremony = ceremony

    def body(self) -> dict[str, Any]:
        body = {"error": self.code, "message": str(self)}
        return body | {"ceremony": self.ceremony} if self.ceremony else body


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class AuthorityConfig:
    db_path: Path
    pki_dir: Path = field(default_factory=fixtures.pki_dir)
    ceremony_ttl: float = 600.0  # seconds an unfinished ceremony lives; then it is cancelled and undone
    clock: Callable[[], datetime] = _utcnow  # tests move it (an expired card, an abandoned ceremony)


@functools.lru_cache(maxsize=4)
def _hierarchy(pki_dir: Path) -> tuple[testpki.TestPki, Issuer]:
    """The test PKI and its CA keys, parsed once per process: a restart of the authority re-reads only its records."""
    test_pki = testpki.load_test_pki(pki_dir)
    return test_pki, Issuer(test_pki)


class Authority:
    def __init__(self, config: AuthorityConfig) -> None:
        self.config = config
        self.store = Store(config.db_path)
        self.pki, self.issuer = _hierarchy(Path(config.pki_dir).resolve())
        self.ocsp = AuthorityOcsp(self.pki, self.store)
        self.ocsp_base = "http://127.0.0.1:8089/ocsp"  # the server sets its real URL
        self.fault: Callable[[str, str], None] | None = None

    # -- plumbing -------------------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.config.clock()

    def _step(self, step: str, request_id: str, work: Callable[[Tx, float], tuple[int, dict[str, Any]]]
              ) -> tuple[int, dict[str, Any]]:
        if not isinstance(request_id, str) or not request_id:
            raise Refused("bad_request", "request_id missing", 400)
        with self.store.transaction() as tx:
            answered = tx.answered(request_id)
            if answered is not None:
                if answered[0] != step:
                    raise Refused("bad_request", f"request id {request_id} was used for step {answered[0]}", 400)
                return answered[1], answered[2]
            now = self.now().timestamp()
            self._sweep(tx, now)
            try:
                status, body = work(tx, now)
            except Refused as refusal:
                if refusal.http_status == 400:
                    raise  # a malformed request changes nothing and is not remembered
                status, body = refusal.http_status, refusal.body()
                tx.event(now, "refused", body.get("ceremony", ""), f"{step}: {refusal.code}")
            if self.fault is not None:
                self.fault(step, "before_commit")
            tx.remember(request_id, step, status, body)
        if self.fault is not None:
            self.fault(step, "after_commit")
        return status, body

    def _sweep(self, tx: Tx, now: float) -> None:
        """Cancels ceremonies left unfinished longer than the TTL, revoking what they had issued."""
        for stale in tx.stale_ceremonies(now - self.config.ceremony_ttl):
            self._undo(tx, stale, now, REASON_EXPIRED)

    def _undo(self, tx: Tx, ceremony: Ceremony, now: float, reason: str) -> list[str]:
        revoked = tx.revoke_certificates_of(ceremony.id, now, reason)
        tx.revoke_binding(ceremony.id, now, reason)
        tx.set_status(ceremony.id, "cancelled", now, reason)
        tx.event(now, "cancelled", ceremony.id, f"{reason}; revoked {len(revoked)} certificate(s)")
        return revoked

    @staticmethod
    def _ceremony(tx: Tx, ceremony_id: str) -> Ceremony:
        ceremony = tx.ceremony(ceremony_id)
        if ceremony is None:
            raise Refused("no_ceremony", f"no ceremony {ceremony_id}", 404)
        return ceremony

    def _check_card(self, cert: x509.Certificate) -> None:
        """The card's sign certificate: in date, issued by the sign CA, not revoked by CRL, OCSP or this authority."""
        at = self.now()
        if at > cert.not_valid_after_utc:
            raise Refused("expired", f"the card's sign certificate expired at {cert.not_valid_after_utc:%Y-%m-%d}")
        if at < cert.not_valid_before_utc:
            raise Refused("not_yet_valid", "the card's sign certificate is not valid yet")
        try:
            checks.verify_chain(cert, [self.pki.sign.root], at=at)
        except checks.PkiError as exc:
            raise Refused("untrusted", f"the card's sign certificate does not chain to the sign CA: {exc}") from None
        by_crl = revocation.check_crl(cert, self.pki.sign.crl, self.pki.sign.root, at=at)
        request = revocation.build_ocsp_request(cert, self.pki.sign.root)
        by_ocsp = revocation.check_ocsp_response(self.ocsp.answer("sign", request), cert, self.pki.sign.root, at=at)
        if revocation.RevocationStatus.REVOKED in (by_crl, by_ocsp):
            raise Refused("revoked", f"the card's sign certificate is revoked (CRL {by_crl.value}, "
                                     f"OCSP {by_ocsp.value})")

    # -- steps ------------------------------------------------------------------------------------------------
    def open(self, request_id: str, phone_id: str) -> tuple[int, dict[str, Any]]:
        """Step 1: a ceremony for one phone, with the nonce its application must carry."""
        if not isinstance(phone_id, str) or not phone_id or len(phone_id) > 64:
            raise Refused("bad_request", "phone_id must be a string of 1-64 characters", 400)

        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            ceremony_id, nonce = secrets.token_hex(8), secrets.token_bytes(16)
            tx.add_ceremony(ceremony_id, phone_id, nonce, now)
            tx.event(now, "opened", ceremony_id, f"phone {phone_id}")
            return 201, {"ceremony": ceremony_id, "nonce": protocol.b64(nonce), "status": "open"}

        return self._step(protocol.STEP_OPEN, request_id, work)

    def apply(self, request_id: str, ceremony_id: str, card_cert_der: bytes, auth_key_der: bytes,
              sign_key_der: bytes, signature: bytes) -> tuple[int, dict[str, Any]]:
        """Step 2: the application signed by the card's sign key over the nonce and the phone's two keys."""
        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            ceremony = self._ceremony(tx, ceremony_id)
            if ceremony.status not in OPEN_STATES:
                raise Refused("wrong_state", f"ceremony {ceremony_id} is {ceremony.status}", 409)
            try:
                card_cert = checks.load_certificate(card_cert_der)
                load_phone_key(auth_key_der, "auth")
                load_phone_key(sign_key_der, "sign")
            except (checks.PkiError, KeyRejected) as exc:
                tx.set_status(ceremony_id, "refused", now, "bad_application")
                raise Refused("bad_application", str(exc), 422, ceremony_id) from None
            try:
                self._check_card(card_cert)
                data = protocol.application_bytes(ceremony_id, ceremony.nonce, ceremony.phone_id, auth_key_der,
                                                  sign_key_der)
                try:
                    checks.verify_signature(card_cert, signature, data=data)
                except checks.PkiError as exc:
                    raise Refused("bad_signature", f"the application's signature does not verify: {exc}") from None
            except Refused as refusal:
                tx.set_status(ceremony_id, "refused", now, refusal.code)
                refusal.ceremony = ceremony_id
                raise
            serial = f"{card_cert.serial_number:x}"
            tx.set_application(ceremony_id, serial, card_cert.public_bytes(serialization.Encoding.DER),
                               auth_key_der, sign_key_der, now)
            tx.event(now, "applied", ceremony_id, f"card sign certificate {serial}")
            return 200, {"ceremony": ceremony_id, "status": "applied", "card": serial}

        return self._step(protocol.STEP_APPLY, request_id, work)

    def issue(self, request_id: str, ceremony_id: str) -> tuple[int, dict[str, Any]]:
        """Step 3: both phone certificates at once, the old phone of this card revoked in the same transaction."""
        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            ceremony = self._ceremony(tx, ceremony_id)
            if ceremony.status in ("issued", "completed"):
                return 200, self._issued_body(tx, ceremony, [])
            if ceremony.status != "applied":
                raise Refused("wrong_state", f"ceremony {ceremony_id} is {ceremony.status}", 409)
            assert ceremony.card_cert and ceremony.auth_key and ceremony.sign_key and ceremony.card_serial
            card_cert = checks.load_certificate(ceremony.card_cert)
            try:
                self._check_card(card_cert)  # revoked or expired since the application?
            except Refused as refusal:
                tx.set_status(ceremony_id, "refused", now, refusal.code)
                refusal.ceremony = ceremony_id
                raise
            superseded: list[str] = []
            old = tx.live_binding(ceremony.card_serial)
            if old is not None:
                superseded = tx.revoke_certificates_of(old.ceremony_id, now, REASON_SUPERSEDED)
                tx.revoke_binding(old.ceremony_id, now, REASON_SUPERSEDED)
                tx.event(now, "superseded", old.ceremony_id, f"by {ceremony_id}")
            issued = self.issuer.issue(ceremony_id, card_cert, load_phone_key(ceremony.auth_key, "auth"),
                                       load_phone_key(ceremony.sign_key, "sign"), self.now(), self.ocsp_base)
            for kind, cert in (("auth", issued.auth), ("sign", issued.sign)):
                tx.add_certificate(f"{cert.serial_number:x}", kind, ceremony_id,
                                   cert.public_bytes(serialization.Encoding.DER))
            tx.add_binding(ceremony_id, ceremony.card_serial, ceremony.phone_id, now)
            tx.set_status(ceremony_id, "issued", now)
            tx.event(now, "issued", ceremony_id,
                     f"auth {issued.auth.serial_number:x}, sign {issued.sign.serial_number:x}")
            return 200, self._issued_body(tx, ceremony, superseded)

        return self._step(protocol.STEP_ISSUE, request_id, work)

    def _issued_body(self, tx: Tx, ceremony: Ceremony, superseded: list[str]) -> dict[str, Any]:
        certs = {c.kind: c for c in tx.certificates_of(ceremony.id)}
        der = serialization.Encoding.DER
        return {
            "ceremony": ceremony.id,
            "status": "issued",
            "auth_certificate": protocol.b64(certs["auth"].der),
            "sign_certificate": protocol.b64(certs["sign"].der),
            "auth_ca": protocol.b64(self.pki.auth.root.public_bytes(der)),
            "sign_ca": protocol.b64(self.pki.sign.root.public_bytes(der)),
            "superseded": superseded,
        }

    def complete(self, request_id: str, ceremony_id: str) -> tuple[int, dict[str, Any]]:
        """Step 4: the app reports the certificates stored and the PINs set."""
        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            ceremony = self._ceremony(tx, ceremony_id)
            if ceremony.status not in ("issued", "completed"):
                raise Refused("wrong_state", f"ceremony {ceremony_id} is {ceremony.status}", 409)
            if ceremony.status == "issued":
                tx.set_status(ceremony_id, "completed", now)
                tx.event(now, "completed", ceremony_id)
            return 200, {"ceremony": ceremony_id, "status": "completed"}

        return self._step(protocol.STEP_COMPLETE, request_id, work)

    def cancel(self, request_id: str, ceremony_id: str, reason: str = REASON_CANCELLED) -> tuple[int, dict[str, Any]]:
        """The app gives up: nothing of the ceremony stays live (issued certificates are revoked)."""
        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            ceremony = self._ceremony(tx, ceremony_id)
            if ceremony.status == "completed":
                raise Refused("wrong_state", f"ceremony {ceremony_id} is completed: revoke the card or register "
                                             "another phone", 409)
            revoked = [] if ceremony.status in ("cancelled", "refused") else self._undo(tx, ceremony, now, reason)
            return 200, {"ceremony": ceremony_id, "status": "cancelled", "revoked": revoked}

        return self._step(protocol.STEP_CANCEL, request_id, work)

    def revoke_card(self, request_id: str, serial: str,
                    reason: str = REASON_CARD_REVOKED) -> tuple[int, dict[str, Any]]:
        """The card's certificate is revoked (lost, renewed, holder moved): so is the phone bound to it."""
        try:
            serial = f"{int(serial, 16):x}"
        except (TypeError, ValueError):
            raise Refused("bad_request", "serial must be the card certificate's serial in hex", 400) from None

        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            tx.revoke_card(serial, now, reason)
            tx.event(now, "card_revoked", "", f"card certificate {serial}: {reason}")
            revoked: list[str] = []
            phones: list[str] = []
            binding = tx.live_binding(serial)
            if binding is not None:
                revoked = tx.revoke_certificates_of(binding.ceremony_id, now, REASON_CARD_REVOKED)
                tx.revoke_binding(binding.ceremony_id, now, REASON_CARD_REVOKED)
                tx.event(now, "phone_revoked", binding.ceremony_id, f"card {serial} revoked")
                phones.append(binding.ceremony_id)
            return 200, {"card": serial, "revoked_phones": phones, "revoked_certificates": revoked}

        return self._step(protocol.STEP_REVOKE_CARD, request_id, work)

    def housekeeping(self, request_id: str) -> tuple[int, dict[str, Any]]:
        """The periodic job (every step also runs it first): ceremonies past the TTL are cancelled and undone."""
        def work(tx: Tx, now: float) -> tuple[int, dict[str, Any]]:
            return 200, {"ok": True}

        return self._step(protocol.STEP_HOUSEKEEPING, request_id, work)

    # -- views --------------------------------------------------------------------------------------------
    def live_phones(self, card_serial: str) -> list[str]:
        """Ceremony ids of the phones of this card whose certificates are live (never more than one)."""
        return [b.ceremony_id for b in self.store.bindings(card_serial) if b.status == "live"]

    def certificate_status(self, serial: str) -> dict[str, Any]:
        record = self.store.certificate(serial)
        if record is None:
            raise Refused("no_certificate", f"the authority issued no certificate {serial}", 404)
        return {"serial": serial, "kind": record.kind, "ceremony": record.ceremony_id,
                "status": "good" if record.revoked_at is None else "revoked", "reason": record.reason}

    def advance_clock(self, seconds: float) -> None:
        """Moves this authority's clock forward (tests of abandoned ceremonies and expired cards)."""
        base = self.config.clock
        self.config.clock = lambda: base() + timedelta(seconds=seconds)
