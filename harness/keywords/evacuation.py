"""Keywords for evacuation orders on the TV and shelter check-in with the card (planning document: 美波町). The card
is the ceremony suites' card (``Open Ceremony Card``), the authority theirs (``Start Authority``)."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from robotlibcore import keyword

from devices import DeviceError
from harness.jpki import JpkiClient
from harness.pki import checks
from harness.relying_party.evacuation import EvacuationRefused, EvacuationService

from .ceremony_state import CeremonyComponent


class EvacuationKeywords(CeremonyComponent):
    def _service(self) -> EvacuationService:
        service = self.ctx.extensions.get("evacuation")
        if service is None:
            raise DeviceError("no evacuation service: call 'Start Evacuation Service' first")
        return service

    @keyword
    def start_evacuation_service(self) -> None:
        """A municipality's evacuation service checking cards at the running authority; no residents yet."""
        authority = self._server_authority()
        self.ctx.extensions["evacuation"] = EvacuationService(self._server().url, authority.pki)

    @keyword
    def register_card_holder_as_resident(self, resident: str, name: str, area: str, set_top_box: str) -> None:
        """The card's holder is ``resident`` (called ``name`` in the town's register) in ``area``, with TV set-top
        box ``set_top_box``. The name comes from the register, never from the card's personal data."""
        self._service().register(resident, name, area, set_top_box, self._card_auth_certificate())

    @keyword
    def register_test_holder_as_resident(self, holder: str, resident: str, name: str, area: str,
                                         set_top_box: str) -> None:
        """Another resident, known by a test-PKI holder's auth certificate (no card in the lab for them)."""
        cert = self._server_authority().pki.holder(holder).auth_cert
        self._service().register(resident, name, area, set_top_box, cert.public_bytes(Encoding.DER))

    @keyword
    def revoke_card_auth_certificate_at_authority(self, reason: str = "card_lost") -> None:
        """The authority revokes the auth certificate of the card in the reader (e.g. reported lost)."""
        client = JpkiClient(self._device("card").channel)
        client.select_jpki()
        serial = f"{checks.load_certificate(client.read_certificate('auth')).serial_number:x}"
        self._client().post("/api/cards/revoke", {"request_id": f"evac-{serial}-{reason}", "serial": serial,
                                                  "reason": reason})

    @keyword
    def issue_evacuation_order(self, area: str, shelter: str) -> str:
        """Returns the order's id."""
        return self._service().issue_order(area, shelter).id

    @keyword
    def tv_screen_should_show(self, set_top_box: str, text: str) -> None:
        """Fails unless the set-top box's TV shows ``text`` in one of its messages."""
        lines = self._service().screen(set_top_box)
        if not any(text in line for line in lines):
            raise AssertionError(f"TV of {set_top_box} shows {lines}, not {text!r}")

    @keyword
    def tv_screen_should_be_empty(self, set_top_box: str) -> None:
        """Fails if the set-top box's TV shows any evacuation message."""
        lines = self._service().screen(set_top_box)
        if lines:
            raise AssertionError(f"TV of {set_top_box} shows {lines}")

    def _touch(self, shelter: str):
        service = self._service()
        challenge_id, challenge = service.challenge()
        cert, signature = self._card_answers(challenge)
        return service.check_in(shelter, challenge_id, cert, signature)

    @keyword
    def check_in_at_shelter_with_card(self, shelter: str) -> str:
        """The resident touches the card at the shelter's reader (auth PIN, signature); returns who checked in."""
        try:
            return self._touch(shelter).resident
        except EvacuationRefused as exc:
            raise AssertionError(f"check-in refused: {exc.code}: {exc}") from None

    @keyword
    def shelter_check_in_should_be_refused(self, shelter: str, code: str) -> None:
        """Fails unless the shelter refuses the card with ``code`` (``revoked``, ``not_registered`` …)."""
        try:
            self._touch(shelter)
        except EvacuationRefused as exc:
            if exc.code != code:
                raise AssertionError(f"check-in refused with {exc.code}, expected {code}") from None
            return
        raise AssertionError(f"the shelter accepted the card, expected a refusal ({code})")

    @keyword
    def residents_not_arrived_should_be(self, order: str, *residents: str) -> None:
        """Fails unless exactly ``residents`` of the order's area have not checked in."""
        missing = self._service().not_arrived(order)
        if missing != sorted(residents):
            raise AssertionError(f"not arrived: {missing}, expected {sorted(residents)}")
