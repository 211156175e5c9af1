"""Event tickets issued at the convenience-store kiosk and ticketless entry with the card (planning document ①:
コンビニのキオスク端末からのチケット等の交付, 会場時におけるチケットレスサービス).

Both the kiosk and the venue gate have the card sign a challenge with the auth key (after the auth PIN), so a copied
certificate gets nobody in. One ticket per card and event (the kiosk asked again returns the same ticket); a ticket
admits once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from harness.pki import testpki

from .card_login import CardRefused, CardVerifier


@dataclass
class Ticket:
    id: str
    event: str
    holder_serial: int
    entered: bool = False


@dataclass
class TicketOffice:
    authority_url: str
    test_pki: testpki.TestPki
    capacity: dict[str, int] = field(default_factory=dict)  # event → seats
    tickets: dict[str, Ticket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cards = CardVerifier(self.authority_url, self.test_pki)
        self._lock = threading.Lock()

    def challenge(self) -> tuple[str, bytes]:
        return self.cards.challenge()

    def issue(self, event: str, challenge_id: str, auth_cert_der: bytes, signature: bytes) -> Ticket:
        cert = self.cards.verify(challenge_id, auth_cert_der, signature)
        with self._lock:
            if event not in self.capacity:
                raise CardRefused("no_event", f"no event {event}")
            mine = next((t for t in self.tickets.values()
                         if t.event == event and t.holder_serial == cert.serial_number), None)
            if mine is not None:
                return mine
            if sum(1 for t in self.tickets.values() if t.event == event) >= self.capacity[event]:
                raise CardRefused("sold_out", f"{event} is sold out")
            ticket = Ticket(f"{event}-{len(self.tickets) + 1:04d}", event, cert.serial_number)
            self.tickets[ticket.id] = ticket
            return ticket

    def enter(self, event: str, challenge_id: str, auth_cert_der: bytes, signature: bytes) -> Ticket:
        cert = self.cards.verify(challenge_id, auth_cert_der, signature)
        with self._lock:
            ticket = next((t for t in self.tickets.values()
                           if t.event == event and t.holder_serial == cert.serial_number), None)
            if ticket is None:
                raise CardRefused("no_ticket", f"this card holds no ticket for {event}")
            if ticket.entered:
                raise CardRefused("already_entered", f"ticket {ticket.id} has been used")
            ticket.entered = True
            return ticket
