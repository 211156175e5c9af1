"""The relying party's platform: who logged in, what they did, and the audit log — no HTTP here.

Authentication follows the JPKI 利用者証明 pattern: the platform issues a challenge, the terminal
has the card sign it with the auth key, and the platform checks the signature, the chain to the
test auth root, OCSP (a real responder over HTTP) and the CRL. The auth certificate's CN is then
linked to a platform ID (first login creates the link; its serial is kept for eligibility look-ups).

Every state change is a transaction: ``begin`` validates and holds it pending, the terminal has the
card sign the transaction's confirmation text, and ``commit`` checks everything again and applies
all its effects under one lock — or none. A card pulled mid-flow means no commit: the terminal
aborts, or the pending transaction expires. Either way the audit log says so.
"""

from __future__ import annotations

import base64
import itertools
import os
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from harness import fixtures
from harness.pki import checks, profile, revocation, testpki

DATA_FILE = fixtures.relying_party_dir() / "platform.toml"
OCSP_TIMEOUT = 5.0


class Refused(Exception):
    """A request the platform turns down; ``code`` is stable for tests, the message one line."""

    def __init__(self, code: str, message: str, http_status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: str
    terminal: str
    event: str
    outcome: str
    service: str = ""
    platform_id: str = ""
    tx: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Identity:
    platform_id: str
    cn: str
    serial: int
    holder: str
    certificate: x509.Certificate = field(repr=False)


@dataclass
class Session:
    token: str
    terminal: str
    identity: Identity
    expires: float


@dataclass
class Challenge:
    id: str
    terminal: str
    service: str
    value: bytes
    expires: float


@dataclass
class Transaction:
    id: str
    terminal: str
    service: str
    params: dict[str, Any]
    session: str
    platform_id: str
    summary: str
    confirm: bytes
    expires: float
    status: str = "pending"  # pending → committed | aborted | expired | refused
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "terminal": self.terminal, "service": self.service, "params": self.params,
                "platform_id": self.platform_id, "summary": self.summary, "status": self.status,
                "reason": self.reason, "result": self.result}


@dataclass
class PlatformConfig:
    ocsp_url: str = ""  # base URL of the responder (``…/ocsp``); "" → the caller must set it before use
    data_file: Path = DATA_FILE
    pki_dir: Path = testpki.DEFAULT_PKI_DIR
    challenge_ttl: float = 60.0
    session_ttl: float = 900.0
    tx_ttl: float = 120.0
    check_crl: bool = True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Platform:
    """Thread-safe state of the relying party. The HTTP server and tests call it directly."""

    def __init__(self, config: PlatformConfig | None = None) -> None:
        self.config = config or PlatformConfig()
        self.pki = testpki.load_test_pki(self.config.pki_dir)
        data = tomllib.loads(self.config.data_file.read_text("utf-8"))
        self.services: dict[str, list[str]] = data.get("services", {})
        self.facilities: dict[str, dict[str, Any]] = data.get("facilities", {})
        self.documents: dict[str, dict[str, Any]] = data.get("documents", {})
        self.shelters: dict[str, dict[str, Any]] = data.get("shelters", {})
        self.watch_notify: str = data.get("watch", {}).get("notify", "")
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
        # committed effects: what a half-done transaction must never leave behind
        self.bookings: dict[str, str] = {}  # "facility/date/slot" → platform ID
        self.payments: list[dict[str, Any]] = []
        self.issued: list[dict[str, Any]] = []
        self.watch_log: list[dict[str, Any]] = []
        self.occupancy: dict[str, list[str]] = {name: [] for name in self.shelters}

    # -- audit ------------------------------------------------------------------------------
    def record(self, terminal: str, event: str, outcome: str, **details: str) -> AuditRecord:
        with self._lock:
            entry = AuditRecord(len(self._audit) + 1, _now_iso(), terminal, event, outcome, **details)
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
                "bookings": dict(self.bookings),
                "payments": [dict(p) for p in self.payments],
                "issued": [dict(i) for i in self.issued],
                "watch_log": [dict(w) for w in self.watch_log],
                "occupancy": {k: list(v) for k, v in self.occupancy.items()},
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
            identity = self._verify_identity(certificate, signature, challenge.value)
        except Refused as exc:
            self.record(terminal, "login", "refused", service=challenge.service, detail=f"{exc.code}: {exc}")
            raise
        with self._lock:
            created = identity.cn not in self.links
            if created:
                self.links[identity.cn] = f"PF-{len(self.links) + 1:06d}"
            identity.platform_id = self.links[identity.cn]
            self.serials[identity.platform_id] = identity.serial
            session = Session(_b64(os.urandom(24)), terminal, identity, time.monotonic() + self.config.session_ttl)
            self._sessions[session.token] = session
        self.record(terminal, "login", "ok", service=challenge.service, platform_id=identity.platform_id,
                    detail=f"link {'created' if created else 'existing'}; serial {identity.serial:x}")
        return session

    def _verify_identity(self, certificate: bytes, signature: bytes, challenge: bytes) -> Identity:
        try:
            cert = checks.load_certificate(certificate)
        except checks.PkiError as exc:
            raise Refused("bad_certificate", str(exc), 400) from None
        problems = profile.auth_profile_problems(cert)
        if problems:
            raise Refused("not_auth_certificate", f"not a JPKI auth certificate: {problems[0]}")
        try:
            root = checks.verify_chain(cert, [self.pki.auth_root])
        except checks.PkiError as exc:
            raise Refused("untrusted", str(exc)) from None
        try:
            checks.verify_signature(cert, signature, data=challenge)
        except checks.PkiError as exc:
            raise Refused("bad_signature", str(exc), 401) from None
        ocsp_status = self._ocsp_status(cert, root)
        crl_status = revocation.check_crl(cert, self.pki.auth.crl, root) if self.config.check_crl else ocsp_status
        if revocation.RevocationStatus.REVOKED in (ocsp_status, crl_status):
            raise Refused("revoked", f"certificate {cert.serial_number:x} is revoked "
                                     f"(OCSP {ocsp_status.value}, CRL {crl_status.value})")
        if ocsp_status is not revocation.RevocationStatus.GOOD:
            raise Refused("revocation_unknown", f"OCSP says {ocsp_status.value} for {cert.serial_number:x}")
        cn = profile.auth_identifier(cert)
        return Identity("", cn, cert.serial_number, self.holder_by_cn.get(cn, ""), cert)

    def _ocsp_status(self, cert: x509.Certificate, issuer: x509.Certificate) -> revocation.RevocationStatus:
        if not self.config.ocsp_url:
            raise Refused("revocation_unavailable", "no OCSP responder configured", 503)
        nonce = os.urandom(16)
        request = urllib.request.Request(f"{self.config.ocsp_url}/auth",
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
            check, summary = self._plan(service)
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
                    checks.verify_signature(session.identity.certificate, signature, data=tx.confirm)
                except checks.PkiError as exc:
                    raise Refused("bad_signature", f"confirmation signature: {exc}", 401) from None
                check, _ = self._plan(tx.service)
                check(session, tx.params)
            except Refused as exc:
                tx.status, tx.reason = "refused", exc.code
                self.record(terminal, "tx_commit", "refused", service=tx.service, platform_id=tx.platform_id,
                            tx=tx.id, detail=f"{exc.code}: {exc}")
                raise
            tx.result = self._apply(tx, session)
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

    # -- per-service rules: (check, summary); effects in _apply ---------------------------------------
    def _plan(self, service: str) -> tuple[Callable[[Session, dict], None], Callable[[Session, dict], str]]:
        plans = {
            "facility_booking": (self._check_booking, self._summary_booking),
            "watch_check_in": (lambda s, p: None, lambda s, p: f"見守りチェックイン: {p.get('status', '元気')}"),
            "certificate_issuance": (self._check_issuance, self._summary_issuance),
            "payment": (self._check_payment, lambda s, p: f"お支払い {int(p['amount']):,}円 ({p.get('purpose', '')})"),
            "shelter_check_in": (self._check_shelter_in, lambda s, p: f"入所: {self.shelters[p['shelter']]['name']}"),
            "shelter_check_out": (self._check_shelter_out, lambda s, p: f"退所: {self.shelters[p['shelter']]['name']}"),
        }
        if service not in plans:
            raise Refused("unknown_service", f"unknown service {service!r}", 400)
        return plans[service]

    def _param(self, params: dict, key: str, table: dict | None = None) -> Any:
        if key not in params:
            raise Refused("bad_request", f"missing parameter {key!r}", 400)
        value = params[key]
        if table is not None and value not in table:
            raise Refused("bad_request", f"unknown {key} {value!r}; known: {', '.join(table)}", 400)
        return value

    def _check_booking(self, session: Session, params: dict) -> None:
        facility = self.facilities[self._param(params, "facility", self.facilities)]
        slot = self._param(params, "slot")
        if slot not in facility["slots"]:
            raise Refused("bad_request", f"{facility['name']} has no slot {slot}", 400)
        key = f"{params['facility']}/{self._param(params, 'date')}/{slot}"
        if key in self.bookings:
            raise Refused("slot_taken", f"{facility['name']} {params['date']} {slot} is already booked", 409)

    def _summary_booking(self, session: Session, params: dict) -> str:
        facility = self.facilities[params["facility"]]
        return f"施設予約: {facility['name']} {params['date']} {params['slot']} 利用料 {facility['fee']}円"

    def _check_issuance(self, session: Session, params: dict) -> None:
        self._param(params, "document", self.documents)
        copies = self._param(params, "copies")
        if not isinstance(copies, int) or not 1 <= copies <= 10:
            raise Refused("bad_request", "copies must be 1..10", 400)
        # 券面事項 read by the kiosk must match the resident registry (the holder of the linked certificate)
        holder = session.identity.holder
        expected = self.pki.holder(holder).data if holder else {}
        for field_name in ("name", "address"):
            if params.get(field_name) != expected.get(field_name):
                raise Refused("holder_mismatch", f"the card's {field_name} differs from the resident registry")

    def _summary_issuance(self, session: Session, params: dict) -> str:
        document = self.documents[params["document"]]
        copies = int(params["copies"])
        return f"証明書交付: {document['name']} {copies}通 手数料 {document['fee'] * copies}円"

    def _check_payment(self, session: Session, params: dict) -> None:
        amount = self._param(params, "amount")
        if not isinstance(amount, int) or not 1 <= amount <= 1_000_000:
            raise Refused("bad_request", "amount must be 1..1,000,000 yen", 400)

    def _check_shelter_in(self, session: Session, params: dict) -> None:
        shelter = self._param(params, "shelter", self.shelters)
        occupants = self.occupancy[shelter]
        if session.identity.platform_id in occupants:
            raise Refused("already_checked_in", f"already checked in at {self.shelters[shelter]['name']}", 409)
        if len(occupants) >= self.shelters[shelter]["capacity"]:
            raise Refused("shelter_full", f"{self.shelters[shelter]['name']} is full", 409)

    def _check_shelter_out(self, session: Session, params: dict) -> None:
        shelter = self._param(params, "shelter", self.shelters)
        if session.identity.platform_id not in self.occupancy[shelter]:
            raise Refused("not_checked_in", f"not checked in at {self.shelters[shelter]['name']}", 409)

    def _apply(self, tx: Transaction, session: Session) -> dict[str, Any]:
        """All effects of one transaction; called under the lock after every check passed."""
        pid, p = tx.platform_id, tx.params
        receipt = {"tx": tx.id, "platform_id": pid, "at": _now_iso()}
        if tx.service == "facility_booking":
            fee = self.facilities[p["facility"]]["fee"]
            self.bookings[f"{p['facility']}/{p['date']}/{p['slot']}"] = pid
            self.payments.append({**receipt, "amount": fee, "purpose": "facility_booking"})
            return {"booking": f"{p['facility']}/{p['date']}/{p['slot']}", "fee": fee}
        if tx.service == "watch_check_in":
            self.watch_log.append({**receipt, "status": p.get("status", "元気"), "notified": self.watch_notify})
            return {"notified": self.watch_notify}
        if tx.service == "certificate_issuance":
            document = self.documents[p["document"]]
            fee = document["fee"] * int(p["copies"])
            number = f"DOC-{len(self.issued) + 1:06d}"
            self.issued.append({**receipt, "number": number, "document": p["document"], "copies": p["copies"],
                                "name": p["name"], "address": p["address"]})
            self.payments.append({**receipt, "amount": fee, "purpose": f"certificate:{p['document']}"})
            return {"number": number, "fee": fee, "document": document["name"]}
        if tx.service == "payment":
            self.payments.append({**receipt, "amount": int(p["amount"]), "purpose": p.get("purpose", "")})
            return {"receipt": f"RC-{len(self.payments):06d}", "amount": int(p["amount"])}
        if tx.service == "shelter_check_in":
            self.occupancy[p["shelter"]].append(pid)
            return {"shelter": p["shelter"], "name": self.shelters[p["shelter"]]["name"],
                    "occupants": len(self.occupancy[p["shelter"]])}
        if tx.service == "shelter_check_out":
            self.occupancy[p["shelter"]].remove(pid)
            return {"shelter": p["shelter"], "name": self.shelters[p["shelter"]]["name"],
                    "occupants": len(self.occupancy[p["shelter"]])}
        raise Refused("unknown_service", f"unknown service {tx.service!r}", 400)
