"""The PIN guard (with the lab inventory); secret redaction lives in :mod:`harness.redact`.

``carries_secret``, ``redact_apdu`` and ``MASK`` are re-exported here for the callers that import them
from this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.redact import MASK as MASK
from harness.redact import SECRET_INS as SECRET_INS
from harness.redact import carries_secret as carries_secret
from harness.redact import redact_apdu as redact_apdu

if TYPE_CHECKING:
    from harness.jpki import JpkiClient, PinKind, VerifyResult


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
