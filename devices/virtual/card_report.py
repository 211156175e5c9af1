"""What a served virtual card says about itself: its retry counters and its own count of wrong VERIFYs.

``hil virtual serve … --state-file PATH`` rewrites PATH (JSON, atomically) after every APDU, so a test or a
person can see, from the card side and not from the harness, what a run did to the card's PINs.
``--tries auth=1`` pre-sets a counter, as a card that has already lost tries would be.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from .card import VirtualCard


class TriesError(ValueError):
    """A malformed ``--tries`` option; one line."""


def parse_tries(items: list[str] | None, card: VirtualCard) -> dict[str, int]:
    """``["auth=1", "sign=3"]`` → {"auth": 1, "sign": 3}, checked against the card's PINs and limits."""
    pins = card.pins()
    wanted: dict[str, int] = {}
    for item in items or []:
        for part in item.split(","):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in pins:
                raise TriesError(f"--tries takes PIN=N with PIN one of {', '.join(sorted(pins))}; got {part!r}")
            try:
                tries = int(value)
            except ValueError:
                raise TriesError(f"--tries {name}: {value!r} is not a number") from None
            if not 0 <= tries <= pins[name].max_tries:
                raise TriesError(f"--tries {name}={tries}: must be 0..{pins[name].max_tries}")
            wanted[name] = tries
    return wanted


def preset_tries(card: VirtualCard, tries: dict[str, int]) -> None:
    for name, value in tries.items():
        card.pins()[name].tries_left = value


class CardCounters:
    """Watches a card's PINs from the card side: counters now, at the start, and the lowest they went."""

    def __init__(self) -> None:
        self.apdus = 0
        self.start: dict[str, int] = {}
        self.lowest: dict[str, int] = {}
        self._lock = threading.Lock()

    def attach(self, card: VirtualCard) -> None:
        self.start = {name: pin.tries_left for name, pin in card.pins().items()}
        self.lowest = dict(self.start)
        card.observers.append(self)

    def __call__(self, card: VirtualCard) -> None:
        with self._lock:
            self.apdus += 1
            for name, pin in card.pins().items():
                self.lowest[name] = min(self.lowest.get(name, pin.tries_left), pin.tries_left)

    def state(self, card: VirtualCard) -> dict[str, object]:
        """The card's own account of its PINs (no values: counters only)."""
        with self._lock:
            return {"apdus": self.apdus, "pins": {
                name: {"tries_left": pin.tries_left, "max_tries": pin.max_tries, "start": self.start.get(name),
                       "lowest": self.lowest.get(name), "wrong_verifies": pin.wrong_verifies, "changes": pin.changes}
                for name, pin in sorted(card.pins().items())}}


class StateFile(CardCounters):
    """Rewrites ``path`` with :meth:`CardCounters.state` after every APDU the card answers (and at the start)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def attach(self, card: VirtualCard) -> None:
        super().attach(card)
        self.write(card)

    def __call__(self, card: VirtualCard) -> None:
        super().__call__(card)
        self.write(card)

    def write(self, card: VirtualCard) -> None:
        state = self.state(card)
        with self._lock:
            temporary = self.path.with_name(self.path.name + ".tmp")
            temporary.write_text(json.dumps(state, sort_keys=True), encoding="utf-8")
            os.replace(temporary, self.path)


def read_state(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
