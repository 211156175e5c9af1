"""The relying party's platform: who logged in, what they did, and the audit log — no HTTP here.

Authentication follows the JPKI 利用者証明 pattern: the platform issues a challenge, the terminal
has the card sign it with the auth key, and the platform checks the signature, the chain to the
test auth root, OCSP (a real responder over HTTP) and the CRL. The auth certificate's CN is then
linked to a platform ID (first login creates the link; its serial is kept for eligibility look-ups).

Every state change is a transaction: ``begin`` validates and holds it pending, the terminal has the
card sign the transaction's confirmation text, and ``commit`` checks everything again and applies
all its effects under one lock — or none. A card pulled mid-flow means no commit: the terminal
aborts, or the pending transaction expires. Either way the audit log says so.

The certificate checks are :mod:`.identity`, the per-service rules and their effects :mod:`.services`,
the records kept :mod:`.records`; this module holds them together under one lock.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import fixtures
from harness.pki import profile, testpki
from harness.pki.checks import PkiError, verify_signature

from .identity import verify_identity
from .records import AuditRecord, Challenge, Refused, Session, Transaction, b64, now_iso
from .services import ServiceRules

DATA_FILE = fixtures.relying_party_dir() / "platform.toml"


@dataclass
class PlatformConfig:
    ocsp_url: str = ""  # base URL of the responder (``…/ocsp``); "" → the caller must set it before use
    data_file: Path = DATA_FILE
    pki_dir: Path = testpki.DEFAULT_PKI_DIR
    challenge_ttl: float = 60.0
    session_ttl: float = 900.0
    tx_ttl: float = 120.0
    check_crl: bool = True


class Platform:
    """Thread-safe state of the relying party. The HTTP server and tests call it directly."""

    def __init__(self, config: PlatformConfig | None = None) -> None:
        self.config = config or PlatformConfig()
        self.pki = testpki.load_test_pki(self.config.pki_dir)
        data = tomllib.loads(self.config.data_file.read_text("utf-8"))
        self.services: dict[str, list[str]] = data.get("services", {})  # terminal kind → services it may use
        self.rules = ServiceRules(data, self.pki)
        self.health_records: dict[str, list[dict[str, Any]]] = data.get("health_records", {})
        # registries keyed by what a card proves: the auth certificate's CN and serial
        self.holder_by_cn = {profile.auth_identifier(h.auth_cert): name for name, h in self.pki.holders.items()}
        self.insurance_by_serial = {
            self.pki.holder(name).auth_cert.serial_number: entry
            for name, entry in data.get("insurance", {}).items() if name in self.pki.holders
        }
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._audit: list[AuditRecord] = []
        self.links: dict[str, str] = {}  # auth CN → platform ID
        self.serials: dict[str, int] = {}  # platform ID → last auth certificate serial seen
        self._challenges: dict[str, Challenge] = {}
        self._sessions: dict[str, Session] = {}
        self.transactions: dict[str, Transaction] = {}

    # committed effects (kept by the service rules), read by tests comparing before and after a flow
    @property
    def bookings(self) -> dict[str, str]:
        return self.rules.bookings

    @property
    def payments(self) -> list[dict[str, Any]]:
        return self.rules.payments

    @property
    def issued(self) -> list[dict[str, Any]]:
        return self.rules.issued

    @property
    def watch_log(self) -> list[dict[str, Any]]:
        return self.rules.watch_log

    @property
    def occupancy(self) -> dict[str, list[str]]:
        return self.rules.occupancy

    # -- audit ------------------------------------------------------------------------------
    def record(self, terminal: str, event: str, outcome: str, **details: str) -> AuditRecord:
        with self._lock:
            entry = AuditRecord(len(self._audit) + 1, now_iso(), terminal, event, outcome, **details)
            self._audit.append(entry)
            return entry

    def audit(self, *, terminal: str | None = None, event: str | None = None, tx: str | None = None,
              since: int = 0) -> list[AuditRecord]:
        """Audit records after ``since`` (a seq), filtered by terminal, event or transaction."""
        with self._lock:
            return [r for r in self._audit if r.seq > since and (terminal is None or r.terminal == terminal)
                    and (event is None or r.event == event) and (tx is None or r.tx == tx)]

    def last_seq(self) -> int:
        with self._lock:
            return len(self._audit)

    def snapshot(self) -> dict[str, Any]:
        """Every committed effect, for a test comparing before and after a flow."""
        self.expire()
        with self._lock:
            return {
                "links": dict(self.links),
                **self.rules.effects(),
                "pending": sorted(t.id for t in self.transactions.values() if t.status == "pending"),
            }

    # -- housekeeping -------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def expire(self) -> None:
        """Drops stale challenges and sessions; pending transactions past their TTL become ``expired``."""
        now = time.monotonic()
        with self._lock:
            for key in [k for k, c in self._challenges.items() if c.expires < now]:
                del self._challenges[key]
            for key in [k for k, s in self._sessions.items() if s.expires < now]:
                del self._sessions[key]
            for tx in self.transactions.values():
                if tx.status == "pending" and tx.expires < now:
                    tx.status, tx.reason = "expired", "not committed in time"
                    self.record(tx.terminal, "tx_expired", "expired", service=tx.service,
                                platform_id=tx.platform_id, tx=tx.id)

    def _service_allowed(self, terminal_kind: str, service: str) -> None:
        allowed = self.services.get(terminal_kind)
        if allowed is not None and service not in allowed:
            raise Refused("service_not_allowed", f"a {terminal_kind} terminal may not use {service}")

    # -- authentication -----------------------------------------------------------------------
    def challenge(self, terminal: str, service: str) -> Challenge:
        self.expire()
        value = b"JPKI-HIL challenge " + os.urandom(32)
        with self._lock:
            entry = Challenge(self._new_id("CH"), terminal, service, value,
                              time.monotonic() + self.config.challenge_ttl)
            self._challenges[entry.id] = entry
        self.record(terminal, "challenge", "issued", service=service, detail=entry.id)
        return entry

    def authenticate(self, terminal: str, challenge_id: str, certificate: bytes, signature: bytes) -> Session:
        """Checks the card's answer to a challenge; returns a session bound to this terminal."""
        self.expire()
        with self._lock:
            challenge = self._challenges.pop(challenge_id, None)
        if challenge is None or challenge.terminal != terminal:
            self.record(terminal, "login", "refused", detail="unknown or used challenge")
            raise Refused("bad_challenge", "unknown, expired or already used challenge", 400)
        try:
            identity = verify_identity(self.pki, certificate, signature, challenge.value,
                                       ocsp_url=self.config.ocsp_url, check_crl=self.config.check_crl,
                                       holder_by_cn=self.holder_by_cn)
        except Refused as exc:
            self.record(terminal, "login", "refused", service=challenge.service, detail=f"{exc.code}: {exc}")
            raise
        with self._lock:
            created = identity.cn not in self.links
            if created:
                self.links[identity.cn] = f"PF-{len(self.links) + 1:06d}"
            identity.platform_id = self.links[identity.cn]
            self.serials[identity.platform_id] = identity.serial
            session = Session(b64(os.urandom(24)), terminal, identity, time.monotonic() + self.config.session_ttl)
            self._sessions[session.token] = session
        self.record(terminal, "login", "ok", service=challenge.service, platform_id=identity.platform_id,
                    detail=f"link {'created' if created else 'existing'}; serial {identity.serial:x}")
        return session

    def session(self, token: str, terminal: str) -> Session:
        self.expire()
        with self._lock:
            found = self._sessions.get(token)
        if found is None or found.terminal != terminal:
            raise Refused("no_session", "not logged in (unknown or expired session)", 401)
        return found

    def end_session(self, token: str, terminal: str) -> None:
        with self._lock:
            found = self._sessions.pop(token, None)
        if found is not None:
            self.record(terminal, "logout", "ok", platform_id=found.identity.platform_id)

    # -- read-only services ----------------------------------------------------------------------
    def read_health_records(self, session: Session) -> list[dict[str, Any]]:
        records = [dict(r) for r in self.health_records.get(session.identity.holder, [])]
        self.record(session.terminal, "view", "ok", service="health_records",
                    platform_id=session.identity.platform_id, detail=f"{len(records)} records")
        return records

    def eligibility(self, session: Session) -> dict[str, Any]:
        """オンライン資格確認: the insurance linked to the auth certificate's serial."""
        entry = self.insurance_by_serial.get(session.identity.serial)
        if entry is None:
            self.record(session.terminal, "eligibility", "refused", service="eligibility",
                        platform_id=session.identity.platform_id, detail="no insurance linked")
            raise Refused("not_insured", "no health insurance is linked to this card", 404)
        result = {"insured_number": f"{entry['symbol']}-{entry['number']}", "insurer": entry["insurer"],
                  "copay": entry["copay"], "valid_until": entry["valid_until"],
                  "valid": entry["valid_until"] >= datetime.now(UTC).date().isoformat(),
                  "serial": f"{session.identity.serial:x}"}
        self.record(session.terminal, "eligibility", "ok", service="eligibility",
                    platform_id=session.identity.platform_id,
                    detail=f"serial {session.identity.serial:x} → {entry['insurer']} {result['insured_number']}")
        return result

    # -- transactions ------------------------------------------------------------------------------
    def begin(self, session: Session, service: str, params: dict[str, Any], kind: str = "") -> Transaction:
        """Validates a service request and holds it pending; nothing is applied yet."""
        self.expire()
        try:
            if kind:
                self._service_allowed(kind, service)
            check, summary = self.rules.plan(service)
            with self._lock:
                check(session, params)
            text = summary(session, params)
        except Refused as exc:
            self.record(session.terminal, "tx_begin", "refused", service=service,
                        platform_id=session.identity.platform_id, detail=f"{exc.code}: {exc}")
            raise
        with self._lock:
            tx_id = self._new_id("TX")
            confirm = f"{tx_id}\n{service}\n{text}\n".encode() + os.urandom(16).hex().encode()
            tx = Transaction(tx_id, session.terminal, service, dict(params), session.token,
                             session.identity.platform_id, text, confirm, time.monotonic() + self.config.tx_ttl)
            self.transactions[tx_id] = tx
        self.record(session.terminal, "tx_begin", "pending", service=service,
                    platform_id=session.identity.platform_id, tx=tx_id, detail=text)
        return tx

    def _pending(self, tx_id: str, terminal: str) -> Transaction:
        self.expire()
        tx = self.transactions.get(tx_id)
        if tx is None or tx.terminal != terminal:
            raise Refused("no_transaction", f"no transaction {tx_id} for this terminal", 404)
        if tx.status != "pending":
            raise Refused(f"tx_{tx.status}", f"transaction {tx_id} is {tx.status}", 409)
        return tx

    def commit(self, tx_id: str, terminal: str, signature: bytes) -> Transaction:
        """Applies every effect of the transaction, or none: checks run again under the lock."""
        with self._lock:
            tx = self._pending(tx_id, terminal)
            session = self._sessions.get(tx.session)
            try:
                if session is None:
                    raise Refused("no_session", "the session ended before the commit", 401)
                try:
                    verify_signature(session.identity.certificate, signature, data=tx.confirm)
                except PkiError as exc:
                    raise Refused("bad_signature", f"confirmation signature: {exc}", 401) from None
                check, _ = self.rules.plan(tx.service)
                check(session, tx.params)
            except Refused as exc:
                tx.status, tx.reason = "refused", exc.code
                self.record(terminal, "tx_commit", "refused", service=tx.service, platform_id=tx.platform_id,
                            tx=tx.id, detail=f"{exc.code}: {exc}")
                raise
            tx.result = self.rules.apply(tx)
            tx.status = "committed"
        self.record(terminal, "tx_commit", "committed", service=tx.service, platform_id=tx.platform_id, tx=tx.id,
                    detail=tx.summary)
        return tx

    def abort(self, tx_id: str, terminal: str, reason: str) -> Transaction:
        with self._lock:
            tx = self._pending(tx_id, terminal)
            tx.status, tx.reason = "aborted", reason[:200]
        self.record(terminal, "tx_abort", "aborted", service=tx.service, platform_id=tx.platform_id, tx=tx.id,
                    detail=tx.reason)
        return tx
