"""Keywords for the phone download ceremony: the app (card + phone + authority) and what a lab checks after it.

A suite starts the authority (``Start Authority``), opens the card and the phone (``Open Ceremony Card``,
``Open Ceremony Phone``: any device names, e.g. ``virtual:card?via=nfc`` or a lab's reader and phone), runs the
ceremony and checks the phone, the authority's records and its OCSP answers. PINs come from the devices' facts
(virtual profile, environment, lab inventory); the phone's new PINs are its profile's or inventory's test values.
Both devices' APDUs go into the one trace, each marked ``card`` or ``phone``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices import DeviceError, open_device
from devices.base import Reader
from devices.virtual.card import VirtualCard
from devices.virtual.provisioning import load_options, state_of
from devices.virtual.slot import FaultPlan
from harness import lab, pki
from harness.apdu import CommandApdu, ResponseApdu
from harness.authority import AuthorityClient, AuthorityConfig, AuthorityError, AuthorityServer
from harness.channel import CardChannel
from harness.credentials import DeviceFacts, facts_for_virtual, virtual_card_of
from harness.jpki import JpkiClient, PinKind
from harness.phone_download import CeremonyResult, PhoneDownloadApp, PhoneSecureElement, PinSource, verify_card_pin
from harness.safety import wrong_pin_like
from harness.trace import ApduTrace

from .context import LibraryComponent

INS = {"SELECT": 0xA4, "READ BINARY": 0xB0, "VERIFY": 0x20, "SIGN": 0x2A, "GENERATE": 0x46,
       "UPDATE BINARY": 0xD6, "PUT DATA": 0xDA, "CHANGE": 0x24}


class DeviceChannel(CardChannel):
    """A channel that marks its trace lines with the device's role and can pull the card at a chosen command."""

    def __init__(self, reader: Reader, trace: ApduTrace, role: str) -> None:
        super().__init__(reader, trace)
        self.role = role
        self.pull_at: tuple[int, int] | None = None  # (INS, occurrence)
        self._seen = 0

    def transmit(self, apdu: bytes | CommandApdu, note: str = "") -> ResponseApdu:
        raw = bytes(apdu)
        if self.pull_at is not None and len(raw) > 1 and raw[1] == self.pull_at[0]:
            self._seen += 1
            if self._seen == self.pull_at[1]:
                self.pull_at = None
                _slot(self.reader).arm(FaultPlan(remove_at_apdu=1))  # gone while this APDU is in flight
        return super().transmit(raw, f"{self.role}: {note}" if note else self.role)

    def pull_during(self, ins: int, occurrence: int) -> None:
        self.pull_at, self._seen = (ins, occurrence), 0


def _slot(reader: Reader):
    """The virtual slot behind a reader (the one door into a virtual device these keywords use)."""
    slot = getattr(reader, "slot", None)
    if slot is None:
        raise SkipExecution(f"{reader.uri} is not a virtual device: pull the card or phone by hand")
    return slot


@dataclass
class OpenDevice:
    name: str
    reader: Reader
    channel: DeviceChannel
    facts: DeviceFacts
    card: VirtualCard | None  # kept so a pulled virtual card can go back in with its state
    swapped_out: tuple[VirtualCard, DeviceFacts] | None = None  # the suite's own card while another one is in

    def pin(self, kind: str) -> str:
        return self.facts.pin(kind, self.name)


@dataclass
class CeremonyState:
    server: AuthorityServer | None = None
    db_dir: Path | None = None
    card: OpenDevice | None = None
    phone: OpenDevice | None = None
    app: PhoneDownloadApp | None = None
    results: list[CeremonyResult] = field(default_factory=list)
    wrong_password_next: bool = False
    trusted: dict[str, str] = field(default_factory=dict, repr=False)


class CeremonyKeywords(LibraryComponent):
    @property
    def state(self) -> CeremonyState:
        return self.ctx.extension("ceremony", CeremonyState)

    # -- the authority ------------------------------------------------------------------------------------
    @keyword
    def start_authority(self, ttl: float = 600.0) -> str:
        """Starts the virtual issuing authority on 127.0.0.1 with a new SQLite file; returns its URL."""
        state = self.state
        if state.server is None:
            state.db_dir = Path(tempfile.mkdtemp(prefix="hil-authority-"))
            state.server = AuthorityServer(AuthorityConfig(state.db_dir / "authority.sqlite3",
                                                           ceremony_ttl=float(ttl))).start()
        logger.info(f"authority at {state.server.url}, records in {state.server.config.db_path}")
        return state.server.url

    @keyword
    def start_fresh_authority(self, ttl: float = 600.0) -> str:
        """Stops any authority (its records go) and starts a new one: each requirement starts with no registration."""
        self.stop_authority()
        return self.start_authority(ttl)

    @keyword
    def stop_authority(self) -> None:
        """Stops the authority and deletes its records. Safe to call when none runs."""
        server, self.state.server = self.state.server, None
        if server is not None:
            server.stop()
        if self.state.db_dir is not None:
            shutil.rmtree(self.state.db_dir, ignore_errors=True)
            self.state.db_dir = None

    @keyword
    def restart_authority(self) -> str:
        """Stops the authority (if a crash has not) and starts it again on the same records and port."""
        return self._server().restart().url

    @keyword
    def crash_authority_during(self, step: str, point: str = "before_commit") -> None:
        """The authority dies inside ``step`` (open, apply, issue, complete, cancel, revoke_card), before or after
        the step's commit, without answering; ``Restart Authority`` brings it back."""
        self._server().crash_during(step, point)

    @keyword
    def authority_should_have_crashed(self) -> None:
        """Fails unless the crash armed with ``Crash Authority During`` has happened."""
        if not self._server().crashed.is_set():
            raise AssertionError("the armed authority crash never happened")

    @keyword
    def move_authority_clock(self, seconds: float) -> None:
        """Moves the authority's clock forward (e.g. past the card certificate's end, or past the ceremony TTL)."""
        authority = self._server().authority
        assert authority is not None
        authority.expire_now(float(seconds))

    def _server(self) -> AuthorityServer:
        if self.state.server is None:
            raise DeviceError("no authority: call 'Start Authority' first")
        return self.state.server

    def _client(self) -> AuthorityClient:
        return AuthorityClient(self._server().url)

    # -- the devices ------------------------------------------------------------------------------------------
    def _open(self, name: str, role: str) -> OpenDevice:
        uri, lab_device = lab.resolve(name)
        reader = open_device(uri)
        try:
            reader.wait_for_card(5.0)
            reader.power_on()
        except DeviceError:
            reader.close()
            raise
        card = virtual_card_of(reader)
        facts = facts_for_virtual(card) if card is not None else (
            lab_device.facts() if lab_device is not None else DeviceFacts(kind=role or "card"))
        if (role and facts.kind != role) or facts.kind not in ("card", "phone"):
            reader.close()
            raise DeviceError(f"{name} holds a {facts.kind}, not a {role or 'card or phone'}")
        logger.info(f"ceremony {facts.kind}: {name}, {reader.capabilities}")
        return OpenDevice(name, reader, DeviceChannel(reader, self.ctx.trace, facts.kind), facts, card)

    @keyword
    def open_ceremony_card(self, name: str = "virtual:card") -> None:
        """Opens the card the app reads (``virtual:card``, ``virtual:card?via=nfc``, a lab reader…)."""
        self._close("card")
        self.state.card = self._open(name, "card")
        self.state.trusted.clear()

    @keyword
    def open_ceremony_phone(self, name: str = "virtual:blank-phone") -> None:
        """Opens the phone whose secure element receives the certificates (``virtual:blank-phone``, ``?via=nfc``)."""
        self._close("phone")
        self.state.phone = self._open(name, "phone")

    @keyword
    def open_ceremony_devices(self, device: str = "", card: str = "virtual:card",
                              phone: str = "virtual:blank-phone") -> None:
        """Opens the card and the phone. ``device`` (the run's ``--device``) takes the place of whichever of the
        two it holds, so one plan entry can put the card, or the phone, over nfcpy's UDP link."""
        self.close_ceremony_devices()
        if device:
            opened = self._open(device, "")
            setattr(self.state, opened.facts.kind, opened)
        if self.state.card is None:
            self.open_ceremony_card(card)
        if self.state.phone is None:
            self.open_ceremony_phone(phone)

    @keyword
    def insert_new_blank_phone(self) -> None:
        """Puts another factory-blank phone of the same profile in front of the phone reader (a second phone)."""
        phone = self._device("phone")
        if phone.card is None:
            raise SkipExecution(f"{phone.name} is a real phone: hand the next phone to the reader")
        phone.card = VirtualCard(phone.card.profile)
        self._reinsert(phone, phone.card)
        self.state.app = None

    def _close(self, role: str) -> None:
        device = getattr(self.state, role)
        setattr(self.state, role, None)
        if device is None:
            return
        if self.ctx.reader is device.reader:
            self.ctx.reader = self.ctx.channel = None
        with contextlib.suppress(DeviceError):
            device.reader.power_off()
        device.reader.close()

    @keyword
    def close_ceremony_devices(self) -> None:
        """Powers off and releases the card and the phone. Safe to call when none is open."""
        self._close("card")
        self._close("phone")
        self.state.app = None

    def _device(self, role: str) -> OpenDevice:
        device = getattr(self.state, role)
        if device is None:
            raise DeviceError(f"no ceremony {role}: call 'Open Ceremony {role.title()}' first")
        return device

    @keyword
    def use_ceremony_device_as_device_under_test(self, role: str = "phone") -> None:
        """Hands the ceremony's ``phone`` (or ``card``) to the card keywords (``Read Certificate``, ``Verify PIN``,
        ``Query PIN Tries``…), with its state as the ceremony left it."""
        device = self._device(role)
        self.ctx.device_name = device.name
        self.ctx.reader = device.reader
        self.ctx.channel = device.channel
        self.ctx.facts = device.facts
        self.ctx.trusted_pins.clear()
        self.ctx.changed_pins.clear()

    # -- the ceremony --------------------------------------------------------------------------------------
    def _new_app(self, phone_id: str) -> PhoneDownloadApp:
        card, phone = self._device("card"), self._device("phone")
        state = self.state
        options = load_options(phone.card.profile) if phone.card is not None else None

        def typed() -> str:
            value = card.pin("sign")
            if state.wrong_password_next:
                state.wrong_password_next = False
                return wrong_pin_like(value)
            return value

        source = PinSource(typed, card.facts.expendable, card.facts.pin_reserve, card.name, state.trusted)
        secure_element = PhoneSecureElement(phone.channel, options.certificate_command if options else "update_binary",
                                            options.first_pin_p1 if options else 0x01)
        return PhoneDownloadApp(card.channel, secure_element, self._client(), card_sign_password=source,
                                phone_pins={"auth": phone.pin("auth"), "sign": phone.pin("sign")},
                                phone_id=phone_id or f"phone-{len(state.results) + 1}")

    def _finish(self, result: CeremonyResult) -> CeremonyResult:
        self.state.results.append(result)
        tries = "" if result.tries_left is None else f", {result.tries_left} tries left"
        logger.info(f"ceremony {result.ceremony or '-'}: {result.outcome} at {result.step}{tries} {result.detail}")
        return result

    @keyword
    def run_phone_download_ceremony(self, phone_id: str = "") -> CeremonyResult:
        """A new attempt from the start: open, keys, card signature, application, issue, store, PINs, complete."""
        self.state.app = self._new_app(phone_id)
        return self._finish(self.state.app.run())

    @keyword
    def retry_phone_download_ceremony(self) -> CeremonyResult:
        """Continues the last attempt where it stopped, with the same request ids (nothing is applied twice)."""
        if self.state.app is None:
            raise DeviceError("no ceremony to retry: call 'Run Phone Download Ceremony' first")
        return self._finish(self.state.app.run())

    @keyword
    def enter_wrong_sign_password_in_app(self) -> None:
        """The person types a wrong sign password (right format) at the app's next prompt."""
        if not self._device("card").facts.expendable:
            raise SkipExecution(f"a wrong sign password costs a try on {self._device('card').name}, "
                                "which is not expendable")
        self.state.wrong_password_next = True

    @keyword
    def ceremony_should_succeed(self, result: CeremonyResult) -> CeremonyResult:
        """Fails unless the attempt ended ``ok`` (the phone provisioned, the authority told)."""
        if not result.ok:
            raise AssertionError(f"ceremony ended {result.outcome} at {result.step}: {result.detail}")
        return result

    @keyword
    def ceremony_should_end_with(self, result: CeremonyResult, outcome: str, step: str = "") -> CeremonyResult:
        """Fails unless the attempt ended with ``outcome`` (and at ``step`` when given)."""
        if result.outcome != outcome or (step and result.step != step):
            raise AssertionError(f"ceremony ended {result.outcome} at {result.step} ({result.detail}), "
                                 f"expected {outcome}{' at ' + step if step else ''}")
        return result

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

    def _server_authority(self):
        authority = self._server().authority
        if authority is None:
            raise DeviceError("the authority is not running")
        return authority

    @keyword
    def get_ceremony_value(self, result: CeremonyResult, key: str) -> Any:
        """``tries_left``, ``ceremony``, ``step``, ``outcome``, ``card_serial``, ``auth_serial`` or ``sign_serial``."""
        if key in ("auth_serial", "sign_serial"):
            return f"{pki.load_certificate(result.certificates[key[:4]]).serial_number:x}"
        return getattr(result, key)

    # -- faults ---------------------------------------------------------------------------------------------
    @keyword
    def pull_card_during_next_app_command(self, command: str = "SIGN", occurrence: int = 1) -> None:
        """The card leaves the reader while the ``occurrence``-th ``command`` (VERIFY, SIGN, READ BINARY, SELECT or
        an INS in hex) of the app is in flight."""
        self._device("card").channel.pull_during(_ins(command), int(occurrence))

    @keyword
    def lose_phone_link_during_next_app_command(self, command: str = "GENERATE", occurrence: int = 1) -> None:
        """The phone leaves the field (or its link drops) while that command is in flight."""
        self._device("phone").channel.pull_during(_ins(command), int(occurrence))

    @keyword
    def put_card_back(self) -> None:
        """The suite's own card, with its counters and state, goes (back) into the reader and is powered."""
        card = self._device("card")
        if card.swapped_out is not None:
            card.card, card.facts, card.swapped_out = card.swapped_out[0], card.swapped_out[1], None
        self._reinsert(card, card.card)

    @keyword
    def swap_in_card_of_profile(self, profile: str) -> None:
        """Takes the card off the reader and puts a virtual card of ``profile`` (e.g. ``revoked-card``) on it
        instead; ``Put Card Back`` restores the suite's own card."""
        card = self._device("card")
        if card.card is None:
            raise SkipExecution(f"{card.name} is a real card: put the other card on the reader by hand")
        other = VirtualCard.from_profile(profile)
        if card.swapped_out is None:
            card.swapped_out = (card.card, card.facts)
        card.card, card.facts = other, facts_for_virtual(other)
        self._reinsert(card, other)
        self.state.trusted.clear()

    @keyword
    def bring_phone_back(self) -> None:
        """The same phone (its secure element as the link loss left it) comes back to the reader."""
        phone = self._device("phone")
        self._reinsert(phone, phone.card)

    @staticmethod
    def _reinsert(device: OpenDevice, card: VirtualCard | None) -> None:
        slot = _slot(device.reader)
        slot.arm(FaultPlan())
        if card is not None and slot.card is not card:
            slot.insert(card)
        with contextlib.suppress(DeviceError):
            device.reader.power_off()
        device.reader.wait_for_card(5.0)
        device.reader.power_on()

    # -- what the phone holds ------------------------------------------------------------------------------------
    @keyword
    def phone_provisioning_state_should_be(self, expected: str) -> None:
        """``empty``, ``keys_generated``, ``certificates_stored`` or ``pins_set`` (virtual phones only)."""
        phone = self._device("phone")
        found = state_of(phone.card.os) if phone.card is not None else None
        if found is None:
            raise SkipExecution(f"{phone.name}: a real secure element does not show its provisioning state")
        if found.value != expected:
            raise AssertionError(f"the phone's secure element is {found.value}, expected {expected}")

    def _phone_pin_source(self, kind: str) -> PinSource:
        phone = self._device("phone")
        return PinSource(lambda: phone.pin(kind), phone.facts.expendable, phone.facts.pin_reserve, phone.name,
                         self.ctx.trusted_pins)

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
        signature = client.sign(key, pki.digest_info(data.encode("utf-8"))).data
        cert = pki.load_certificate(result.certificates[key])
        pki.verify_signature(cert, signature, data=data.encode("utf-8"))
        authority = self._server().authority
        assert authority is not None
        pki.verify_chain(cert, authority.pki.roots)

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
        cert = pki.load_certificate(result.certificates[which])
        self._ocsp_should_say(cert, which, status)

    @keyword
    def card_certificate_status_should_be(self, status: str) -> None:
        """The authority's OCSP answer for the card's sign certificate (the one the application used)."""
        app = self.state.app
        if app is None or not app.progress.card_cert:
            raise AssertionError("no ceremony has read the card's sign certificate yet")
        self._ocsp_should_say(pki.load_certificate(app.progress.card_cert), "sign", status)

    def _ocsp_should_say(self, cert, which: str, status: str) -> None:
        authority = self._server().authority
        assert authority is not None
        root = authority.pki.auth.root if which == "auth" else authority.pki.sign.root
        nonce = b"ceremony-check"
        der = self._client().ocsp(which, pki.build_ocsp_request(cert, root, nonce=nonce))
        found = pki.check_ocsp_response(der, cert, root, at=authority.now(), nonce=nonce)
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
        leaks = [f"a PIN in the {where}" for where, text in haystacks.items() for s in secrets if s in text]
        leaks += ["a PIN in the authority's database" for s in secrets if s.encode() in db]
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

    def close(self) -> None:
        """Listener end of suite: devices closed, authority stopped, its records deleted."""
        self.close_ceremony_devices()
        self.stop_authority()


def _ins(command: str) -> int:
    named = INS.get(command.upper())
    return int(command, 16) if named is None else named
