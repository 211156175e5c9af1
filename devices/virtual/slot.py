"""A reader slot holding a virtual card, with the faults a lab sees: removal, stalls.

Every bridge (in-process, vpcd, nfcpy UDP, serial firmware) passes APDUs through
a slot, so one fault plan works on every backend.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from devices.base import CardRemoved, NoCard

from .card import VirtualCard


@dataclass
class FaultPlan:
    """Faults armed for coming APDUs; indexes count APDUs from when the plan was armed (1 = the next one)."""

    remove_at_apdu: int | None = None  # the card is pulled while this APDU is in flight: no answer
    stall_at_apdu: int | None = None  # this APDU is answered only after ``stall_seconds``
    stall_seconds: float = 0.0
    remove_on_ins: int | None = None  # the card is pulled while an APDU with this INS is in flight…
    remove_on_occurrence: int = 1  # …the n-th such APDU after arming


class CardSlot:
    """Thread-safe: bridges serve the slot from their own threads while a test arms faults."""

    def __init__(self, card: VirtualCard | None = None) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.card = card
        self.faults = FaultPlan()
        self._armed_at = 0
        self._ins_seen = 0
        self.apdu_count = 0
        self.generation = 0  # bumps on every insertion/removal

    @property
    def present(self) -> bool:
        return self.card is not None

    def insert(self, card: VirtualCard) -> None:
        with self._changed:
            self.card = card
            card.powered = False
            self.generation += 1
            self._changed.notify_all()

    def remove(self) -> VirtualCard | None:
        with self._changed:
            card, self.card = self.card, None
            if card is not None:
                card.power_off()
            self.generation += 1
            self._changed.notify_all()
            return card

    def wait(self, present: bool, timeout: float) -> bool:
        """Wait until a card is (or is not) in the slot; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.present == present, timeout)

    def arm(self, plan: FaultPlan) -> None:
        with self._lock:
            self.faults = plan
            self._armed_at = self.apdu_count
            self._ins_seen = 0

    def power_on(self) -> bytes:
        with self._lock:
            if self.card is None:
                raise NoCard("no card in the virtual slot")
            return self.card.power_on()

    def power_off(self) -> None:
        with self._lock:
            if self.card is not None:
                self.card.power_off()

    def _pull_on_ins(self, faults: FaultPlan, apdu: bytes) -> bool:
        """Counts the APDUs of the plan's INS (under the lock); True for the one the card is pulled during."""
        if faults.remove_on_ins is None or len(apdu) < 2 or apdu[1] != faults.remove_on_ins:
            return False
        self._ins_seen += 1
        return self._ins_seen == faults.remove_on_occurrence

    def exchange(self, apdu: bytes) -> bytes:
        with self._lock:
            card = self.card
            if card is None:
                raise NoCard("no card in the virtual slot")
            self.apdu_count += 1
            index = self.apdu_count - self._armed_at
            faults = self.faults
            pull = self._pull_on_ins(faults, apdu)
        delay = card.response_delay(apdu)
        if faults.stall_at_apdu == index:
            delay += faults.stall_seconds
        if delay > 0:
            time.sleep(delay)  # outside the lock: the card can be pulled while it works
        if faults.remove_at_apdu == index or pull:
            self.remove()
            raise CardRemoved(f"card removed during APDU {index} after the fault plan was armed")
        with self._lock:
            if self.card is not card:
                raise CardRemoved("card removed while the APDU was in flight")
            return card.process(apdu)
