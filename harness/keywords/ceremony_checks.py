"""Ceremony keywords that check: what the phone holds, what the authority records and answers over OCSP, and that
no PIN or private key leaked."""

from __future__ import annotations

import uuid
from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices.virtual.rig import provisioning_state
from harness.authority import AuthorityError
from harness.iso.redact import holds_secret
from harness.jpki import JpkiClient, PinKind
from harness.phone_download import CeremonyResult, PinSource, verify_card_pin
from harness.pki import checks, revocation

from .ceremony_state import CeremonyComponent


class CeremonyChecks(CeremonyComponent):
    """What the phone holds and what the authority records and answers, after (or during) a ceremony."""

    # -- what the authority records ---------------------------------------------------------------------
    @keyword
    def ceremony_status_at_authority_should_be(self, result: CeremonyResult, status: str) -> dict[str, Any]:
        """``open``, ``applied``, ``issued``, ``completed``, ``cancelled`` or ``refused`` (``GET /api/ceremonies``)."""
        record = self._client().get(f"/api/ceremonies/{result.ceremony}")
        if record["status"] != status:
            raise AssertionError(f"ceremony {result.ceremony} is {record['status']} ({record['reason']}), "
                                 f"expected {status}")
        return record

    @keyword
    def authority_should_hold(self, **expected: str) -> None:
        """Fails unless the authority's tables hold these row counts, e.g. ``certificates=0  ceremonies=1``."""
        counts = self._server_authority().store.counts()
        wrong = {t: counts.get(t) for t, n in expected.items() if counts.get(t) != int(n)}
        if wrong:
            raise AssertionError(f"the authority holds {counts}, expected {expected}")

    # -- what the phone holds ------------------------------------------------------------------------------------
    @keyword
    def phone_provisioning_state_should_be(self, expected: str) -> None:
        """``empty``, ``keys_generated``, ``certificates_stored`` or ``pins_set`` (virtual phones only)."""
        phone = self._device("phone")
        found = provisioning_state(phone.card) if phone.card is not None else None
        if found is None:
            raise SkipExecution(f"{phone.name}: a real secure element does not show its provisioning state")
        if found != expected:
            raise AssertionError(f"the phone's secure element is {found}, expected {expected}")

    def _phone_pin_source(self, kind: str) -> PinSource:
        phone = self._device("phone")
        return PinSource(lambda: phone.pin(kind), phone.facts.expendable, phone.facts.pin_reserve, phone.name,
                         configured=phone.pin)

    @keyword
    def phone_should_hold_issued_certificate(self, result: CeremonyResult, which: str = "auth") -> None:
        """Reads the certificate from the phone (the auth one after the phone's auth PIN, §8) and compares it
        with what the authority issued."""
        client = JpkiClient(self._device("phone").channel)
        client.select_jpki()
        kind = PinKind.AUTH if which == "auth" else PinKind.SIGN
        verified = verify_card_pin(client, kind, self._phone_pin_source(which))
        if not verified.ok:
            raise AssertionError(f"the phone's {which} PIN answered {verified.sw:04X}")
        held = client.read_certificate(which)
        if held != result.certificates[which]:
            raise AssertionError(f"the phone's {which} certificate ({len(held)} bytes) is not the one issued")

    @keyword
    def phone_signature_should_verify_under_issued_certificate(self, result: CeremonyResult, key: str = "auth",
                                                               data: str = "relying-party challenge") -> None:
        """The phone signs with its own key (after its PIN); the signature verifies under the issued certificate,
        and the certificate chains to the test CA."""
        client = JpkiClient(self._device("phone").channel)
        kind = PinKind.AUTH if key == "auth" else PinKind.SIGN
        client.select_jpki()
        if not verify_card_pin(client, kind, self._phone_pin_source(key)).ok:
            raise AssertionError(f"the phone refused its {key} PIN")
        signature = client.sign(key, checks.digest_info(data.encode("utf-8"))).data
        cert = checks.load_certificate(result.certificates[key])
        checks.verify_signature(cert, signature, data=data.encode("utf-8"))
        authority = self._server().authority
        assert authority is not None
        checks.verify_chain(cert, authority.pki.roots)

    # -- what the authority says ------------------------------------------------------------------------------------
    @keyword
    def live_phones_of_card_should_be(self, result: CeremonyResult, count: int) -> list[dict[str, Any]]:
        """Fails unless the authority's bindings show exactly ``count`` live phones for the result's card."""
        serial = result.card_serial or self._card_serial()
        bindings = self._client().get(f"/api/bindings?card={serial}")["bindings"]
        live = [b for b in bindings if b["status"] == "live"]
        if len(live) != int(count):
            raise AssertionError(f"card {serial} has {len(live)} live phone(s), expected {count}: {live}")
        return live

    def _card_serial(self) -> str:
        for earlier in reversed(self.state.results):
            if earlier.card_serial:
                return earlier.card_serial
        raise AssertionError("no ceremony has succeeded yet, so the card's serial is unknown")

    @keyword
    def issued_certificate_status_should_be(self, result: CeremonyResult, which: str, status: str) -> None:
        """Asks the authority's OCSP responder over HTTP about the issued ``auth``/``sign`` certificate and checks
        the signed answer (responder, freshness) before comparing ``good``/``revoked``."""
        cert = checks.load_certificate(result.certificates[which])
        self._ocsp_should_say(cert, which, status)

    @keyword
    def card_certificate_status_should_be(self, status: str) -> None:
        """The authority's OCSP answer for the card's sign certificate (the one the application used)."""
        app = self.state.app
        if app is None or not app.progress.card_cert:
            raise AssertionError("no ceremony has read the card's sign certificate yet")
        self._ocsp_should_say(checks.load_certificate(app.progress.card_cert), "sign", status)

    def _ocsp_should_say(self, cert, which: str, status: str) -> None:
        authority = self._server().authority
        assert authority is not None
        root = authority.pki.auth.root if which == "auth" else authority.pki.sign.root
        nonce = b"ceremony-check"
        der = self._client().ocsp(which, revocation.build_ocsp_request(cert, root, nonce=nonce))
        found = revocation.check_ocsp_response(der, cert, root, at=authority.now(), nonce=nonce)
        if found.value != status:
            raise AssertionError(f"OCSP says {found.value} for serial {cert.serial_number:x}, expected {status}")

    @keyword
    def revoke_card_at_authority(self, reason: str = "card_revoked") -> dict[str, Any]:
        """J-LIS revokes the card's sign certificate (card lost, renewed, holder moved); returns what it revoked."""
        serial = self._card_serial()
        try:
            return self._client().post("/api/cards/revoke", {"request_id": f"revoke-{serial}-{reason}",
                                                              "serial": serial, "reason": reason})
        except AuthorityError as exc:
            raise AssertionError(f"the authority refused to revoke card {serial}: {exc}") from None

    @keyword
    def authority_records_should_be_consistent(self) -> dict[str, int]:
        """No half-issued ceremony: issued/completed ones hold exactly two certificates and a binding, the others
        none that is live; never two live phones for one card. Returns the row counts."""
        authority = self._server().authority
        assert authority is not None
        store = authority.store
        problems = []
        with store.reading() as tx:
            ceremonies = tx.conn.execute("SELECT id, status FROM ceremonies").fetchall()
            for ceremony_id, status in ceremonies:
                certs = tx.certificates_of(ceremony_id)
                live = [c for c in certs if c.revoked_at is None]
                if len(certs) not in (0, 2):
                    problems.append(f"{ceremony_id} ({status}) holds {len(certs)} certificate(s)")
                if status in ("issued", "completed") and len(certs) != 2:
                    problems.append(f"{ceremony_id} is {status} without its two certificates")
                if status not in ("issued", "completed") and live:
                    problems.append(f"{ceremony_id} is {status} but {len(live)} certificate(s) are live")
        cards: dict[str, int] = {}
        for binding in store.bindings():
            if binding.status == "live":
                cards[binding.card_serial] = cards.get(binding.card_serial, 0) + 1
        problems += [f"card {card} has {n} live phones" for card, n in cards.items() if n > 1]
        if problems:
            raise AssertionError("; ".join(problems))
        return store.counts()

    @keyword
    def run_authority_housekeeping(self) -> None:
        """The authority's periodic job: ceremonies unfinished past their time are cancelled, their certificates
        revoked."""
        self._client().post("/api/housekeeping", {"request_id": f"housekeeping-{uuid.uuid4().hex}"})

    @keyword
    def log_authority_events(self) -> None:
        """Writes the authority's event log (steps, refusals, revocations) to the Robot log."""
        for event in self._client().get("/api/events")["events"]:
            logger.info(f"authority #{event['seq']} {event['event']} {event['ceremony']} {event['detail']}")

    @keyword
    def no_secret_should_be_in_trace_or_records(self) -> None:
        """Fails if a PIN of the card or the phone, or a private key, shows in the APDU trace, the authority's
        events, bindings or database file."""
        secrets = []
        for device in (self.state.card, self.state.phone):
            if device is not None:
                secrets += [v for v in device.facts.pins.values() if v]
        trace = self.ctx.trace.as_text() + self.ctx.trace.as_html()
        haystacks = {"APDU trace": trace, "authority events": str(self._client().get("/api/events")),
                     "authority bindings": str(self._client().get("/api/bindings"))}
        db = self._server().config.db_path.read_bytes()
        leaks = [f"a PIN in the {where}" for where, text in haystacks.items() for s in secrets if holds_secret(text, s)]
        leaks += ["a PIN in the authority's database" for s in secrets if holds_secret(db, s)]
        leaks += [f"a private key in the {where}" for where, text in haystacks.items() if "PRIVATE KEY" in text]
        phone = self.state.phone
        if phone is not None and phone.card is not None:
            keys = [ef.key for applet in phone.card.os.applets.values() for ef in applet.files.values()]
            for key in keys:
                if key is not None:
                    d = f"{key.private_numbers().d:x}"
                    leaks += [f"the phone's private key in the {w}" for w, t in haystacks.items() if d in t.lower()]
        if leaks:
            raise AssertionError("; ".join(sorted(set(leaks))))
