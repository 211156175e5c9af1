"""The steps every service flow shares: card ready, one guarded VERIFY, auth signature, login, transaction.

A :class:`ServiceTerminal` is a :class:`~devices.base.Terminal`: its reader, keypad, display and the relying
party. How a flow ended becomes a :class:`FlowResult` and a screen (:meth:`ServiceTerminal._run`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.base import CardRemoved, DeviceError, NoCard, Reader, Terminal
from harness.channel import CardChannel
from harness.jpki import CardStatusError, JpkiClient, PinKind
from harness.pin_guard import PinGuard, PinGuardRefusal
from harness.pki import checks
from harness.relying_party.client import RelyingPartyClient, RpError
from harness.trace import ApduTrace

from .ui import PIN_PROMPTS, Display, Keypad, PinPrompt

SW_SECURITY_NOT_SATISFIED = 0x6982
_ids = itertools.count(1)


@dataclass(frozen=True)
class FlowResult:
    """How a service flow ended. ``outcome``: ok, wrong_pin, pin_blocked, no_pin, card_removed, no_card,
    device_error, card_error, revoked, refused, unavailable."""

    flow: str
    ok: bool
    outcome: str
    display: str
    data: dict[str, Any] = field(default_factory=dict)
    tries_left: int | None = None
    tx: str = ""


class _Stop(Exception):
    """Ends a flow with an outcome; the display already says why."""

    def __init__(self, outcome: str, tries_left: int | None = None) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.tries_left = tries_left


class ServiceTerminal(Terminal):
    """A terminal: its reader, keypad, display, the relying party, and flows built from shared steps."""

    kind = ""

    def __init__(self, reader: Reader, relying_party: str, *, terminal_id: str = "", trace: ApduTrace | None = None,
                 pin_timeout: float = 2.0, card_timeout: float = 5.0, uri: str = "") -> None:
        self._reader = reader
        self.uri = uri or reader.uri
        self.terminal_id = terminal_id or f"{self.kind.upper()}-{next(_ids):04d}"
        self.keypad = Keypad()
        self.display = Display()
        self.channel = CardChannel(reader, trace)
        self.card = JpkiClient(self.channel)
        # Every PIN the keypad takes goes through the guard. Until the harness hands in the device's own
        # (expendable or not, its reserve, what it already knows), the terminal treats the card as real.
        self.guard_factory: Callable[[], PinGuard] | None = None
        self._strict_guard = PinGuard(self.card, expendable=False, device=self.terminal_id)
        self.rp = RelyingPartyClient(relying_party, self.terminal_id, self.kind)
        self.pin_timeout = pin_timeout
        self.card_timeout = card_timeout
        self.platform_id = ""
        self.results: list[FlowResult] = []
        self._powered = False

    # -- Terminal ---------------------------------------------------------------------------------
    @property
    def reader(self) -> Reader:
        return self._reader

    def enter_pin(self, pin: str) -> None:
        self.keypad.enter(pin)

    def display_text(self) -> str:
        return self.display.text

    def close(self) -> None:
        with contextlib.suppress(RpError):
            self.rp.logout()
        with contextlib.suppress(DeviceError):
            if self._powered:
                self._reader.power_off()
        self._reader.close()

    def __enter__(self) -> ServiceTerminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def logged_in(self) -> bool:
        return self.rp.session is not None

    def prepare_card(self, timeout: float | None = None) -> None:
        """Waits for a card and powers it (flows do this themselves when needed)."""
        if timeout is not None:
            self.card_timeout = float(timeout)
        self._card_ready()

    def card_changed(self) -> None:
        """Told that another card was put in: the next flow powers it and logs in afresh."""
        self._powered = False
        with contextlib.suppress(RpError):
            self.rp.logout()

    @property
    def guard(self) -> PinGuard:
        return self.guard_factory() if self.guard_factory is not None else self._strict_guard

    # -- steps shared by the flows -------------------------------------------------------------------
    def _card_ready(self) -> None:
        if self._powered:
            return
        self.display.show("insert_card")
        self._reader.wait_for_card(self.card_timeout)
        self._reader.power_on()
        self._powered = True

    def _verify(self, kind: PinKind) -> None:
        """One prompt, at most one VERIFY, through the guard: a wrong PIN ends the flow (never retried here)."""
        guard = self.guard
        tries = guard.query_tries(kind)
        if tries == 0:
            self.display.show("pin_blocked")
            raise _Stop("pin_blocked", 0)
        prompt = PinPrompt(kind.name.lower(), self.display.show(PIN_PROMPTS[kind]))
        pin = self.keypad.take(prompt, self.pin_timeout)
        if pin is None:
            self.display.show("no_pin")
            raise _Stop("no_pin", tries)
        self.display.show("pin_typed")
        result = guard.verify(kind, pin.reveal(), select=False)
        del pin
        if result.ok:
            return
        if result.blocked or result.tries_left == 0:
            self.display.show("pin_blocked")
            raise _Stop("pin_blocked", 0)
        self.display.show("wrong_pin", tries=result.tries_left)
        raise _Stop("wrong_pin", result.tries_left)

    def _sign_auth(self, data: bytes) -> bytes:
        """Signs with the auth key; asks for the auth PIN only when the card's security state was lost."""
        response = self.card.sign("auth", checks.digest_info(data), check=False)
        if response.sw == SW_SECURITY_NOT_SATISFIED:
            self._verify(PinKind.AUTH)
            response = self.card.sign("auth", checks.digest_info(data), check=False)
        if not response.ok:
            raise CardStatusError("SIGN with the auth key", response)
        return response.data

    def _login(self, service: str) -> dict[str, Any]:
        """JPKI 利用者証明: the card signs the platform's challenge; the platform checks and links."""
        self._card_ready()
        challenge_id, challenge = self.rp.challenge(service)
        self.card.select_jpki()
        certificate = self.card.read_certificate("auth")
        self._verify(PinKind.AUTH)
        signature = self._sign_auth(challenge)
        answer = self.rp.login(challenge_id, certificate, signature)
        self.platform_id = answer["platform_id"]
        self.display.show("logged_in", platform_id=self.platform_id)
        return answer

    def _ensure_login(self, service: str) -> None:
        if not self.logged_in:
            self._login(service)

    def _transaction(self, service: str, params: dict[str, Any], box: dict[str, str]) -> dict[str, Any]:
        """Begin, confirm with the card's signature, commit; anything that stops the flow aborts it."""
        tx, summary, confirm = self.rp.begin(service, params)
        box["tx"] = tx
        self.display.show("confirm", summary=summary)
        signature = self._sign_auth(confirm)
        answer = self.rp.commit(tx, signature)
        box.pop("tx")
        return answer["result"] | {"tx": tx, "summary": summary, "platform_id": self.platform_id}

    def _run(self, flow: str, body: Callable[[dict[str, str]], dict[str, Any]]) -> FlowResult:
        """Runs a flow and turns how it ended into a :class:`FlowResult` and a screen."""
        box: dict[str, str] = {}
        outcome, tries, data = "ok", None, {}
        try:
            data = body(box)
        except PinGuardRefusal:
            self.keypad.clear()
            self.display.show("refused", reason="PIN guard")
            self._after_failure("guard_refused", box.get("tx", ""))
            raise  # the requirement fails with the guard's one-line reason
        except _Stop as stop:
            outcome, tries = stop.outcome, stop.tries_left
        except CardRemoved:
            outcome = "card_removed"
            self.display.show("card_removed")
        except NoCard:
            outcome = "no_card"
            self.display.show("no_card")
        except DeviceError:
            outcome = "device_error"
            self.display.show("device_error")
        except CardStatusError as exc:
            outcome = "card_error"  # the card refused a step (no text AP on a phone, a key that will not sign)
            self.display.show("card_error", reason=f"{exc.sw:04X}")
        except RpError as exc:
            outcome = {"revoked": "revoked", "unreachable": "unavailable"}.get(exc.code, "refused")
            if outcome == "refused":
                self.display.show("refused", reason=exc.code)
            else:
                self.display.show(outcome)
        finally:
            self.keypad.clear()
        if outcome != "ok":
            self._after_failure(outcome, box.get("tx", ""))
        result = FlowResult(flow, outcome == "ok", outcome, self.display.text, data, tries, data.get("tx", "")
                            or box.get("tx", ""))
        self.results.append(result)
        return result

    def _after_failure(self, outcome: str, tx: str) -> None:
        if tx:
            with contextlib.suppress(RpError):
                self.rp.abort(tx, outcome)
        if outcome in ("card_removed", "no_card", "device_error"):
            self._powered = False  # a card put back starts a new card session, and a new login
            with contextlib.suppress(RpError):
                self.rp.logout()

    # -- flows every terminal has -----------------------------------------------------------------------
    def login(self, service: str = "portal") -> FlowResult:
        """Logs in with the card's auth certificate (PIN, signature, OCSP/CRL at the platform)."""
        return self._run("login", lambda box: self._login(service))

    def logout(self) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self.rp.logout()
            self.platform_id = ""
            self.display.show("logged_out")
            return {}

        return self._run("logout", body)
