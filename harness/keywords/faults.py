"""One fault vocabulary for every backend: move the card, pull it mid-APDU, slow it, disturb the link, unplug.

Every fault reaches the device through its virtual rig (``devices.virtual.rig.rig_of``), the one door into a
virtual device, and is named the same on every backend: ``remove_card``, ``pull_card``, ``delay_card``,
``delay_signatures``, ``unplug`` (every virtual device) and the link faults ``lose_responses``,
``lose_commands``, ``corrupt_responses``, ``corrupt_commands``, ``truncate_responses``,
``truncate_commands``, ``delay_responses`` (the devices whose bridge has that link: nfcpy's UDP link, the
serial firmware). A virtual device without the fault fails with one line naming the faults it has; a real
device skips the requirement (a person or a lab robot moves a real card).
"""

from __future__ import annotations

import contextlib
import time

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices.base import DeviceError, Reader
from devices.serial.reader import SerialReader
from devices.virtual.rig import FAULTS, LINK_FAULTS, FaultPlan, VirtualRig, rig_of
from harness.credentials import facts_for_device
from harness.iso.apdu import to_hex
from harness.pin_guard import fresh_card

from . import privacy, trace_files
from .context import LibraryComponent, LibraryContext

COMMAND_INS = {"SELECT": 0xA4, "READ BINARY": 0xB0, "VERIFY": 0x20, "SIGN": 0x2A, "GET RESPONSE": 0xC0}


def command_ins(command: str) -> int:
    """The INS of a command named ``SIGN``, ``VERIFY``, ``READ BINARY``, ``SELECT`` or given in hex (``2A``)."""
    named = COMMAND_INS.get(command.strip().upper())
    if named is not None:
        return named
    try:
        return int(command, 16)
    except ValueError:
        raise ValueError(f"unknown command {command!r}: name one of {', '.join(COMMAND_INS)} "
                         "or give its INS in hex") from None


def require_rig(ctx: LibraryContext, fault: str) -> VirtualRig:
    """The open device's rig when it can inject ``fault``; a skip on a real device, one line on a virtual one
    that lacks it."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    rig = rig_of(ctx.require_reader())
    if rig is None:
        raise SkipExecution(f"{ctx.device_name} is not a virtual device: {fault} needs a person or a lab robot; "
                            "run this requirement on virtual:…")
    rig.require(fault, ctx.device_name)
    return rig


def power_up(reader: Reader, timeout: float) -> bytes:
    """Drops the old connection, waits for a card and powers it on; returns the ATR."""
    try:
        reader.power_off()
    except DeviceError as exc:
        logger.info(f"power off of the old connection: {exc}")
    reader.wait_for_card(timeout)
    return reader.power_on()


def insert_fresh_card(ctx: LibraryContext) -> str:
    """A factory-fresh card of the same profile in the slot, its facts and PIN knowledge reset, powered on."""
    reader = ctx.require_reader()
    rig = rig_of(reader)
    if rig is None:
        raise DeviceError(f"{ctx.device_name} is not a virtual device: its card cannot be replaced")
    rig.insert_fresh()
    trace_files.card_replaced(reader)
    ctx.facts = facts_for_device(rig.card_facts(), ctx.lab_device)
    fresh_card(ctx.device_name)
    privacy.protect(ctx)
    with contextlib.suppress(DeviceError):
        reader.power_off()
    reader.wait_for_card(5.0)
    ctx.atr = reader.power_on()
    return to_hex(ctx.atr)


class FaultState:
    """When a delayed answer is over (``Wait For Delayed Responses``)."""

    def __init__(self) -> None:
        self.delay_ends = 0.0


class FaultKeywords(LibraryComponent):
    """Fault injection on every virtual backend, one name per fault (see the module documentation)."""

    def _rig(self, fault: str) -> VirtualRig:
        return require_rig(self.ctx, fault)

    @property
    def _state(self) -> FaultState:
        return self.ctx.extension("faults", FaultState)

    # -- what the device can do -----------------------------------------------------------------
    @keyword
    def fault_is_supported(self, fault: str) -> bool:
        """True when the open device can inject ``fault`` (a name of the fault vocabulary)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        rig = rig_of(self.ctx.require_reader())
        return rig is not None and fault in rig.supported_faults()

    @keyword
    def require_fault(self, *faults: str) -> None:
        """Skips the test, with the reason, unless the open device can inject every one of ``faults``."""
        for fault in faults:
            if not self.fault_is_supported(fault):
                rig = rig_of(self.ctx.require_reader())
                has = "is not a virtual device" if rig is None else f"has {', '.join(rig.supported_faults())}"
                raise SkipExecution(f"{self.ctx.device_name} cannot inject {fault}: it {has}")

    # -- the card -------------------------------------------------------------------------------
    @keyword
    def remove_card(self, timeout: float = 5.0) -> None:
        """Takes the card out (off the field, out of the slot) between APDUs; where the host stack polls
        (PC/SC), waits up to ``timeout`` s until it reports the slot empty. Fault ``remove_card``."""
        self._rig("remove_card").remove(float(timeout))

    @keyword
    def insert_card(self, fresh: bool = False, timeout: float = 5.0) -> None:
        """Puts the removed card back (``fresh=True``: a factory-fresh card of its profile), unpowered, and
        waits up to ``timeout`` s until the reader sees it; ``timeout=0`` does not ask the reader (a serial
        module then announces the card itself). Power it with ``Reconnect Card``. Fault ``remove_card``."""
        self._rig("remove_card").insert(fresh=fresh)
        if float(timeout) > 0:
            self.ctx.require_reader().wait_for_card(float(timeout))

    @keyword("Pull Card During APDU")
    def pull_card_during_apdu(self, index: int = 1) -> None:
        """The card leaves while APDU ``index`` (1 = the next) is in flight: no answer, ``CardRemoved``.
        Counts APDUs that reach the card; replaces any armed card fault. Fault ``pull_card``."""
        self._rig("pull_card").arm(FaultPlan(remove_at_apdu=int(index)))

    @keyword
    def pull_card_during_command(self, command: str = "SIGN", occurrence: int = 1) -> None:
        """The card leaves while the ``occurrence``-th APDU of ``command`` (SIGN, VERIFY, READ BINARY, SELECT
        or an INS in hex) is in flight, whoever sends it (the harness, a terminal's flow). Fault ``pull_card``."""
        ins = command_ins(command)
        self._rig("pull_card").arm(FaultPlan(remove_on_ins=ins, remove_on_occurrence=int(occurrence)))

    @keyword
    def delay_card_answer(self, seconds: float, at_apdu: int = 1) -> None:
        """The card answers APDU ``at_apdu`` (1 = the next) only after ``seconds`` more; replaces any armed
        card fault. Fault ``delay_card``."""
        self._rig("delay_card").arm(FaultPlan(stall_at_apdu=int(at_apdu), stall_seconds=float(seconds)))

    @keyword
    def delay_card_signatures(self, delay_ms: int) -> None:
        """Every signature of the card takes ``delay_ms`` (0: the profile's own speed), to provoke S(WTX) or
        a terminal's patience. Fault ``delay_signatures``."""
        self._rig("delay_signatures").slow_signing(int(delay_ms))

    # -- the link -------------------------------------------------------------------------------
    @keyword
    def inject_link_fault(self, delay_seconds: float = 0.0, **faults: int) -> None:
        """Arms link faults for the coming frames, each name with how many frames it hits, replacing what was
        armed on the link: ``lose_responses=1`` (the answer never reaches the host), ``lose_commands=1``,
        ``corrupt_responses=1`` (a wrong check value), ``corrupt_commands=1``, ``truncate_responses=1``
        (a byte missing), ``truncate_commands=1``, ``delay_responses=1  delay_seconds=0.3``.

        nfcpy's UDP link has ``lose_*``; the serial firmware all but ``lose_commands``; any other device fails
        with one line naming its faults."""
        unknown = sorted(set(faults) - set(LINK_FAULTS)) or ([] if faults else ["(none)"])
        if unknown:
            raise ValueError(f"unknown link fault {unknown[0]!r}; known: {', '.join(LINK_FAULTS)}")
        rig = self._rig(next(iter(faults)))
        rig.arm_link({name: int(count) for name, count in faults.items()}, float(delay_seconds), self.ctx.device_name)

    @keyword
    def delay_responses_beyond_the_timeouts(self) -> float:
        """The serial module holds its next answer longer than every timeout and re-send of its protocol:
        the exchange ends in ``DeviceTimeout``. Returns the seconds of the delay. Fault ``delay_responses``."""
        rig = self._rig("delay_responses")
        reader = self.ctx.require_reader()
        if not isinstance(reader, SerialReader):
            raise DeviceError(f"{self.ctx.device_name}: the timeouts to outlast are a serial reader's")
        timing = reader.spec.timing
        per_try = timing.apdu_timeout + (timing.ack_timeout if reader.spec.framing.has_ack_nak else 0)
        seconds = round((timing.retries + 1) * per_try + 0.2, 3)
        rig.arm_link({"delay_responses": 1}, seconds, self.ctx.device_name)
        self._state.delay_ends = time.monotonic() + seconds
        return seconds

    @keyword
    def wait_for_delayed_responses(self) -> None:
        """Sleeps until the delay armed by ``Delay Responses Beyond The Timeouts`` is over and the late answers
        are on the line (the host must skip them as stale)."""
        time.sleep(max(0.0, self._state.delay_ends - time.monotonic()) + 0.2)

    # -- the reader -----------------------------------------------------------------------------
    @keyword
    def unplug_reader(self) -> None:
        """Takes the virtual reader away mid-run: its firmware or card server stops (serial, NFC, PC/SC bridges)
        or the in-process reader closes. The next APDU fails with ``DeviceGone`` or ``CardRemoved``;
        ``Open Device`` gives a new one. Fault ``unplug``."""
        self._rig("unplug").unplug()

    # -- back to normal -------------------------------------------------------------------------
    @keyword
    def clear_faults(self) -> None:
        """Disarms every fault of the card, the link and the firmware. Does nothing on a real device."""
        rig = rig_of(self.ctx.require_reader())
        if rig is not None:
            rig.clear_faults()

    @keyword
    def restore_card(self, timeout: float = 5.0) -> str:
        """Teardown: disarms every fault, puts a removed card back and powers the card up again (once more if
        the first try meets the card still settling); returns the ATR. On a real device only the power-up."""
        reader = self.ctx.reader
        if reader is None:
            return ""
        rig = rig_of(reader)
        if rig is not None:
            rig.restore()
        try:
            self.ctx.atr = power_up(reader, float(timeout))
        except DeviceError as exc:
            logger.info(f"restore: {exc}; powering up once more")
            self.ctx.atr = power_up(reader, float(timeout))
        return to_hex(self.ctx.atr)

    @keyword
    def insert_fresh_card(self) -> str:
        """Replaces the virtual card with a factory-fresh one of the same profile (full retry counters),
        disarms every fault and powers it on; returns the ATR. A real card cannot be replaced: one line."""
        return insert_fresh_card(self.ctx)
