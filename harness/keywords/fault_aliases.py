"""The fault keywords' old names, before one vocabulary (``harness.keywords.faults``) replaced them.

Each logs one deprecation warning per run naming its successor and calls it, so a lab's own suites keep
running while they move to the new names; the suites in ``robot/`` use the new names only.
"""

from __future__ import annotations

from typing import Any

from robot.api import logger
from robotlibcore import keyword

from devices.virtual.rig import FaultPlan
from harness.iso.apdu import to_hex

from .faults import FaultKeywords, require_rig

_WARNED: set[str] = set()
SERIAL_NAMES = {"mute_responses": "lose_responses", "corrupt_responses": "corrupt_responses",
                "corrupt_commands": "corrupt_commands", "drop_response_bytes": "truncate_responses",
                "drop_command_bytes": "truncate_commands", "stall_responses": "delay_responses"}


def deprecated(old: str, new: str) -> None:
    """One WARN per run and old name: which keyword to use instead."""
    if old not in _WARNED:
        _WARNED.add(old)
        logger.warn(f"Keyword '{old}' is deprecated: use '{new}' (harness.keywords.faults)")


def _int_or_none(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(str(value), 0) if isinstance(value, str) else int(value)


class DeprecatedFaultKeywords(FaultKeywords):
    """Old fault keyword names (transport, contactless, serial, device and terminal keywords), kept working."""

    # -- transport ------------------------------------------------------------------------------
    @keyword
    def remove_card_from_virtual_slot(self, timeout: float = 5.0) -> None:
        """Deprecated: use ``Remove Card``."""
        deprecated("Remove Card From Virtual Slot", "Remove Card")
        self.remove_card(timeout)

    @keyword
    def insert_card_into_virtual_slot(self, fresh: bool = False, timeout: float = 5.0) -> None:
        """Deprecated: use ``Insert Card``."""
        deprecated("Insert Card Into Virtual Slot", "Insert Card")
        self.insert_card(fresh, timeout)

    @keyword
    def arm_fault(self, remove_at_apdu: int | None = None, stall_at_apdu: int | None = None,
                  stall_seconds: float = 0.0) -> None:
        """Deprecated: use ``Pull Card During APDU`` or ``Delay Card Answer``."""
        deprecated("Arm Fault", "Pull Card During APDU' or 'Delay Card Answer")
        require_rig(self.ctx, "pull_card").arm(FaultPlan(
            remove_at_apdu=_int_or_none(remove_at_apdu), stall_at_apdu=_int_or_none(stall_at_apdu),
            stall_seconds=float(stall_seconds)))

    @keyword
    def restore_card_in_virtual_slot(self) -> None:
        """Deprecated: use ``Restore Card``."""
        deprecated("Restore Card In Virtual Slot", "Restore Card")
        self.restore_card()

    # -- contactless ----------------------------------------------------------------------------
    @keyword
    def remove_card_from_field(self, during_apdu: int = 0) -> None:
        """Deprecated: use ``Remove Card`` or ``Pull Card During APDU``."""
        deprecated("Remove Card From Field", "Remove Card' or 'Pull Card During APDU")
        if int(during_apdu) > 0:
            self.pull_card_during_apdu(int(during_apdu))
        else:
            self.remove_card()

    @keyword
    def return_card_to_field(self, timeout: float = 5.0) -> str:
        """Deprecated: use ``Insert Card`` then ``Reconnect Card``."""
        deprecated("Return Card To Field", "Insert Card' then 'Reconnect Card")
        self.insert_card(timeout=timeout)
        self.ctx.atr = self.ctx.require_reader().power_on()
        return to_hex(self.ctx.atr)

    @keyword
    def set_card_response_delay(self, delay_ms: int, command: str = "sign") -> None:
        """Deprecated: use ``Delay Card Signatures`` or ``Delay Card Answer``."""
        deprecated("Set Card Response Delay", "Delay Card Signatures' or 'Delay Card Answer")
        if command == "sign":
            self.delay_card_signatures(int(delay_ms))
        elif command == "next":
            if int(delay_ms):
                self.delay_card_answer(int(delay_ms) / 1000)
            else:
                require_rig(self.ctx, "delay_card").arm(FaultPlan())
        else:
            raise ValueError(f"command must be 'sign' or 'next', got '{command}'")

    @keyword
    def lose_next_frames(self, count: int = 1, direction: str = "response") -> None:
        """Deprecated: use ``Inject Link Fault    lose_responses=N`` (or ``lose_commands=N``)."""
        deprecated("Lose Next Frames", "Inject Link Fault")
        if direction not in ("response", "command"):
            raise ValueError(f"direction must be 'response' or 'command', got '{direction}'")
        self.inject_link_fault(**{f"lose_{direction}s": int(count)})

    # -- serial ---------------------------------------------------------------------------------
    @keyword
    def stall_longer_than_the_timeouts(self) -> float:
        """Deprecated: use ``Delay Responses Beyond The Timeouts``."""
        deprecated("Stall Longer Than The Timeouts", "Delay Responses Beyond The Timeouts")
        return self.delay_responses_beyond_the_timeouts()

    @keyword
    def wait_for_stall_to_end(self) -> None:
        """Deprecated: use ``Wait For Delayed Responses``."""
        deprecated("Wait For Stall To End", "Wait For Delayed Responses")
        self.wait_for_delayed_responses()

    @keyword
    def inject_serial_fault(self, **plan: str) -> None:
        """Deprecated: use ``Inject Link Fault`` (``mute_responses`` is ``lose_responses``, ``drop_*_bytes``
        ``truncate_*``, ``stall_responses`` ``delay_responses``) or ``Pull Card During Command``."""
        deprecated("Inject Serial Fault", "Inject Link Fault")
        values = {key: float(value) if key == "stall_seconds" else _int_or_none(value) for key, value in plan.items()}
        ins, occurrence = values.pop("pull_card_on_ins", None), values.pop("pull_card_occurrence", 1)
        delay = float(values.pop("stall_seconds", 0.0) or 0.0)
        unknown = sorted(set(values) - set(SERIAL_NAMES))
        if unknown:
            raise ValueError(f"unknown serial fault {unknown[0]!r}; known: {', '.join(SERIAL_NAMES)}, "
                             "pull_card_on_ins, pull_card_occurrence, stall_seconds")
        if values:
            self.inject_link_fault(delay, **{SERIAL_NAMES[k]: int(v or 0) for k, v in values.items()})
        if ins is not None:
            self.pull_card_during_command(f"{int(ins):02X}", int(occurrence or 1))

    @keyword
    def clear_serial_faults(self) -> None:
        """Deprecated: use ``Clear Faults``."""
        deprecated("Clear Serial Faults", "Clear Faults")
        self.clear_faults()

    @keyword
    def slow_down_card(self, seconds: float, at_apdu: int = 1) -> None:
        """Deprecated: use ``Delay Card Answer``."""
        deprecated("Slow Down Card", "Delay Card Answer")
        self.delay_card_answer(seconds, at_apdu)

    @keyword("Pull Card At APDU")
    def pull_card_at_apdu(self, index: int = 1) -> None:
        """Deprecated: use ``Pull Card During APDU``."""
        deprecated("Pull Card At APDU", "Pull Card During APDU")
        self.pull_card_during_apdu(index)

    @keyword
    def take_card_out_of_serial_reader(self) -> None:
        """Deprecated: use ``Remove Card``."""
        deprecated("Take Card Out Of Serial Reader", "Remove Card")
        self.remove_card()

    @keyword
    def put_card_into_serial_reader(self, fresh: bool = False) -> None:
        """Deprecated: use ``Insert Card    timeout=0``."""
        deprecated("Put Card Into Serial Reader", "Insert Card")
        self.insert_card(fresh, timeout=0)

    @keyword
    def restore_serial_reader(self) -> None:
        """Deprecated: use ``Restore Card``."""
        deprecated("Restore Serial Reader", "Restore Card")
        self.restore_card(timeout=2.0)

    # -- device and terminal --------------------------------------------------------------------
    @keyword
    def insert_fresh_virtual_card(self) -> str:
        """Deprecated: use ``Insert Fresh Card``."""
        deprecated("Insert Fresh Virtual Card", "Insert Fresh Card")
        return self.insert_fresh_card()

    @keyword
    def unplug_virtual_reader(self) -> None:
        """Deprecated: use ``Unplug Reader``."""
        deprecated("Unplug Virtual Reader", "Unplug Reader")
        self.unplug_reader()

    @keyword
    def pull_card_during_next(self, command: str = "SIGN", occurrence: int = 1) -> None:
        """Deprecated: use ``Pull Card During Command``."""
        deprecated("Pull Card During Next", "Pull Card During Command")
        self.pull_card_during_command(command, occurrence)
