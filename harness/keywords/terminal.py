"""Keywords for kiosk and set-top box service flows, and for the relying party they talk to.

A suite starts the relying party (``Start Relying Party``), opens a terminal by device name
(``virtual:card?via=stb`` by default, a lab reader with ``kind=kiosk``), runs flows and checks what the
terminal showed, what the card counted and what the platform recorded. PINs come from the device's
facts (virtual profile, environment or lab inventory): suites name the PIN, never its value.
"""

from __future__ import annotations

from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices.base import DeviceError
from devices.virtual.rig import rig_of
from harness import lab
from harness.credentials import card_facts_of, facts_for_device
from harness.jpki import JpkiClient
from harness.pin_guard import fresh_card, wrong_pin_like
from harness.pki import checks, profile
from harness.relying_party import RelyingParty, RelyingPartyClient
from harness.terminals.flows import open_terminal
from harness.terminals.terminal import FlowResult, ServiceTerminal
from harness.terminals.ui import PinPrompt

from . import privacy
from .context import LibraryComponent, LibraryContext

EFFECTS = ("bookings", "payments", "issued", "watch_log", "occupancy")


class TerminalState:
    """Per-library state: the relying party, the open terminal and a snapshot to compare against."""

    def __init__(self) -> None:
        self.rp: RelyingParty | None = None
        self.external_rp: str = ""
        self.terminal: ServiceTerminal | None = None
        self.snapshot: dict[str, Any] = {}
        self.last: FlowResult | None = None
        self.lab_device: lab.LabDevice | None = None


def terminal_state(ctx: LibraryContext) -> TerminalState:
    return ctx.extension("terminal", TerminalState)


class _TerminalComponent(LibraryComponent):
    @property
    def state(self) -> TerminalState:
        return terminal_state(self.ctx)

    def rp_url(self) -> str:
        if self.state.external_rp:
            return self.state.external_rp
        if self.state.rp is None:
            raise DeviceError("no relying party: call 'Start Relying Party' first")
        return self.state.rp.url

    def rp_client(self) -> RelyingPartyClient:
        return RelyingPartyClient(self.rp_url(), "TEST-OBSERVER")

    def terminal(self) -> ServiceTerminal:
        if self.state.terminal is None:
            raise DeviceError("no terminal is open: call 'Open Terminal' first")
        return self.state.terminal


class RelyingPartyKeywords(_TerminalComponent):
    """The platform emulator: start/stop, and what it recorded (over HTTP, as a lab would query it)."""

    @keyword
    def start_relying_party(self, url: str = "") -> str:
        """Starts the platform emulator on 127.0.0.1 (with its OCSP responder) and returns its URL.

        With ``url``, uses a platform already running there instead (nothing is started)."""
        if url:
            self.state.external_rp = url
            return url
        if self.state.rp is None:
            self.state.rp = RelyingParty().start()
        ocsp = self.state.rp.ocsp
        logger.info(f"relying party at {self.state.rp.url}, OCSP responder at {ocsp.url if ocsp else '-'}")
        return self.state.rp.url

    @keyword
    def stop_relying_party(self) -> None:
        """Stops the platform emulator and its OCSP responder. Safe to call when none runs."""
        rp, self.state.rp = self.state.rp, None
        if rp is not None:
            rp.stop()

    @keyword
    def take_relying_party_snapshot(self) -> dict[str, Any]:
        """Remembers every committed effect (bookings, payments, issued documents, watch log, shelters)."""
        self.state.snapshot = self.rp_client().state()
        return self.state.snapshot

    @keyword
    def relying_party_effects_should_be_unchanged(self) -> None:
        """Fails if any committed effect differs from the snapshot: nothing half-done was left behind."""
        now = self.rp_client().state()
        changed = [name for name in EFFECTS if now.get(name) != self.state.snapshot.get(name)]
        if changed:
            raise AssertionError(f"the relying party's {', '.join(changed)} changed since the snapshot")

    @keyword
    def no_transaction_should_be_pending(self) -> None:
        """Fails while any transaction waits for a commit (a flow that stopped must have aborted it)."""
        pending = self.rp_client().state()["pending"]
        if pending:
            raise AssertionError(f"transactions still pending: {', '.join(pending)}")

    @keyword
    def transaction_status_should_be(self, tx: str, status: str) -> dict[str, Any]:
        """Fails unless transaction ``tx`` is ``committed``, ``aborted``, ``expired``, ``refused`` or ``pending``."""
        record = self.rp_client().transaction(tx)
        if record["status"] != status:
            raise AssertionError(f"transaction {tx} is {record['status']} ({record['reason']}), expected {status}")
        return record

    @keyword
    def audit_log_should_contain(self, **match: str) -> list[dict[str, Any]]:
        """Fails unless an audit record matches every ``field=value`` (event, outcome, tx, service, terminal…;
        ``detail`` matches as a substring). Returns the matching records."""
        found = self._audit(match)
        if not found:
            raise AssertionError(f"no audit record with {match}")
        return found

    @keyword
    def audit_log_should_not_contain(self, **match: str) -> None:
        """Fails if an audit record matches every ``field=value``."""
        found = self._audit(match)
        if found:
            raise AssertionError(f"unexpected audit record(s) with {match}: {found[0]}")

    def _audit(self, match: dict[str, str]) -> list[dict[str, Any]]:
        exact = {k: v for k, v in match.items() if k != "detail"}
        records = self.rp_client().audit(**{k: v for k, v in exact.items() if k in ("terminal", "event", "tx")})
        return [r for r in records if all(str(r.get(k)) == v for k, v in exact.items())
                and match.get("detail", "") in r.get("detail", "")]

    @keyword
    def get_relying_party_state(self) -> dict[str, Any]:
        """Every committed effect, as the platform's ``GET /api/state`` reports it."""
        return self.rp_client().state()

    @keyword
    def ocsp_should_have_answered(self, status: str) -> None:
        """Fails unless the platform's OCSP responder's last answer was ``good``, ``revoked``…"""
        rp = self.state.rp
        if rp is None or rp.ocsp is None or not rp.ocsp.log:
            raise AssertionError("the OCSP responder answered nothing")
        last = rp.ocsp.log[-1]
        if last.status != status:
            raise AssertionError(f"the OCSP responder last answered {last.status} for {last.serial}, expected {status}")


class TerminalKeywords(_TerminalComponent):
    """Kiosk and set-top box flows (the ``terminals`` suites)."""

    # -- lifecycle -------------------------------------------------------------------------------
    @keyword
    def open_terminal(self, name: str, kind: str = "") -> str:
        """Opens the terminal whose reader is ``name`` (``virtual:card?via=stb``, ``serial:/dev/…?protocol=kiosk``,
        ``pcsc:…`` with ``kind=kiosk``), connected to the relying party. Returns the terminal ID.

        The card keywords (``Query PIN Tries``…) then work on the terminal's card, and a person who knows
        the card's PINs answers the terminal's PIN prompts unless a PIN was typed ahead."""
        self.close_terminal()
        uri, lab_device = lab.resolve(name)
        terminal = open_terminal(uri, self.rp_url(), kind=kind, trace=self.ctx.trace)
        self.state.terminal = terminal
        ctx = self.ctx
        ctx.device_name = name
        ctx.reader = terminal.reader
        ctx.channel = terminal.channel
        ctx.changed_pins.clear()
        self.state.lab_device = lab_device
        ctx.facts = facts_for_device(card_facts_of(terminal.reader), lab_device)
        privacy.protect(ctx)
        terminal.guard_factory = lambda: ctx.guard(terminal.channel)  # keypad entries are guarded too
        terminal.keypad.person = self._holder
        try:
            terminal.prepare_card()
        except DeviceError as exc:
            logger.info(f"no card powered yet: {exc}")
        logger.info(f"Opened {terminal.kind} terminal {terminal.terminal_id} on {terminal.reader.describe()}")
        return terminal.terminal_id

    def _holder(self, prompt: PinPrompt) -> str | None:
        """The card holder reading the screen: types the PIN the prompt asks for."""
        return self.ctx.pin(prompt.kind)

    @keyword
    def close_terminal(self) -> None:
        """Logs out, powers the card off and releases the reader. Safe to call when none is open."""
        terminal, self.state.terminal = self.state.terminal, None
        if terminal is None:
            return
        if self.ctx.reader is terminal.reader:  # a device opened since then stays the suite's to close
            self.ctx.reader = self.ctx.channel = None
        terminal.close()

    # -- the person at the terminal ------------------------------------------------------------------
    @keyword
    def enter_pin_on_terminal(self, pin: str = "auth") -> None:
        """Types the card's configured ``auth``/``text`` PIN ahead on the keypad or remote (never logged)."""
        self.terminal().enter_pin(self.ctx.pin(pin))

    @keyword
    def enter_wrong_pin_on_terminal(self, pin: str = "auth") -> None:
        """Types a wrong PIN of the right format ahead; the next PIN prompt takes it."""
        if not self.ctx.facts.expendable:
            raise SkipExecution(f"a wrong PIN costs a try on {self.ctx.device_name}, which is not expendable")
        self.terminal().enter_pin(wrong_pin_like(self.ctx.pin(pin)))

    @keyword
    def terminal_display_should_contain(self, text: str) -> None:
        """Fails unless the terminal's screen shows ``text``."""
        shown = self.terminal().display_text()
        if text not in shown:
            raise AssertionError(f"the display shows {shown!r}, not {text!r}")

    @keyword
    def terminal_display_should_not_contain(self, text: str) -> None:
        """Fails if the terminal's display shows ``text`` (e.g. a PIN, or a stale holder's name)."""
        shown = self.terminal().display_text()
        if text in shown:
            raise AssertionError(f"the display shows {shown!r}, which contains {text!r}")

    # -- flows ----------------------------------------------------------------------------------------------
    def _flow(self, result: FlowResult) -> FlowResult:
        self.state.last = result
        logger.info(f"{result.flow}: {result.outcome} — {result.display}")
        return result

    def _kind(self, kind: str) -> ServiceTerminal:
        terminal = self.terminal()
        if terminal.kind != kind:
            raise DeviceError(f"{terminal.terminal_id} is a {terminal.kind} terminal, not a {kind}")
        return terminal

    @keyword
    def log_in_on_terminal(self, service: str = "portal") -> FlowResult:
        """Logs in with the card's auth certificate: PIN, signature over the platform's challenge."""
        return self._flow(self.terminal().login(service))

    @keyword
    def log_out_of_terminal(self) -> FlowResult:
        """Ends the platform session the terminal holds; the card's security state goes with it."""
        return self._flow(self.terminal().logout())

    @keyword
    def book_facility(self, facility: str, date: str, slot: str) -> FlowResult:
        """Set-top box: books a public facility (fee charged with the booking)."""
        return self._flow(self._kind("stb").book_facility(facility, date, slot))  # type: ignore[attr-defined]

    @keyword
    def view_health_records(self) -> FlowResult:
        """Set-top box: shows the holder's health records."""
        return self._flow(self._kind("stb").view_health_records())  # type: ignore[attr-defined]

    @keyword
    def check_in_for_elderly_watch(self, status: str = "元気") -> FlowResult:
        """Set-top box: the 見守り check-in; the family is notified."""
        return self._flow(self._kind("stb").watch_check_in(status))  # type: ignore[attr-defined]

    @keyword
    def issue_certificate_at_kiosk(self, document: str = "residence", copies: int = 1) -> FlowResult:
        """Kiosk: issues a certificate (住民票の写し…) after the text PIN, the basic four and login."""
        return self._flow(self._kind("kiosk").issue_certificate(document, int(copies)))  # type: ignore[attr-defined]

    @keyword
    def check_insurance_eligibility(self) -> FlowResult:
        """Kiosk at a hospital reception: オンライン資格確認 by the auth certificate serial."""
        return self._flow(self._kind("kiosk").check_eligibility())  # type: ignore[attr-defined]

    @keyword
    def pay_at_reception(self, amount: int, purpose: str = "外来診療費") -> FlowResult:
        """Kiosk: pays ``amount`` yen, confirmed with the card's signature."""
        return self._flow(self._kind("kiosk").pay(int(amount), purpose))  # type: ignore[attr-defined]

    @keyword
    def check_in_at_shelter(self, shelter: str) -> FlowResult:
        """Kiosk at a shelter (避難所): checks the card holder in, authenticated with the auth key."""
        return self._flow(self._kind("kiosk").shelter_check_in(shelter))  # type: ignore[attr-defined]

    @keyword
    def check_out_of_shelter(self, shelter: str) -> FlowResult:
        """Kiosk at a shelter: checks the card holder out again (refused without a check-in)."""
        return self._flow(self._kind("kiosk").shelter_check_out(shelter))  # type: ignore[attr-defined]

    # -- results ------------------------------------------------------------------------------------------------
    @keyword
    def flow_should_succeed(self, result: FlowResult) -> dict[str, Any]:
        """Fails unless the flow ended ``ok``; returns its data."""
        if not result.ok:
            raise AssertionError(f"{result.flow} ended {result.outcome}: {result.display}")
        return result.data

    @keyword
    def flow_should_end_with(self, result: FlowResult, outcome: str) -> FlowResult:
        """Fails unless the flow ended with ``outcome`` (wrong_pin, card_removed, revoked, refused…)."""
        if result.outcome != outcome:
            raise AssertionError(f"{result.flow} ended {result.outcome} ({result.display}), expected {outcome}")
        return result

    @keyword
    def get_flow_value(self, result: FlowResult, key: str) -> Any:
        """One value of the flow's data (``tx``, ``platform_id``, ``insured_number``…) or its ``tries_left``."""
        if key == "tries_left":
            return result.tries_left
        if key == "tx":
            return result.tx
        if key not in result.data:
            raise AssertionError(f"{result.flow} data has no {key!r}; it has {', '.join(result.data)}")
        return result.data[key]

    @keyword
    def platform_id_should_be_linked_to_card(self) -> str:
        """Fails unless the platform links this card's auth certificate CN to the terminal's platform ID."""
        terminal = self.terminal()
        client = JpkiClient(terminal.channel)
        client.select_jpki()
        cn = profile.auth_identifier(checks.load_certificate(client.read_certificate("auth")))
        if self.state.rp is None:
            raise SkipExecution("the link is checked in the emulator's records; the platform is external")
        linked = self.state.rp.require_platform().links.get(cn)
        if not linked or linked != terminal.platform_id:
            raise AssertionError(f"card {cn} is linked to {linked!r}, the terminal shows {terminal.platform_id!r}")
        return linked

    @keyword
    def insured_number_should_match_card(self, result: FlowResult) -> None:
        """Fails unless the eligibility answer is for this card's auth certificate serial and its insured
        number is the one the insurer registered for that serial."""
        terminal = self.terminal()
        client = JpkiClient(terminal.channel)
        client.select_jpki()
        cert = checks.load_certificate(client.read_certificate("auth"))
        if result.data.get("serial") != f"{cert.serial_number:x}":
            raise AssertionError(f"eligibility answered for serial {result.data.get('serial')}, "
                                 f"the card's is {cert.serial_number:x}")
        if self.state.rp is None:
            return
        entry = self.state.rp.require_platform().insurance_by_serial.get(cert.serial_number)
        if entry is None or result.data.get("insured_number") != f"{entry['symbol']}-{entry['number']}":
            raise AssertionError(f"insured number {result.data.get('insured_number')} is not the one registered "
                                 f"for serial {cert.serial_number:x}")

    # -- faults and the card --------------------------------------------------------------------------------
    @keyword
    def put_fresh_card_into_terminal(self) -> None:
        """Inserts a factory-fresh card of the same profile (full retry counters) into the terminal's reader."""
        rig = rig_of(self.terminal().reader)
        if rig is None:
            raise SkipExecution(f"{self.ctx.device_name} has no virtual slot")
        rig.insert_fresh()
        self.ctx.facts = facts_for_device(rig.card_facts(), self.state.lab_device)
        fresh_card(self.ctx.device_name)
        privacy.protect(self.ctx)
        self.terminal().card_changed()
        self.terminal().prepare_card()
