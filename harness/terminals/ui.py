"""What a person at a terminal sees and types: the screens, the keypad (or remote) and the display.

Screens are keys into :data:`MESSAGES` (the terminal's Japanese texts) so tests compare keys, not wording.
A typed PIN is a :class:`SecretPin`: it cannot leak through ``repr`` into a log, a report or a traceback.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.jpki import PinKind

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


