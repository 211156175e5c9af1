"""Keywords for three more services of the planning document, each at its own reader with the ceremony suites'
card and authority: school-gate touches told to parents (mail, TV), the maternal and child health handbook, event
tickets from the kiosk with ticketless entry."""

from __future__ import annotations

from robotlibcore import keyword

from devices import DeviceError
from harness.relying_party.card_login import CardRefused
from harness.relying_party.health_handbook import HealthHandbook, HealthRecord
from harness.relying_party.school_gate import SchoolGate
from harness.relying_party.tickets import TicketOffice

from .ceremony_state import CeremonyComponent


class LocalServiceKeywords(CeremonyComponent):
    def _get(self, key: str, kind: type):
        service = self.ctx.extensions.get(key)
        if not isinstance(service, kind):
            raise DeviceError(f"no {key} service: call 'Start Local Services' first")
        return service

    @keyword
    def start_local_services(self) -> None:
        """School gate, health handbook and ticket office, all checking cards at the running authority."""
        url, test_pki = self._server().url, self._server_authority().pki
        self.ctx.extensions.update(school_gate=SchoolGate(url, test_pki), handbook=HealthHandbook(url, test_pki),
                                   tickets=TicketOffice(url, test_pki))

    def _refused(self, code: str, action) -> None:
        try:
            action()
        except CardRefused as exc:
            if exc.code != code:
                raise AssertionError(f"refused with {exc.code} ({exc}), expected {code}") from None
            return
        raise AssertionError(f"accepted, expected a refusal ({code})")

    # -- school gate ---------------------------------------------------------------------------------------
    @keyword
    def register_card_holder_as_child(self, child: str, name: str, parent_mail: str, parent_stb: str) -> None:
        """The card in the reader is ``child``'s; the parent is told at ``parent_mail`` and on ``parent_stb``."""
        self._get("school_gate", SchoolGate).register_child(child, name, self._card_auth_certificate(), parent_mail,
                                                             parent_stb)

    @keyword
    def touch_card_at_gate(self, gate: str, direction: str) -> bool:
        """A tap at the gate (``in`` or ``out``), no PIN; returns False for a double tap that told nobody."""
        return self._get("school_gate", SchoolGate).touch(gate, direction, self._card_auth_certificate()) is not None

    @keyword
    def gate_touch_should_be_refused(self, gate: str, code: str) -> None:
        """Fails unless the gate refuses the card with ``code`` (``revoked``, ``not_registered``)."""
        cert = self._card_auth_certificate()
        self._refused(code, lambda: self._get("school_gate", SchoolGate).touch(gate, "in", cert))

    @keyword
    def parent_should_have_mails(self, parent_mail: str, *texts: str) -> None:
        """Fails unless the parent received exactly these mails, in order."""
        got = [text for to, text in self._get("school_gate", SchoolGate).mails if to == parent_mail]
        if got != list(texts):
            raise AssertionError(f"{parent_mail} received {got}, expected {list(texts)}")

    @keyword
    def parent_tv_history_should_be(self, parent_stb: str, *lines: str) -> None:
        """Fails unless the parent's TV shows exactly this history."""
        got = self._get("school_gate", SchoolGate).tv.get(parent_stb, [])
        if got != list(lines):
            raise AssertionError(f"TV {parent_stb} shows {got}, expected {list(lines)}")

    # -- maternal and child health handbook ------------------------------------------------------------------------
    @keyword
    def register_card_holder_as_parent(self, parent: str, *children: str) -> None:
        """The card in the reader is ``parent``'s, whose handbook covers ``children``."""
        self._get("handbook", HealthHandbook).register_parent(parent, self._card_auth_certificate(), list(children))

    @keyword
    def add_health_record(self, child: str, kind: str, date: str, detail: str) -> None:
        """A vaccination or check-up entered by the clinic or the health centre."""
        self._get("handbook", HealthHandbook).add_record(HealthRecord(child, kind, date, detail))

    @keyword
    def view_health_handbook_with_card(self) -> dict[str, list[str]]:
        """Logs in with the card (auth PIN, signature) and returns each child's records as ``date kind detail``."""
        handbook = self._get("handbook", HealthHandbook)
        challenge_id, challenge = handbook.challenge()
        cert, signature = self._card_answers(challenge)
        try:
            session = handbook.login(challenge_id, cert, signature)
        except CardRefused as exc:
            raise AssertionError(f"login refused: {exc.code}: {exc}") from None
        return {child: [f"{r.date} {r.kind} {r.detail}" for r in records]
                for child, records in handbook.view(session).items()}

    @keyword
    def health_handbook_login_should_be_refused(self, code: str) -> None:
        """Fails unless logging in with the card is refused with ``code`` (``revoked``, ``not_registered``)."""
        handbook = self._get("handbook", HealthHandbook)
        challenge_id, challenge = handbook.challenge()
        cert, signature = self._card_answers(challenge)
        self._refused(code, lambda: handbook.login(challenge_id, cert, signature))

    @keyword
    def health_views_audited_should_be(self, count: int) -> None:
        """Fails unless the handbook audited exactly ``count`` (parent, child) views."""
        audit = self._get("handbook", HealthHandbook).audit
        if len(audit) != int(count):
            raise AssertionError(f"{len(audit)} audited views, expected {count}: {audit}")

    # -- event tickets ------------------------------------------------------------------------------------------------
    @keyword
    def open_ticket_sales(self, event: str, seats: int) -> None:
        """The kiosk sells ``seats`` tickets for ``event``."""
        self._get("tickets", TicketOffice).capacity[event] = int(seats)

    @keyword
    def buy_ticket_at_kiosk_with_card(self, event: str) -> str:
        """The kiosk issues a ticket bound to the card (auth PIN, signature); returns the ticket id."""
        office = self._get("tickets", TicketOffice)
        challenge_id, challenge = office.challenge()
        cert, signature = self._card_answers(challenge)
        try:
            return office.issue(event, challenge_id, cert, signature).id
        except CardRefused as exc:
            raise AssertionError(f"the kiosk refused: {exc.code}: {exc}") from None

    @keyword
    def enter_venue_with_card(self, event: str) -> str:
        """Ticketless entry: the gate's reader, auth PIN and signature; returns the ticket that admitted."""
        office = self._get("tickets", TicketOffice)
        challenge_id, challenge = office.challenge()
        cert, signature = self._card_answers(challenge)
        try:
            return office.enter(event, challenge_id, cert, signature).id
        except CardRefused as exc:
            raise AssertionError(f"the gate refused: {exc.code}: {exc}") from None

    @keyword
    def venue_entry_should_be_refused(self, event: str, code: str) -> None:
        """Fails unless the venue gate refuses the card with ``code`` (``no_ticket``, ``already_entered``…)."""
        office = self._get("tickets", TicketOffice)
        challenge_id, challenge = office.challenge()
        cert, signature = self._card_answers(challenge)
        self._refused(code, lambda: office.enter(event, challenge_id, cert, signature))

    @keyword
    def ticket_purchase_should_be_refused(self, event: str, code: str) -> None:
        """Fails unless the kiosk refuses the card with ``code`` (``sold_out``, ``revoked``…)."""
        office = self._get("tickets", TicketOffice)
        challenge_id, challenge = office.challenge()
        cert, signature = self._card_answers(challenge)
        self._refused(code, lambda: office.issue(event, challenge_id, cert, signature))
