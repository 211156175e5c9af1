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
from pathlib import Path
from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices import DeviceError, open_device
from devices.virtual.rig import VirtualCard, card_facts, provisioning_options, rig_of
from harness import lab
from harness.authority import AuthorityConfig, AuthorityServer
from harness.credentials import facts_for_device, facts_for_virtual
from harness.phone_download import CeremonyResult, PhoneDownloadApp, PhoneSecureElement, PinSource
from harness.pin_guard import fresh_card, wrong_pin_like
from harness.pki import checks

from .ceremony_checks import CeremonyChecks
from .ceremony_state import DeviceChannel, OpenDevice, require_rig

INS = {"SELECT": 0xA4, "READ BINARY": 0xB0, "VERIFY": 0x20, "SIGN": 0x2A, "GENERATE": 0x46,
       "UPDATE BINARY": 0xD6, "PUT DATA": 0xDA, "CHANGE": 0x24}


class CeremonyKeywords(CeremonyChecks):
    """The ceremony's app and its faults (this class) and the checks after it (:class:`CeremonyChecks`)."""

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
        authority.advance_clock(float(seconds))

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
        rig = rig_of(reader)
        card = None if rig is None else rig.card
        # the stricter of inventory and profile; named PIN variables
        facts = facts_for_device(None if card is None else card_facts(card), lab_device)
        if card is None and lab_device is None:
            facts.kind = role or "card"
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
        phone.card = require_rig(phone.reader).new_card()
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

    @keyword
    def use_ceremony_device_as_device_under_test(self, role: str = "phone") -> None:
        """Hands the ceremony's ``phone`` (or ``card``) to the card keywords (``Read Certificate``, ``Verify PIN``,
        ``Query PIN Tries``…), with its state as the ceremony left it."""
        device = self._device(role)
        self.ctx.device_name = device.name
        self.ctx.reader = device.reader
        self.ctx.channel = device.channel
        self.ctx.facts = device.facts
        self.ctx.changed_pins.clear()

    # -- the ceremony --------------------------------------------------------------------------------------
    def _new_app(self, phone_id: str) -> PhoneDownloadApp:
        card, phone = self._device("card"), self._device("phone")
        state = self.state
        options = provisioning_options(phone.card) if phone.card is not None else None

        def typed() -> str:
            value = card.pin("sign")
            if state.wrong_password_next:
                state.wrong_password_next = False
                return wrong_pin_like(value)
            return value

        source = PinSource(typed, card.facts.expendable, card.facts.pin_reserve, card.name, configured=card.pin)
        command, first_pin_p1 = options or ("update_binary", 0x01)
        secure_element = PhoneSecureElement(phone.channel, command, first_pin_p1, device=phone.name)
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
    def get_ceremony_value(self, result: CeremonyResult, key: str) -> Any:
        """``tries_left``, ``ceremony``, ``step``, ``outcome``, ``card_serial``, ``auth_serial`` or ``sign_serial``."""
        if key in ("auth_serial", "sign_serial"):
            return f"{checks.load_certificate(result.certificates[key[:4]]).serial_number:x}"
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
        other = require_rig(card.reader).new_card(profile)
        if card.swapped_out is None:
            card.swapped_out = (card.card, card.facts)
        card.card, card.facts = other, facts_for_virtual(card_facts(other))
        self._reinsert(card, other)
        fresh_card(card.name)  # another card under the same name: what the PIN guard knew was of the old one

    @keyword
    def bring_phone_back(self) -> None:
        """The same phone (its secure element as the link loss left it) comes back to the reader."""
        phone = self._device("phone")
        self._reinsert(phone, phone.card)

    @staticmethod
    def _reinsert(device: OpenDevice, card: VirtualCard | None) -> None:
        require_rig(device.reader).reinsert(card)
        with contextlib.suppress(DeviceError):
            device.reader.power_off()
        device.reader.wait_for_card(5.0)
        device.reader.power_on()

    def close(self) -> None:
        """Listener end of suite: devices closed, authority stopped, its records deleted."""
        self.close_ceremony_devices()
        self.stop_authority()


def _ins(command: str) -> int:
    named = INS.get(command.upper())
    return int(command, 16) if named is None else named
