"""Keywords for the e-mailbox (電子私書箱) address-change notice: the mailbox, the businesses' inboxes, and the card
holder who enrols, moves, logs in and approves. The card is the ceremony suites' card (``Open Ceremony Card``)
and the authority theirs (``Start Authority``): a move is a revocation at that authority."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from robot.api import logger
from robotlibcore import keyword

from devices import DeviceError
from harness.jpki import JpkiClient, PinKind
from harness.phone_download import PinSource, verify_card_pin
from harness.pki import checks
from harness.relying_party.business import BusinessInbox
from harness.relying_party.mailbox import Delivery, Mailbox, MailboxRefused, Member

from .ceremony_state import CeremonyComponent


@dataclass
class MailboxState:
    mailbox: Mailbox | None = None
    inboxes: dict[str, BusinessInbox] = field(default_factory=dict)
    member: Member | None = None
    session: str = ""
    approval_request: str = ""


class MailboxKeywords(CeremonyComponent):
    @property
    def mailbox_state(self) -> MailboxState:
        return self.ctx.extension("mailbox", MailboxState)

    def _mailbox(self) -> Mailbox:
        if self.mailbox_state.mailbox is None:
            raise DeviceError("no mailbox: call 'Start Mailbox' first")
        return self.mailbox_state.mailbox

    @keyword
    def start_mailbox(self, *businesses: str) -> None:
        """Starts each business's inbox on 127.0.0.1 and the mailbox reading the running authority's feed."""
        self.stop_mailbox()
        state = self.mailbox_state
        state.inboxes = {name: BusinessInbox(name).start() for name in businesses}
        authority = self._server_authority()
        state.mailbox = Mailbox(self._server().url, authority.pki, {n: i.url for n, i in state.inboxes.items()})

    @keyword
    def stop_mailbox(self) -> None:
        """Stops the inboxes and forgets the mailbox. Safe to call when none runs."""
        state = self.mailbox_state
        for inbox in state.inboxes.values():
            inbox.stop()
        self.ctx.extensions["mailbox"] = MailboxState()

    def _card_client(self) -> tuple[JpkiClient, PinSource, PinSource]:
        card = self._device("card")
        client = JpkiClient(card.channel)

        def source(kind: str) -> PinSource:
            return PinSource(lambda: card.pin(kind), card.facts.expendable, card.facts.pin_reserve, card.name,
                             configured=card.pin)

        return client, source("auth"), source("sign")

    @keyword
    def enrol_card_holder_in_mailbox(self, user: str, *businesses: str) -> None:
        """The holder registers the card's two certificates (the sign one after the sign password) and consents to
        notices for ``businesses``."""
        client, _, sign = self._card_client()
        client.select_jpki()
        auth_der = client.read_certificate("auth")
        if not verify_card_pin(client, PinKind.SIGN, sign).ok:
            raise AssertionError("the card refused its sign password")
        sign_der = client.read_certificate("sign")
        try:
            self.mailbox_state.member = self._mailbox().enrol(user, auth_der, sign_der, list(businesses))
        except MailboxRefused as exc:
            raise AssertionError(f"enrolment refused: {exc.code}: {exc}") from None

    @keyword
    def enrolment_should_be_refused(self, user: str, code: str, *businesses: str) -> None:
        """Fails unless enrolling the card in the reader is refused with ``code`` (e.g. ``revoked``)."""
        try:
            self.enrol_card_holder_in_mailbox(user, *businesses)
        except AssertionError as exc:
            if f"refused: {code}:" not in str(exc):
                raise
            return
        raise AssertionError(f"enrolment of {user} was accepted, expected a refusal ({code})")

    @keyword
    def revoke_enrolled_sign_certificate_at_authority(self, reason: str = "holder_moved") -> None:
        """The authority revokes the member's sign certificate (``holder_moved``: the address changed)."""
        member = self.mailbox_state.member
        if member is None:
            raise AssertionError("no member enrolled")
        serial = f"{member.sign_serial:x}"
        self._client().post("/api/cards/revoke", {"request_id": f"mbox-{serial}-{reason}", "serial": serial,
                                                  "reason": reason})

    @keyword
    def sync_mailbox_with_authority(self) -> int:
        """The mailbox reads the authority's revocation feed; returns how many notices it started."""
        return len(self._mailbox().sync())

    @keyword
    def member_should_have_notices(self, user: str, count: int, status: str = "pending") -> None:
        """Fails unless ``user`` has exactly ``count`` notices in ``status`` (``pending`` or ``approved``)."""
        notices = [n for n in self._mailbox().notices(user) if n.status == status]
        if len(notices) != int(count):
            raise AssertionError(f"{user} has {len(notices)} {status} notice(s), expected {count}")

    @keyword
    def log_in_to_mailbox_with_card(self) -> None:
        """Auth PIN (guarded), signature over the mailbox's challenge with the auth key, OCSP at the authority."""
        client, auth, _ = self._card_client()
        mailbox = self._mailbox()
        challenge_id, challenge = mailbox.challenge()
        client.select_jpki()
        if not verify_card_pin(client, PinKind.AUTH, auth).ok:
            raise AssertionError("the card refused its auth PIN")
        cert = client.read_certificate("auth")
        signature = client.sign("auth", checks.digest_info(challenge)).data
        try:
            self.mailbox_state.session = mailbox.login(challenge_id, cert, signature)
        except MailboxRefused as exc:
            raise AssertionError(f"login refused: {exc.code}: {exc}") from None

    @keyword
    def approve_address_change(self, new_address: str, retry: bool = False) -> list[Delivery]:
        """The member approves the pending notice with ``new_address``; ``retry=True`` resends the same request."""
        state = self.mailbox_state
        mailbox = self._mailbox()
        if state.member is None:
            raise AssertionError("no member enrolled")
        pending = [n for n in mailbox.notices(state.member.user) if n.status == "pending"] or \
            mailbox.notices(state.member.user)
        if not pending:
            raise AssertionError("the member has no notice to approve")
        if not retry or not state.approval_request:
            state.approval_request = uuid.uuid4().hex
        deliveries = mailbox.approve(state.session, pending[0].id, new_address, state.approval_request)
        logger.info(", ".join(f"{d.business}: {d.status} after {d.attempts}" for d in deliveries))
        return deliveries

    @keyword
    def deliver_pending_notices(self) -> int:
        """One more delivery round; returns how many deliveries are still pending."""
        return self._mailbox().deliver_pending()

    @keyword
    def business_loses_next_acknowledgement(self, business: str) -> None:
        """The business records the next notice but its answer never reaches the mailbox."""
        self.mailbox_state.inboxes[business].drop_acks += 1

    @keyword
    def business_is_down_for_next_delivery(self, business: str) -> None:
        """The business answers the next delivery with 503 (down); a later round delivers it."""
        self.mailbox_state.inboxes[business].refuse += 1

    @keyword
    def business_should_have_received_address_once(self, business: str, address: str) -> None:
        """Fails unless the business holds exactly one notice, with ``address``, whatever the retries."""
        inbox = self.mailbox_state.inboxes[business]
        received = list(inbox.received.values())
        if len(received) != 1 or received[0].new_address != address:
            raise AssertionError(f"{business} holds {[r.new_address for r in received]} after {inbox.attempts} "
                                 f"attempt(s), expected {address!r} once")

    @keyword
    def business_should_have_received_nothing(self, business: str) -> None:
        """Fails if the business holds any notice."""
        inbox = self.mailbox_state.inboxes[business]
        if inbox.received:
            raise AssertionError(f"{business} received {len(inbox.received)} notice(s)")
