"""Kiosks and set-top boxes as devices: a reader, a keypad (or remote), a display and the service flows.

The flows are the terminal software of the planning document, run over the terminal's reader with
:class:`~harness.jpki.JpkiClient` and over HTTP with the relying party:

- set-top box (CATV): login with the auth certificate (platform ID), facility booking, health records,
  elderly-watch (見守り) check-in;
- kiosk: certificate issuance at a convenience store (text-AP basic four after the text PIN), hospital
  reception (insurance eligibility by the auth certificate serial, payment), shelter check-in/out.

Rules every flow keeps: every PIN goes through the harness's PIN guard (``terminal.guard``); one VERIFY per
PIN the person typed — a wrong PIN ends the flow and the display
shows the tries left, the terminal never retries on its own; a card removed mid-flow aborts the
open transaction at the relying party; PINs live in :class:`SecretPin` and never reach a log, a
display or an exception.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devices.base import CardRemoved, DeviceError, NoCard, Reader, Terminal
from devices.uri import DeviceUri
from harness import pki
from harness.channel import CardChannel
from harness.jpki import CardStatusError, JpkiClient, PinKind
from harness.pin_guard import PinGuard, PinGuardRefusal
from harness.relying_party.client import RelyingPartyClient, RpError
from harness.trace import ApduTrace

SW_SECURITY_NOT_SATISFIED = 0x6982
_ids = itertools.count(1)

MESSAGES = {
    "idle": "ようこそ。カードを置いてください",
    "insert_card": "マイナンバーカードを置いてください",
    "enter_auth": "利用者証明用電子証明書の暗証番号（数字4桁）を入力してください",
    "enter_text": "券面事項入力補助用の暗証番号（数字4桁）を入力してください",
    "enter_sign": "署名用電子証明書の暗証番号（英数字6〜16桁）を入力してください",
    "pin_typed": "暗証番号: ****",
    "wrong_pin": "暗証番号が違います。残り{tries}回です",
    "pin_blocked": "暗証番号がロックされています。お住まいの市区町村の窓口でお手続きください",
    "no_pin": "暗証番号の入力がありませんでした。手続きを中止しました",
    "card_removed": "カードが取り外されました。手続きを中止しました",
    "no_card": "カードが読み取れません。カードを置き直してください",
    "device_error": "カードリーダーの通信エラーです。手続きを中止しました",
    "card_error": "このカードではご利用になれません（{reason}）",
    "revoked": "この電子証明書は失効しています。ご利用になれません",
    "refused": "お手続きできませんでした（{reason}）",
    "unavailable": "サービスに接続できません。しばらくしてからお試しください",
    "logged_in": "ログインしました（利用者番号 {platform_id}）",
    "logged_out": "ログアウトしました",
    "confirm": "{summary}　よろしければ確定します",
    "booked": "予約しました：{summary}",
    "records": "健診結果 {count}件を表示しています",
    "watch_done": "見守りチェックインを送信しました（通知先：{notified}）",
    "basic_four": "氏名 {name}／住所 {address}",
    "issued": "{document}を{copies}通交付しました（交付番号 {number}、手数料 {fee}円）",
    "eligible": "資格確認済み：保険者番号 {insurer} 記号番号 {insured_number} 負担割合 {copay_pct}割",
    "paid": "お支払いが完了しました（{amount}円、領収番号 {receipt}）",
    "shelter_in": "{shelter}に入所を記録しました（現在 {occupants}名）",
    "shelter_out": "{shelter}からの退所を記録しました（現在 {occupants}名）",
}
PIN_PROMPTS = {PinKind.AUTH: "enter_auth", PinKind.TEXT: "enter_text", PinKind.SIGN: "enter_sign"}


class SecretPin:
    """A typed PIN: masked in ``repr``/``str`` so it cannot leak into logs, tracebacks or reports."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The digits, for the one VERIFY they are typed for."""
        return self._value

    def __repr__(self) -> str:
        return "SecretPin(****)"

    __str__ = __repr__


@dataclass(frozen=True)
class PinPrompt:
    """What the display asks for: the person reads it and types the matching PIN."""

    kind: str  # "auth", "text", "sign"
    text: str


class Keypad:
    """The kiosk's PIN pad or the set-top box's remote.

    Entries typed ahead wait in a queue; when it is empty a flow asks :attr:`person` (if set), who
    answers a :class:`PinPrompt` with a PIN or None. A flow that ends clears what is left, so an
    entry is never used for a prompt it was not typed for after a failure.
    """

    def __init__(self) -> None:
        self._entries: queue.SimpleQueue[SecretPin] = queue.SimpleQueue()
        self.person: Callable[[PinPrompt], str | None] | None = None

    def enter(self, pin: str) -> None:
        self._entries.put(SecretPin(pin))

    def take(self, prompt: PinPrompt, timeout: float) -> SecretPin | None:
        try:
            return self._entries.get_nowait()
        except queue.Empty:
            pass
        if self.person is not None:
            answer = self.person(prompt)
            if answer is not None:
                return SecretPin(answer)
        try:
            return self._entries.get(timeout=timeout)
        except queue.Empty:
            return None

    def clear(self) -> None:
        with contextlib.suppress(queue.Empty):
            for _ in range(1000):
                self._entries.get_nowait()

    @property
    def pending(self) -> int:
        return self._entries.qsize()


class Display:
    """What the screen shows now, and the recent screens (bounded) for a test to look back at."""

    def __init__(self, limit: int = 50) -> None:
        self.text = MESSAGES["idle"]
        self.key = "idle"
        self.history: list[str] = [self.text]
        self.limit = limit

    def show(self, key: str, **params: Any) -> str:
        self.key = key
        self.text = MESSAGES[key].format(**params)
        self.history.append(self.text)
        del self.history[: -self.limit]
        return self.text


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
        self.uri = uri or getattr(reader, "uri", "")
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
        response = self.card.sign("auth", pki.digest_info(data), check=False)
        if response.sw == SW_SECURITY_NOT_SATISFIED:
            self._verify(PinKind.AUTH)
            response = self.card.sign("auth", pki.digest_info(data), check=False)
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


class SetTopBox(ServiceTerminal):
    """A CATV set-top box with a card reader, used with the TV remote."""

    kind = "stb"

    def book_facility(self, facility: str, date: str, slot: str) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("facility_booking")
            result = self._transaction("facility_booking", {"facility": facility, "date": date, "slot": slot}, box)
            self.display.show("booked", summary=result["summary"])
            return result

        return self._run("book_facility", body)

    def view_health_records(self) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("health_records")
            records = self.rp.health_records()
            self.display.show("records", count=len(records))
            return {"records": records}

        return self._run("view_health_records", body)

    def watch_check_in(self, status: str = "元気") -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("watch_check_in")
            result = self._transaction("watch_check_in", {"status": status}, box)
            self.display.show("watch_done", notified=result["notified"])
            return result

        return self._run("watch_check_in", body)


class Kiosk(ServiceTerminal):
    """A multi-function kiosk (convenience store, hospital reception, shelter reception) with a PIN pad."""

    kind = "kiosk"

    def issue_certificate(self, document: str = "residence", copies: int = 1) -> FlowResult:
        """コンビニ交付: basic four from the text AP (text PIN), login, then the issuance transaction."""
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._card_ready()
            self._verify(PinKind.TEXT)
            basic = self.card.read_basic_four()
            self.display.show("basic_four", name=basic.name, address=basic.address)
            self._login("certificate_issuance")
            params = {"document": document, "copies": int(copies), "name": basic.name, "address": basic.address}
            result = self._transaction("certificate_issuance", params, box)
            self.display.show("issued", document=result["document"], copies=copies, number=result["number"],
                              fee=result["fee"])
            return result | {"name": basic.name, "address": basic.address}

        return self._run("issue_certificate", body)

    def check_eligibility(self) -> FlowResult:
        """オンライン資格確認 at a hospital reception: the insurance linked to the auth certificate serial."""
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("eligibility")
            result = self.rp.eligibility()
            self.display.show("eligible", insurer=result["insurer"], insured_number=result["insured_number"],
                              copay_pct=round(result["copay"] * 10))
            return result

        return self._run("check_eligibility", body)

    def pay(self, amount: int, purpose: str = "外来診療費") -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login("payment")
            result = self._transaction("payment", {"amount": int(amount), "purpose": purpose}, box)
            self.display.show("paid", amount=f"{result['amount']:,}", receipt=result["receipt"])
            return result

        return self._run("pay", body)

    def shelter_check_in(self, shelter: str) -> FlowResult:
        return self._shelter("shelter_check_in", shelter, "shelter_in")

    def shelter_check_out(self, shelter: str) -> FlowResult:
        return self._shelter("shelter_check_out", shelter, "shelter_out")

    def _shelter(self, service: str, shelter: str, screen: str) -> FlowResult:
        def body(box: dict[str, str]) -> dict[str, Any]:
            self._ensure_login(service)
            result = self._transaction(service, {"shelter": shelter}, box)
            self.display.show(screen, shelter=result.get("name", shelter), occupants=result["occupants"])
            return result

        return self._run(service, body)


TERMINAL_KINDS: dict[str, type[ServiceTerminal]] = {"stb": SetTopBox, "kiosk": Kiosk}


def terminal_kind_of(uri: str, reader: Reader | None = None) -> str:
    """The kind a device name implies: ``via=stb|kiosk``, ``terminal=…``, or the serial protocol's terminal."""
    options = DeviceUri.parse(uri).options if ":" in uri else {}
    for key in ("terminal", "via"):
        value = options.get(key, "")
        if value in TERMINAL_KINDS:
            return value
    spec = getattr(reader, "spec", None)
    return getattr(spec, "terminal", "") if spec is not None else ""


def open_terminal(uri: str, relying_party: str, *, kind: str = "", terminal_id: str = "",
                  trace: ApduTrace | None = None, **options: Any) -> ServiceTerminal:
    """Opens the reader ``uri`` and wraps it in a kiosk or set-top box talking to ``relying_party``."""
    from devices import open_device

    reader = open_device(uri)
    try:
        chosen = kind or terminal_kind_of(uri, reader)
        if chosen not in TERMINAL_KINDS:
            raise DeviceError(f"{uri}: say which terminal this reader is in: kind={'|'.join(TERMINAL_KINDS)}")
        return TERMINAL_KINDS[chosen](reader, relying_party, terminal_id=terminal_id, trace=trace, uri=uri,
                                      **options)
    except BaseException:
        reader.close()
        raise
