"""Evacuation orders with the resident's name on the TV and shelter check-in tying back to them (planning document:
徳島県美波町 — テレビ画面に個人名付きの避難指示, 避難所の入所・退所をカードで管理).

Residents are registered with their card's auth certificate serial, their name and their household's set-top box.
An order for an area puts a personal message on each household's TV screen (the set-top box fetches its screen).
At the shelter the resident's card logs in (signature over a challenge with the auth key, OCSP at the authority);
the check-in is tied back to the order, so the dashboard shows who has still not arrived. A second touch of the
same card changes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.pki import checks, testpki

from .card_login import CardRefused, CardVerifier

EvacuationRefused = CardRefused  # codes: no_challenge, bad_card, revoked, unreachable, not_registered


@dataclass(frozen=True)
class Resident:
    resident: str
    name: str
    area: str
    set_top_box: str
    auth_serial: int


@dataclass
class Order:
    id: str
    area: str
    shelter: str
    arrived: dict[str, str] = field(default_factory=dict)  # resident → shelter where they checked in


class EvacuationService:
    def __init__(self, authority_url: str, test_pki: testpki.TestPki) -> None:
        self.cards = CardVerifier(authority_url, test_pki)
        self.residents: dict[str, Resident] = {}
        self.orders: dict[str, Order] = {}
        self.screens: dict[str, list[str]] = {}  # set-top box → lines on its TV, newest last
        self._lock = threading.RLock()

    def register(self, resident: str, name: str, area: str, set_top_box: str, auth_cert_der: bytes) -> Resident:
        cert = checks.load_certificate(auth_cert_der)
        entry = Resident(resident, name, area, set_top_box, cert.serial_number)
        with self._lock:
            self.residents[resident] = entry
            self.screens.setdefault(set_top_box, [])
        return entry

    def issue_order(self, area: str, shelter: str) -> Order:
        """An evacuation order for ``area``: every household there sees it on TV with the resident's own name."""
        with self._lock:
            order = Order(f"order-{len(self.orders) + 1}", area, shelter)
            self.orders[order.id] = order
            for resident in self.residents.values():
                if resident.area == area:
                    self.screens[resident.set_top_box].append(
                        f"【避難指示】{resident.name}様 {area}に避難指示が出ました。避難所: {shelter}")
            return order

    def screen(self, set_top_box: str) -> list[str]:
        with self._lock:
            return list(self.screens.get(set_top_box, []))

    def challenge(self) -> tuple[str, bytes]:
        return self.cards.challenge()

    def check_in(self, shelter: str, challenge_id: str, auth_cert_der: bytes, signature: bytes) -> Resident:
        """The resident's card at the shelter's reader: who it is, and which open order it answers. A revoked card
        is refused (staff check the resident in by hand)."""
        cert = self.cards.verify(challenge_id, auth_cert_der, signature)
        with self._lock:
            resident = next((r for r in self.residents.values() if r.auth_serial == cert.serial_number), None)
            if resident is None:
                raise CardRefused("not_registered", "this card belongs to no registered resident")
            for order in self.orders.values():
                if order.area == resident.area:
                    order.arrived.setdefault(resident.resident, shelter)
            return resident

    def not_arrived(self, order_id: str) -> list[str]:
        """The dashboard: residents of the order's area who have not checked in anywhere."""
        with self._lock:
            order = self.orders[order_id]
            return sorted(r.resident for r in self.residents.values()
                          if r.area == order.area and r.resident not in order.arrived)
