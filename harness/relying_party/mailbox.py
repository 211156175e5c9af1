"""The e-mailbox (電子私書箱) address-change service of the planning document ⑤ (日本郵便, 日本生命, NHK …).

The platform operator receives revocation information from the issuing authority (its revocation feed). A sign
certificate revoked because the holder moved starts a change notice (変更案内) for the member who enrolled that
certificate. The member logs in with the card's auth certificate (which a move does not revoke: it carries no
address, JPKI-FACTS §6), approves the notice with the new address, and the mailbox sends it to every business the
member consented to beforehand — exactly once each, across retried approvals, lost acknowledgements and businesses
that are down for a while (each delivery has a fixed id; the business keeps one per id).
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from harness.authority.client import AuthorityError
from harness.pki import checks, revocation, testpki

from .card_login import CardRefused, CardVerifier

MOVE_REASONS = frozenset({"holder_moved"})  # the revocation reasons that mean a new address


MailboxRefused = CardRefused  # a request the mailbox turns down; ``code`` is stable for tests

@dataclass(frozen=True)
class Member:
    user: str
    auth_serial: int
    sign_serial: int
    businesses: tuple[str, ...]


@dataclass
class Notice:
    id: str
    user: str
    reason: str
    status: str = "pending"  # pending → approved
    new_address: str = ""


@dataclass
class Delivery:
    id: str
    notice: str
    business: str
    status: str = "pending"  # pending → delivered
    attempts: int = 0


@dataclass
class _State:
    members: dict[str, Member] = field(default_factory=dict)
    notices: dict[str, Notice] = field(default_factory=dict)
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    approvals: dict[str, str] = field(default_factory=dict)  # request id → notice id
    sessions: dict[str, str] = field(default_factory=dict)  # token → user
    cursor: int = 0


class Mailbox:
    def __init__(self, authority_url: str, test_pki: testpki.TestPki, inboxes: dict[str, str]) -> None:
        self.cards = CardVerifier(authority_url, test_pki)
        self.inboxes = dict(inboxes)
        self._state = _State()
        self._lock = threading.RLock()

    # -- enrolment and the revocation feed ----------------------------------------------------------------------
    def enrol(self, user: str, auth_cert_der: bytes, sign_cert_der: bytes, businesses: list[str]) -> Member:
        """A member registers both card certificates and the businesses to notify (the prior consent)."""
        unknown = [b for b in businesses if b not in self.inboxes]
        if unknown:
            raise MailboxRefused("unknown_business", f"no business {', '.join(unknown)}")
        auth, sign = checks.load_certificate(auth_cert_der), checks.load_certificate(sign_cert_der)
        for cert, kind in ((auth, "auth"), (sign, "sign")):
            if self.cards.status(cert, kind) is not revocation.RevocationStatus.GOOD:
                raise MailboxRefused("revoked", f"the card's {kind} certificate is not good")
        member = Member(user, auth.serial_number, sign.serial_number, tuple(businesses))
        with self._lock:
            self._state.members[user] = member
        return member

    def sync(self) -> list[Notice]:
        """Reads the authority's revocation feed from where it left off; a move of a member starts one notice."""
        try:
            feed = self.cards.authority.get(f"/api/revocations?since={self._state.cursor}")["revocations"]
        except AuthorityError as exc:
            raise MailboxRefused("unreachable", str(exc)) from None
        started = []
        with self._lock:
            by_sign = {m.sign_serial: m for m in self._state.members.values()}
            for entry in feed:
                self._state.cursor = max(self._state.cursor, int(entry["seq"]))
                member = by_sign.get(int(entry["serial"], 16))
                notice_id = f"move-{entry['serial']}"
                if member is None or entry["reason"] not in MOVE_REASONS or notice_id in self._state.notices:
                    continue
                notice = Notice(notice_id, member.user, entry["reason"])
                self._state.notices[notice_id] = notice
                started.append(notice)
        return started

    def notices(self, user: str) -> list[Notice]:
        with self._lock:
            return [n for n in self._state.notices.values() if n.user == user]

    # -- login with the auth certificate ------------------------------------------------------------------------
    def challenge(self) -> tuple[str, bytes]:
        return self.cards.challenge()

    def login(self, challenge_id: str, auth_cert_der: bytes, signature: bytes) -> str:
        cert = self.cards.verify(challenge_id, auth_cert_der, signature)
        with self._lock:
            member = next((m for m in self._state.members.values() if m.auth_serial == cert.serial_number), None)
            if member is None:
                raise MailboxRefused("not_a_member", "no member enrolled this card")
            token = secrets.token_hex(16)
            self._state.sessions[token] = member.user
        return token

    # -- approval and delivery ----------------------------------------------------------------------------------
    def approve(self, session: str, notice_id: str, new_address: str, request_id: str) -> list[Delivery]:
        """Approves the notice once (a retry with the same request id, or of an approved notice, changes nothing)
        and sends what is pending."""
        with self._lock:
            user = self._state.sessions.get(session)
            notice = self._state.notices.get(notice_id)
            if user is None:
                raise MailboxRefused("no_session", "log in first")
            if notice is None or notice.user != user:
                raise MailboxRefused("no_notice", f"no notice {notice_id} for this member")
            if not new_address.strip():
                raise MailboxRefused("bad_request", "the new address is empty")
            if request_id not in self._state.approvals and notice.status == "pending":
                notice.status, notice.new_address = "approved", new_address
                for business in self._state.members[user].businesses:
                    delivery_id = f"{notice_id}:{business}"
                    self._state.deliveries.setdefault(delivery_id, Delivery(delivery_id, notice_id, business))
            self._state.approvals[request_id] = notice_id
        self.deliver_pending()
        return self.deliveries(notice_id)

    def deliveries(self, notice_id: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self._state.deliveries.values() if d.notice == notice_id]

    def deliver_pending(self) -> int:
        """One attempt per pending delivery; returns how many are still pending."""
        with self._lock:
            pending = [d for d in self._state.deliveries.values() if d.status == "pending"]
        for delivery in pending:
            notice = self._state.notices[delivery.notice]
            body = {"delivery": delivery.id, "user": notice.user, "new_address": notice.new_address}
            delivery.attempts += 1
            if _post(f"{self.inboxes[delivery.business]}/notices", body):
                delivery.status = "delivered"
        with self._lock:
            return sum(1 for d in self._state.deliveries.values() if d.status == "pending")


def _post(url: str, body: dict) -> bool:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
