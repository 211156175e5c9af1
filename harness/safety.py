"""Secret redaction (and, with the lab inventory, the PIN guard).

PIN bytes travel only in VERIFY (INS 20) and CHANGE REFERENCE DATA (INS 24);
every place that shows an APDU (traces, logs, exceptions) goes through
:func:`redact_apdu`, so the rule lives in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.apdu import to_hex

if TYPE_CHECKING:
    from harness.jpki import JpkiClient, PinKind, VerifyResult

SECRET_INS = frozenset({0x20, 0x24})
MASK = "****"


def carries_secret(apdu: bytes) -> bool:
    """True when the command's data field is reference data (a PIN or password)."""
    return len(apdu) > 5 and apdu[1] in SECRET_INS and apdu[0] & 0x80 == 0


def redact_apdu(apdu: bytes) -> str:
    """Hex of a command APDU with the PIN data replaced by ``****`` (header and Lc kept)."""
    if not carries_secret(apdu):
        return to_hex(apdu)
    if apdu[4] == 0 and len(apdu) > 7:  # extended Lc
        return f"{to_hex(apdu[:7])} {MASK}"
    return f"{to_hex(apdu[:5])} {MASK}"


class PinGuardRefusal(AssertionError):
    """The guard refused a VERIFY that could lock a real card."""


def guard_wrong_attempt(kind: str, tries_left: int, reserve: int, expendable: bool, device: str) -> None:
    """Refuse a VERIFY that may fail when it would leave fewer than ``reserve`` tries on a real card."""
    if expendable:
        return
    if tries_left - 1 < reserve:
        raise PinGuardRefusal(
            f"PIN guard: a failing {kind} VERIFY on {device} would leave {tries_left - 1} tries "
            f"(reserve {reserve}); refused. Mark the card expendable in the lab inventory to allow it"
        )


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


class PinGuard:
    """Every VERIFY the harness sends to a card goes through here.

    On a card that is not expendable, the tries left are queried first and a VERIFY that could
    leave fewer than the reserve (if the PIN turned out wrong) is refused: a misconfigured PIN in a
    lab inventory must not lock a real card. A PIN the card has accepted in this session is trusted
    (``trusted`` lives as long as the open device), so a correct PIN can still restore a counter
    that a wrong-PIN requirement lowered.
    """

    def __init__(self, client: JpkiClient, *, expendable: bool, reserve: dict[str, int], device: str,
                 trusted: dict[str, str] | None = None) -> None:
        self.client = client
        self.expendable = expendable
        self.reserve = reserve
        self.device = device
        self.trusted = trusted if trusted is not None else {}

    def check(self, kind: PinKind) -> int:
        """Queries the tries left (selecting the PIN) and raises :class:`PinGuardRefusal` below the reserve."""
        name = kind.name.lower()
        tries = self.client.query_tries(kind)
        guard_wrong_attempt(name, tries, self.reserve.get(name, 3), self.expendable, self.device)
        return tries

    def verify(self, kind: PinKind, pin: str) -> VerifyResult:
        name = kind.name.lower()
        if self.expendable or self.trusted.get(name) == pin:
            result = self.client.verify(kind, pin)
        else:
            self.check(kind)
            result = self.client.verify(kind, pin, select=False)
        if result.ok:
            self.trusted[name] = pin
        elif self.trusted.get(name) == pin:
            del self.trusted[name]
        return result
