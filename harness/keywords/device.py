"""Keywords that open, power and replace the device under test."""

from __future__ import annotations

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices import DeviceError, open_device
from devices.remote import RemoteReader
from devices.virtual.rig import rig_of
from harness import lab, pools
from harness.channel import CardChannel
from harness.credentials import facts_for_device, recorded_facts
from harness.iso.apdu import to_hex
from harness.notrun import NOT_RUN_PREFIX
from harness.preflight import identify
from harness.remote.guard import remote_facts

from . import privacy, trace_files
from .context import LibraryComponent
from .faults import insert_fresh_card


class DeviceKeywords(LibraryComponent):
    @property
    def lab_device(self) -> lab.LabDevice | None:
        """The inventory's entry for the open device (kept on the shared context)."""
        return self.ctx.lab_device

    @keyword
    def open_device(self, name: str, timeout: float = 5.0) -> str:
        """Opens the device ``name`` (URI or lab name), waits up to ``timeout`` s for a card and powers it on.

        Returns the ATR as hex. The same suite runs on ``virtual:card``, ``pcsc:…`` or ``nfc:…``.
        """
        if self.ctx.reader is not None:
            self.close_device()
        if pools.is_pool(name):  # this worker's member of the pool (PabotLib value sets under pabot)
            name = pools.lease(name)
        uri, lab_device = lab.resolve(name)
        reader = open_device(uri)
        writers = trace_files.begin(reader, name)  # traces/<device>.jsonl, and the recording of `hil record`
        try:
            reader.wait_for_card(float(timeout))
            atr = reader.power_on()
        except DeviceError:
            reader.close()
            raise
        self.ctx.device_name = name
        self.ctx.changed_pins.clear()
        self.ctx.lab_device = lab_device
        self.ctx.reader = reader
        self.ctx.channel = CardChannel(reader, self.ctx.trace)
        self.ctx.atr = atr
        rig = rig_of(reader)
        card = None if rig is None else rig.card_facts()
        # the stricter of the inventory and a virtual profile wins; the PIN guard's knowledge of this
        # device name (refused PINs, unknown states) carries over from earlier opens in this run
        replayed = recorded_facts(reader) if card is None and lab_device is None else None
        if isinstance(reader, RemoteReader):  # a reader host's card: its facts (and PINs) are the host's
            replayed = remote_facts(reader, lab_device)
        self.ctx.facts = replayed or facts_for_device(card, lab_device)  # a replay: device brings its own facts
        if card is None:
            self.ctx.facts.kind = self._kind_from_answers(name, self.ctx.facts.kind)
        privacy.protect(self.ctx)
        trace_files.start(writers, self.ctx)
        logger.info(f"Opened {name}: {reader.capabilities}; ATR {to_hex(atr)}")
        return to_hex(atr)

    def _kind_from_answers(self, name: str, configured: str) -> str:
        """A real or out-of-process card says what it is in its token label (EF 0006), whatever was configured."""
        kind, label = identify(self.ctx.channel)
        if kind is None:
            logger.warn(f"{name}: token label {label!r} is neither a card nor a phone; taking it as a {configured}")
            return configured
        if kind != configured:
            logger.info(f"{name} answers as a {kind} (token {label}), not the {configured} configured")
        return kind

    @keyword
    def close_device(self) -> None:
        """Powers the card off and releases the device. Safe to call when nothing is open."""
        reader, self.ctx.reader, self.ctx.channel = self.ctx.reader, None, None
        if reader is None:
            return
        try:
            reader.power_off()
        except DeviceError as exc:
            logger.warn(f"power off failed while closing {self.ctx.device_name}: {exc}")
        finally:
            reader.close()

    @keyword
    def power_cycle_card(self) -> str:
        """Powers the card off and on again: its volatile security state is lost. Returns the new ATR."""
        reader = self.ctx.require_reader()
        reader.power_off()
        self.ctx.atr = reader.power_on()
        return to_hex(self.ctx.atr)

    @keyword
    def device_kind_should_be(self, kind: str) -> None:
        """Fails unless the card behind the device is a ``card`` or a ``phone`` as given."""
        if self.ctx.facts.kind != kind:
            raise SkipExecution(f"{NOT_RUN_PREFIX}{self.ctx.device_name} holds a {self.ctx.facts.kind}, "
                                f"not a {kind}: run the {self.ctx.facts.kind} suites on it")

    @keyword
    def require_expendable_card(self, reason: str = "a destructive requirement") -> None:
        """Skips the test, with the reason, unless the card may be blocked or changed for good.

        Virtual cards are expendable; a real card is expendable only when the lab inventory says so.
        """
        if not self.ctx.facts.expendable:
            raise SkipExecution(
                f"{reason} needs an expendable card; {self.ctx.device_name} is not marked "
                "expendable (set expendable = true for its card in the lab inventory)"
            )

    @keyword
    def restore_virtual_card(self) -> None:
        """After a destructive requirement: a virtual card is replaced by a fresh one; a real one stays as left."""
        if self.ctx.reader is None:
            return
        if rig_of(self.ctx.reader) is None:
            logger.warn(f"{self.ctx.device_name}: a real card stays as the destructive requirement left it")
            return
        insert_fresh_card(self.ctx)

    @keyword
    def set_apdu_timeout(self, seconds: str | float | None) -> None:
        """Fails any later APDU that gets no answer within ``seconds`` (``None``: wait as the reader does).

        The deadline is the harness's own, the same on every backend; a test that hits it fails with
        ``DeviceTimeout`` and the next test starts with a power cycle.
        """
        channel = self.ctx.require_channel()
        channel.timeout = None if seconds in (None, "None", "") else float(seconds)

    @keyword
    def get_atr(self) -> str:
        """The ATR of the last power-on, as hex."""
        return to_hex(self.ctx.atr)
