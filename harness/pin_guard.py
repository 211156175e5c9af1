"""The guarded client: the one place that builds VERIFY (INS 20) with data and CHANGE REFERENCE DATA (INS 24).

A real card locks for good, so every caller that may send a PIN (card, text-AP and serial keywords, the
terminal flows and their keypads, change PIN) is handed a :class:`PinGuard`. The rule it enforces on a card
not marked expendable:

- no command is sent that could leave a PIN below its reserve if the PIN were wrong; a card found below its
  reserve is not VERIFYed for that PIN at all;
- a configured PIN the card refuses once is wrong for the rest of the run on that card;
- a PIN whose CHANGE got no clear answer is in "state unknown": no VERIFY with either value;
- a value that cannot be a PIN of its kind (format) is never sent;
- a PIN the card accepted is trusted only while the card's counter is where the guard last saw it (a counter
  the guard has not seen, or one that moved behind its back, means the value is proven again).

What the guard learns lives per device name for the whole process (:func:`knowledge_of`), so it survives
keyword calls, suites and a new ``Open Device`` of the same name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from harness.iso.apdu import CommandApdu, ResponseApdu
from harness.jpki import AID_TEXT, AID_VISUAL, CardStatusError, JpkiClient, PinKind, VerifyResult

DEFAULT_RESERVE = {"auth": 2, "sign": 3, "text": 2, "number_a": 2, "number_b": 2, "visual_a": 2,
                   "visual_b": 2, "juki": 2}  # 3 tries each but sign (5)
SECRET_COMMANDS = {0x20: "VERIFY", 0x21: "VERIFY", 0x24: "CHANGE REFERENCE DATA",
                   0x25: "CHANGE REFERENCE DATA", 0x2C: "RESET RETRY COUNTER"}
PIN_FORMATS: dict[str, tuple[re.Pattern[str], str]] = {
    "auth": (re.compile(r"[0-9]{4}"), "exactly 4 digits"),
    "text": (re.compile(r"[0-9]{4}"), "exactly 4 digits"),
    "sign": (re.compile(r"[A-Z0-9]{6,16}"), "6 to 16 of A-Z and 0-9"),
    "number_a": (re.compile(r"[0-9]{12}"), "12 digits (the My Number)"),
    "number_b": (re.compile(r"[0-9]{14}"), "14 digits (birth date, expiry year, security code)"),
}
PIN_FORMATS["visual_a"], PIN_FORMATS["visual_b"] = PIN_FORMATS["number_a"], PIN_FORMATS["number_b"]
PIN_FORMATS["juki"] = PIN_FORMATS["auth"]
LABELS = {"auth": "auth PIN", "sign": "sign password", "text": "text PIN", "number_a": "照合番号A",
          "number_b": "照合番号B", "visual_a": "券面 照合番号A", "visual_b": "券面 照合番号B", "juki": "住基 PIN"}
HOW_TO_MARK = "set expendable = true for its card in the lab inventory"
SW_PIN_UNSET = 0x6A88  # UNCERTAIN (devices/virtual/provisioning.py): a phone PIN not set yet


class PinGuardRefusal(AssertionError):
    """The guard refused a command that could lock (or lose) a PIN of a card; nothing was sent."""


class NeedsExpendableCard(PinGuardRefusal):
    """The step is allowed on an expendable card only (a wrong try would cross the reserve, a CHANGE…)."""


class ConfiguredPinWrong(PinGuardRefusal):
    """The card refused the configured PIN earlier in this run: it is not sent again."""


class PinStateUnknown(PinGuardRefusal):
    """A CHANGE REFERENCE DATA got no clear answer: neither the old nor the new value is known to hold."""


class PinFormatError(PinGuardRefusal):
    """The value cannot be a PIN of its kind, so it is never sent."""


class RawSecretRefused(PinGuardRefusal):
    """A raw APDU carries a PIN: Robot would log it before any keyword could mask it."""


def secret_command(apdu: bytes) -> str | None:
    """The name of the PIN command ``apdu`` is when it carries reference data (any class), else None."""
    if len(apdu) > 5 and apdu[1] in SECRET_COMMANDS:
        return SECRET_COMMANDS[apdu[1]]
    return None


def refuse_raw_secret(apdu: bytes, keyword: str = "Send APDU") -> None:
    """Raises :class:`RawSecretRefused` for VERIFY/CHANGE with data; the empty VERIFY (retry query) passes."""
    name = secret_command(apdu)
    if name is not None:
        raise RawSecretRefused(
            f"{keyword} refuses {name} with data: a PIN given as bytes lands in Robot's log; use a keyword "
            "that takes the PIN's name (Verify PIN, Verify Wrong PIN, Verify Collation Number, Change PIN To "
            "New Value); an empty VERIFY (retry query) is allowed")


def check_pin_format(name: str, value: str, *, configured: bool, device: str) -> None:
    """Refuses a value that no card could accept for PIN ``name`` (one line, the value never shown)."""
    rule = PIN_FORMATS.get(name)
    if rule is None or rule[0].fullmatch(value):
        return
    what = f"the configured {LABELS.get(name, name)}" if configured else f"a {LABELS.get(name, name)} entry"
    raise PinFormatError(f"{what} for {device} cannot be right (it must be {rule[1]}, got {len(value)} "
                         "characters that do not fit); refused, nothing sent")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass
class PinRecord:
    """What the guard knows about one PIN of one card (values only as digests)."""

    wrong: set[str] = field(default_factory=set, repr=False)  # configured values the card refused
    wrong_tries: int | None = None  # tries left when it refused one
    trusted: set[str] = field(default_factory=set, repr=False)  # values the card accepted
    unset: bool = False  # the last query said no PIN is set (a phone before provisioning)
    last_tries: int | None = None  # the counter where the guard expects it now (None: not known)
    most_tries: int | None = None  # the highest counter seen: where a success puts it
    unknown: bool = False  # a CHANGE got no clear answer


@dataclass
class CardKnowledge:
    pins: dict[str, PinRecord] = field(default_factory=dict)

    def pin(self, name: str) -> PinRecord:
        return self.pins.setdefault(name, PinRecord())


_KNOWLEDGE: dict[str, CardKnowledge] = {}


def knowledge_of(device: str) -> CardKnowledge:
    """The guard's knowledge of the card behind ``device``, for as long as this process runs."""
    return _KNOWLEDGE.setdefault(device, CardKnowledge())


def fresh_card(device: str) -> None:
    """A factory-fresh card of the same profile went in: its counters and PINs are known again.

    Configured values found wrong stay wrong (the configuration did not change)."""
    knowledge = knowledge_of(device)
    for record in knowledge.pins.values():
        record.unknown = False
        record.trusted.clear()
        record.last_tries = record.most_tries = None


@dataclass(frozen=True)
class PinTarget:
    """A PIN object on the card: its name (``auth``, ``number_a``…), applet and EF.

    ``p2`` ``80`` addresses the selected EF; ``80|SFI`` names the EF by its short identifier (no SELECT EF)."""

    name: str
    applet: str | bytes
    fid: int
    p2: int = 0x80

    @classmethod
    def of(cls, kind: PinKind) -> PinTarget:
        return cls(kind.name.lower(), kind.applet, kind.fid)

    @classmethod
    def by_short_identifier(cls, kind: PinKind) -> PinTarget:
        return cls(kind.name.lower(), kind.applet, kind.fid, 0x80 | (kind.fid & 0x1F))

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)


COLLATION_NUMBERS = {"A": PinTarget("number_a", AID_TEXT, 0x0014), "B": PinTarget("number_b", AID_TEXT, 0x0015)}
CARD_FACE_COLLATION_NUMBERS = {"A": PinTarget("visual_a", AID_VISUAL, 0x0013),
                               "B": PinTarget("visual_b", AID_VISUAL, 0x0012)}


class PinGuard:
    """The guarded client of one card: every VERIFY and CHANGE REFERENCE DATA goes through it.

    ``configured`` gives the value in force for a PIN name (the device's configured PIN, or one a test changed).
    """

    def __init__(self, client: JpkiClient, *, expendable: bool, reserve: Mapping[str, int] | None = None,
                 device: str, configured: Callable[[str], str] | None = None) -> None:
        self.client = client
        self.expendable = expendable
        self.reserve = {**DEFAULT_RESERVE, **(reserve or {})}
        self.device = device
        self._configured = configured
        self.knowledge = knowledge_of(device)

    # -- values --------------------------------------------------------------------------------
    def configured(self, name: str) -> str:
        """The configured value in force for ``name``, format-checked before anything is sent."""
        if self._configured is None:
            raise PinGuardRefusal(f"no configured PINs are known for {self.device}")
        value = self._configured(name)
        check_pin_format(name, value, configured=True, device=self.device)
        return value

    def _is_configured(self, name: str, value: str) -> bool:
        if self._configured is None:
            return False
        try:
            return self._configured(name) == value
        except LookupError:
            return False

    # -- queries --------------------------------------------------------------------------------
    def _select(self, target: PinTarget) -> None:
        self.client.select_applet(target.applet)
        if target.p2 == 0x80:  # else the short identifier in P2 names the EF
            self.client.select_ef(target.fid)

    def query(self, target: PinTarget, *, select: bool = True) -> int:
        """Tries left from the empty VERIFY (never costs a try)."""
        if select:
            self._select(target)
        response = self.client.channel.transmit(CommandApdu(0x00, 0x20, 0x00, target.p2), f"query {target.name} tries")
        if response.sw & 0xFFF0 != 0x63C0:
            raise CardStatusError(f"query {target.label} tries", response)
        tries = response.sw2 & 0x0F
        record = self.knowledge.pin(target.name)
        record.last_tries = tries
        record.most_tries = max(tries, record.most_tries or 0)
        return tries

    def query_tries(self, kind: PinKind, *, select: bool = True) -> int:
        return self.query(PinTarget.of(kind), select=select)

    # -- the rule ----------------------------------------------------------------------------------
    def _refuse_known_bad(self, target: PinTarget, value: str, configured: bool) -> None:
        record = self.knowledge.pin(target.name)
        if record.unknown:
            raise PinStateUnknown(
                f"the {target.label} of {self.device} is in an unknown state (a PIN change got no clear answer); "
                "no VERIFY is sent with either value for the rest of this run")
        if configured and _digest(value) in record.wrong:
            raise ConfiguredPinWrong(f"the configured {target.label} is wrong; {record.wrong_tries} tries left "
                                     f"on {self.device} (refused by the card earlier in this run; not sent again)")

    def _admit(self, target: PinTarget, value: str, select: bool) -> None:
        """On a guarded card: query the counter and refuse what a wrong value could take below the reserve."""
        record = self.knowledge.pin(target.name)
        previous = record.last_tries
        tries = self.query(target, select=select)
        reserve = self.reserve.get(target.name, 3)
        digest = _digest(value)
        if digest in record.trusted and (previous is None or previous != tries):
            record.trusted.discard(digest)  # the counter is not where the guard left it: prove the value again
        if tries < reserve:
            raise NeedsExpendableCard(
                f"the {target.label} of {self.device} has {tries} tries left, below the reserve of {reserve}: "
                f"no VERIFY is sent for it; this needs an expendable card ({HOW_TO_MARK})")
        if digest in record.trusted:
            return
        if tries - 1 < reserve:
            raise NeedsExpendableCard(
                f"a failing {target.label} VERIFY on {self.device} would leave {tries - 1} tries (reserve "
                f"{reserve}); refused: this needs an expendable card ({HOW_TO_MARK})")

    def _record(self, target: PinTarget, value: str, configured: bool, sw: int) -> None:
        record = self.knowledge.pin(target.name)
        digest = _digest(value)
        if sw == 0x9000:
            record.trusted.add(digest)
            record.wrong.discard(digest)
            record.last_tries = record.most_tries  # a success resets the counter to its maximum
        elif sw & 0xFFF0 == 0x63C0:
            record.trusted.discard(digest)
            record.last_tries = sw & 0x0F
            if configured:
                record.wrong.add(digest)
                record.wrong_tries = sw & 0x0F
        elif sw == 0x6984:
            record.trusted.discard(digest)
            record.last_tries = 0

    def verify_value(self, target: PinTarget, value: str, *, configured: bool | None = None,
                     select: bool = True) -> VerifyResult:
        """VERIFYs ``value`` for ``target`` under the rule; never raises on a wrong PIN (the SW says it).

        ``select=False``: the PIN EF is selected already (a fault may be armed for the VERIFY itself)."""
        configured = self._is_configured(target.name, value) if configured is None else configured
        check_pin_format(target.name, value, configured=configured, device=self.device)
        self._refuse_known_bad(target, value, configured)
        if not self.expendable:
            self._admit(target, value, select)  # queries the counter; leaves the PIN EF selected
        elif select:
            self._select(target)
        cmd = CommandApdu(0x00, 0x20, 0x00, target.p2, value.encode("utf-8"))
        try:
            response = self.client.channel.transmit(cmd, f"VERIFY {target.name}")
        except Exception:
            record = self.knowledge.pin(target.name)
            record.trusted.discard(_digest(value))  # the answer was lost: the counter may have moved
            record.last_tries = None
            raise
        self._record(target, value, configured, response.sw)
        return VerifyResult(response.sw)

    def verify(self, kind: PinKind, value: str, *, select: bool = True) -> VerifyResult:
        """VERIFYs any value (a keypad entry, another profile's PIN); configured values are recognised."""
        return self.verify_value(PinTarget.of(kind), value, select=select)

    def verify_configured(self, kind: PinKind) -> VerifyResult:
        target = PinTarget.of(kind)
        return self.verify_value(target, self.configured(target.name), configured=True)

    def prove_configured(self, target: PinTarget) -> None:
        """On a guarded card, before a deliberately wrong value: the configured PIN must be known good, so a
        later VERIFY can restore the counter. Sends one guarded VERIFY unless the card accepted it already."""
        if self.expendable:
            return
        value = self.configured(target.name)
        if _digest(value) in self.knowledge.pin(target.name).trusted:
            return
        result = self.verify_value(target, value, configured=True)
        if not result.ok:
            tries = result.tries_left
            raise ConfiguredPinWrong(f"the configured {target.label} is wrong; {tries} tries left on {self.device}")

    def verify_other(self, kind: PinKind, value: str) -> VerifyResult:
        """A value that is not the configured one (e.g. another profile's PIN): guarded like a wrong PIN."""
        target = PinTarget.of(kind)
        self.prove_configured(target)
        return self.verify_value(target, value, configured=False)

    def verify_wrong(self, kind: PinKind, *, select: bool = True) -> VerifyResult:
        """A wrong value of the configured PIN's format: a try is spent only where the reserve allows it."""
        target = PinTarget.of(kind)
        wrong = wrong_pin_like(self.configured(target.name))
        self.prove_configured(target)
        return self.verify_value(target, wrong, configured=False, select=select)

    def probe_blocked(self, target: PinTarget, value: str = "0000") -> VerifyResult:
        """VERIFYs ``value`` on an object the card reports blocked (query ``63C0``), where no try can be lost:
        the answer should be ``6984``. Refused, with nothing sent but the query, when the object has tries."""
        tries = self.query(target)
        if tries != 0:
            raise NeedsExpendableCard(f"{target.label} of {self.device} has {tries} tries: a VERIFY to show it "
                                      "blocked would cost one; refused")
        response = self.client.channel.transmit(CommandApdu(0x00, 0x20, 0x00, target.p2, value.encode("utf-8")),
                                                f"VERIFY blocked {target.name}")
        return VerifyResult(response.sw)

    # -- first PINs (a phone's secure element, JPKI-FACTS §8) -----------------------------------------
    def pin_is_unset(self, target: PinTarget) -> bool:
        """The empty VERIFY on the selected PIN EF: ``6A88`` means no PIN is set yet (UNCERTAIN SW), ``63Cx`` or
        ``9000`` a set one. What it says decides whether :meth:`set_initial_pin` may send."""
        response = self.client.channel.transmit(CommandApdu(0x00, 0x20, 0x00, target.p2), f"query {target.name} PIN")
        record = self.knowledge.pin(target.name)
        record.unset = response.sw == SW_PIN_UNSET
        if record.unset or response.sw & 0xFFF0 == 0x63C0 or response.ok:
            return record.unset
        raise CardStatusError(f"query {target.label}", response)

    def set_initial_pin(self, target: PinTarget, value: str, *, p1: int = 0x01) -> ResponseApdu:
        """CHANGE REFERENCE DATA with no old value on the selected PIN EF, only right after :meth:`pin_is_unset`
        said it is unset: a PIN that is set is never replaced this way. The value's format is checked first.
        A lost answer needs no "unknown" mark: the next query shows whether the one value sent was set."""
        check_pin_format(target.name, value, configured=True, device=self.device)
        record = self.knowledge.pin(target.name)
        if not record.unset:
            raise PinGuardRefusal(f"the {target.label} of {self.device} is not known to be unset: a first PIN is "
                                  "sent only right after the query shows none")
        record.unset = False
        cmd = CommandApdu(0x00, 0x24, p1, target.p2, value.encode("utf-8"))
        return self.client.channel.transmit(cmd, f"set {target.name} PIN")

    # -- CHANGE REFERENCE DATA --------------------------------------------------------------------
    def _require_expendable(self, what: str) -> None:
        if not self.expendable:
            raise NeedsExpendableCard(f"{what} on {self.device} needs an expendable card: the card could keep a "
                                      f"PIN the harness does not know ({HOW_TO_MARK})")

    def _send_change(self, target: PinTarget, new: str) -> ResponseApdu:
        cmd = CommandApdu(0x00, 0x24, 0x01, 0x80, new.encode("utf-8"))
        try:
            response = self.client.channel.transmit(cmd, f"CHANGE {target.name}")
        except Exception as exc:
            self.knowledge.pin(target.name).unknown = True
            raise PinStateUnknown(
                f"CHANGE REFERENCE DATA of the {target.label} on {self.device} got no answer "
                f"({type(exc).__name__}); the PIN is now in an unknown state: no further VERIFY is sent with "
                "either value") from None
        record = self.knowledge.pin(target.name)
        if response.ok:
            record.trusted = {_digest(new)}
            record.wrong.discard(_digest(new))
        return response

    def change(self, kind: PinKind, old: str, new: str) -> ResponseApdu:
        """VERIFY the old value (guarded), then CHANGE REFERENCE DATA: expendable cards only."""
        target = PinTarget.of(kind)
        self._require_expendable(f"changing the {target.label}")
        result = self.verify_value(target, old)
        if not result.ok:
            refused = ResponseApdu(b"", result.sw >> 8, result.sw & 0xFF)
            raise CardStatusError(f"VERIFY {kind.name} before change", refused)
        return self._send_change(target, new)

    def change_without_verify(self, kind: PinKind, new: str) -> ResponseApdu:
        """CHANGE REFERENCE DATA with no VERIFY first (the card should answer 6982): expendable cards only."""
        target = PinTarget.of(kind)
        self._require_expendable(f"CHANGE REFERENCE DATA of the {target.label}")
        self._refuse_known_bad(target, new, False)
        self._select(target)
        return self._send_change(target, new)


def wrong_pin_like(pin: str) -> str:
    """A PIN of the same format that is certainly different (the card sees a plausible wrong PIN)."""
    last = pin[-1]
    if last.isdigit():
        replacement = str((int(last) + 1) % 10)
    elif last.isalpha():
        replacement = "A" if last != "A" else "B"
    else:
        replacement = "0"
    return pin[:-1] + replacement


def new_pin_like(pin: str) -> str:
    """A different PIN of the same format, for change-PIN requirements."""
    if pin.isdigit():
        return "".join(str((int(c) + 5) % 10) for c in pin)
    return wrong_pin_like(pin[::-1])[::-1] if pin[0] != pin[-1] else wrong_pin_like(pin)


def guard_wrong_attempt(kind: str, tries_left: int, reserve: int, expendable: bool, device: str) -> None:
    """Refuses a VERIFY that may fail when it would leave fewer than ``reserve`` tries on a guarded card."""
    if expendable:
        return
    if tries_left - 1 < reserve:
        raise NeedsExpendableCard(
            f"PIN guard: a failing {kind} VERIFY on {device} would leave {tries_left - 1} tries "
            f"(reserve {reserve}); refused. This needs an expendable card ({HOW_TO_MARK})")
