"""Children's card touches at the school gate, the parents told by mail and on the TV (planning document: 鳥取県南部町,
登下校時にカードをタッチすると保護者にメール, テレビ画面で行動履歴).

A touch reads only the auth certificate (no PIN: a child taps and walks on, as in the pilot with IC cards; the
touch identifies, it does not authenticate) and checks it at the authority. A double tap at the same gate in the
same direction counts once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.pki import checks, testpki

from .card_login import CardRefused, CardVerifier


@dataclass(frozen=True)
class Child:
    child: str
    name: str
    auth_serial: int
    parent_mail: str
    parent_stb: str


@dataclass(frozen=True)
class Touch:
    seq: int
    child: str
    gate: str
    direction: str  # "in" (arrived) or "out" (left)


@dataclass
class SchoolGate:
    authority_url: str
    test_pki: testpki.TestPki
    children: dict[str, Child] = field(default_factory=dict)
    touches: list[Touch] = field(default_factory=list)
    mails: list[tuple[str, str]] = field(default_factory=list)  # (to, text) sent to parents
    tv: dict[str, list[str]] = field(default_factory=dict)  # parent's set-top box → history lines

    def __post_init__(self) -> None:
        self.cards = CardVerifier(self.authority_url, self.test_pki)
        self._lock = threading.Lock()

    def register_child(self, child: str, name: str, auth_cert_der: bytes, parent_mail: str, parent_stb: str) -> None:
        serial = checks.load_certificate(auth_cert_der).serial_number
        with self._lock:
            self.children[child] = Child(child, name, serial, parent_mail, parent_stb)
            self.tv.setdefault(parent_stb, [])

    def touch(self, gate: str, direction: str, auth_cert_der: bytes) -> Touch | None:
        """Records the touch and tells the parent; None for a double tap (nothing new to tell)."""
        if direction not in ("in", "out"):
            raise ValueError("direction must be 'in' or 'out'")
        cert = self.cards.good_certificate(auth_cert_der)
        with self._lock:
            child = next((c for c in self.children.values() if c.auth_serial == cert.serial_number), None)
            if child is None:
                raise CardRefused("not_registered", "this card belongs to no registered child")
            last = next((t for t in reversed(self.touches) if t.child == child.child), None)
            if last is not None and (last.gate, last.direction) == (gate, direction):
                return None
            touch = Touch(len(self.touches) + 1, child.child, gate, direction)
            self.touches.append(touch)
            verb = "に到着しました" if direction == "in" else "を出ました"
            text = f"{child.name}さんが{gate}{verb}"
            self.mails.append((child.parent_mail, text))
            self.tv[child.parent_stb].append(text)
            return touch
