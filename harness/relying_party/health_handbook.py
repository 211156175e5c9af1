"""The electronic maternal and child health handbook (母子健康手帳; planning document: 群馬県前橋市): a parent logs in
with the card and sees the children's vaccinations and check-ups — only their own children's, each view audited."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field

from harness.pki import checks, testpki

from .card_login import CardRefused, CardVerifier


@dataclass(frozen=True)
class HealthRecord:
    child: str
    kind: str  # "vaccination", "checkup"
    date: str
    detail: str


@dataclass
class HealthHandbook:
    authority_url: str
    test_pki: testpki.TestPki
    parents: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # auth serial → (parent, children)
    records: list[HealthRecord] = field(default_factory=list)
    audit: list[tuple[str, str]] = field(default_factory=list)  # (parent, child) per view
    sessions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cards = CardVerifier(self.authority_url, self.test_pki)
        self._lock = threading.Lock()

    def register_parent(self, parent: str, auth_cert_der: bytes, children: list[str]) -> None:
        serial = checks.load_certificate(auth_cert_der).serial_number
        with self._lock:
            self.parents[serial] = (parent, tuple(children))

    def add_record(self, record: HealthRecord) -> None:
        with self._lock:
            self.records.append(record)

    def challenge(self) -> tuple[str, bytes]:
        return self.cards.challenge()

    def login(self, challenge_id: str, auth_cert_der: bytes, signature: bytes) -> str:
        cert = self.cards.verify(challenge_id, auth_cert_der, signature)
        with self._lock:
            if cert.serial_number not in self.parents:
                raise CardRefused("not_registered", "this card belongs to no registered parent")
            token = secrets.token_hex(16)
            self.sessions[token] = self.parents[cert.serial_number][0]
        return token

    def view(self, session: str) -> dict[str, list[HealthRecord]]:
        with self._lock:
            parent = self.sessions.get(session)
            if parent is None:
                raise CardRefused("no_session", "log in with the card first")
            children = next(kids for name, kids in self.parents.values() if name == parent)
            shown = {child: [r for r in self.records if r.child == child] for child in children}
            self.audit.extend((parent, child) for child in children)
            return shown
