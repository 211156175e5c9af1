"""Virtual reader-module firmware: any protocol file, on the master side of a pty, serving a CardSlot.

The host opens the pty's slave like a real ``/dev/ttyUSB0`` and runs its real framing,
retries and timeouts against it. The firmware follows the same reliability rules as the
host link (ACK/NAK when the framing has them, a response cache keyed by sequence number,
unacknowledged card events), and injects the faults a lab line shows:

- card faults through the slot's :class:`~devices.virtual.slot.FaultPlan` (card pulled at an APDU, slow card);
- serial faults through :class:`SerialFaultPlan` (dropped bytes, corrupted checksums, stalls, lost answers),
  and ``pull_card_on_ins`` to pull the card when an APDU with a given INS arrives.

The pty stays 8N1 without modem lines (PLATFORM-NOTES: dtr/rts and parity fail on a pty).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field, fields

from devices.base import CardRemoved, NoCard
from devices.serial.framing import Control, Frame, Garbled
from devices.serial.messages import CodecError, Message
from devices.serial.protocol import ProtocolSpec, load_protocol
from devices.virtual.slot import CardSlot

POLL_SECONDS = 0.02  # how soon the loop notices stop(), card events and quiet lines
WRITE_TIMEOUT = 1.0  # a host that stopped reading must not wedge the firmware


@dataclass
class SerialFaultPlan:
    """Serial faults for the coming frames; each count is how many consecutive frames it hits.

    ``*_responses`` act on frames the firmware sends in answer (first sends, re-sends after NAK and
    replays), ``*_commands`` on frames the host sends, before the firmware decodes them.
    """

    corrupt_responses: int = 0  # wrong checksum
    drop_response_bytes: int = 0  # one byte missing in the middle
    mute_responses: int = 0  # answer not sent at all (the command still runs and is cached)
    stall_responses: int = 0  # answer held back stall_seconds
    stall_seconds: float = 0.0
    corrupt_commands: int = 0  # the host's frame arrives with a flipped byte
    drop_command_bytes: int = 0  # a byte of the host's frame is lost on the line (a framing error)
    pull_card_on_ins: int | None = None  # pull the card when an APDU with this INS arrives…
    pull_card_occurrence: int = 1  # …for the n-th time after arming

    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name not in ("stall_seconds",
                                                                                  "pull_card_occurrence"))


@dataclass
class FirmwareStats:
    """What the firmware saw and did; a test checks e.g. that a re-sent VERIFY ran once."""

    frames_received: int = 0
    garbled_received: int = 0
    commands_run: int = 0
    replays: int = 0
    acks_sent: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    responses_sent: int = 0
    events_sent: int = 0
    write_drops: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)

    def count_fault(self, name: str) -> None:
        self.faults_injected[name] = self.faults_injected.get(name, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class ReaderFirmware:
    """A reader module. Lifecycle: ``start()`` → (host uses :attr:`device`) → ``stop()``; or a context manager."""

    def __init__(self, slot: CardSlot, protocol: ProtocolSpec | str, *, name: str = "") -> None:
        self.slot = slot
        self.spec = load_protocol(protocol) if isinstance(protocol, str) else protocol
        self.name = name or self.spec.name
        self.stats = FirmwareStats()
        self.faults = SerialFaultPlan()
        self._faults_lock = threading.Lock()
        self._ins_seen = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._device = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._decoder = self.spec.framing.decoder()
        self._last_seq: int | None = None
        self._last_command = b""  # a re-sent command repeats sequence number and bytes; a new host's may not
        self._last_response: bytes | None = None
        self._seen_generation = slot.generation
        self._seen_present = slot.present
        self._quiet_since = time.monotonic()
        self._gap = self.spec.framing.inter_byte_timeout
        self.error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """The pty slave path to open as the serial port (``/dev/pts/N``)."""
        if not self._device:
            raise RuntimeError("firmware not started")
        return self._device

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 5.0) -> ReaderFirmware:
        if self.running:
            return self
        master, slave = os.openpty()
        tty.setraw(slave)  # before any host opens it: no echo, no line editing, 8N1
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._device = os.ttyname(slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"firmware-{self.name}-{self._device}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.001)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the loop and closes the pty: a host still holding the port sees it gone."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"firmware {self.name} did not stop within {timeout:g} s")
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> ReaderFirmware:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def arm(self, plan: SerialFaultPlan) -> None:
        """Replaces the serial fault plan; INS occurrences count from now."""
        with self._faults_lock:
            self.faults = plan
            self._ins_seen = 0

    def arm_faults(self, **plan: int | float | None) -> None:
        """Arms the plan given by :class:`SerialFaultPlan` field names (none: disarm); an unknown name is a
        ValueError naming the known ones."""
        known = [f.name for f in fields(SerialFaultPlan)]
        unknown = sorted(set(plan) - set(known))
        if unknown:
            raise ValueError(f"unknown serial fault {unknown[0]!r}; known: {', '.join(known)}")
        self.arm(SerialFaultPlan(**plan))  # type: ignore[arg-type]

    def _take(self, name: str) -> bool:
        """Consumes one frame's worth of the fault ``name``; True when it applies to this frame."""
        with self._faults_lock:
            left = getattr(self.faults, name)
            if left <= 0:
                return False
            setattr(self.faults, name, left - 1)
        self.stats.count_fault(name)
        return True

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._master], [], [], POLL_SECONDS)
                events = []
                if ready:
                    data = self._read()
                    if data:
                        self._quiet_since = time.monotonic()
                        events = self._lose_bytes(self._decoder.feed(self._command_faults(data)))
                elif self._decoder.pending and time.monotonic() - self._quiet_since >= self._gap:
                    events = self._decoder.expire()
                for event in events:
                    self._handle(event)
                self._card_events()
        except Exception as exc:  # kept for the test that started us (firmware.error)
            self.error = exc

    def _read(self) -> bytes:
        try:
            return os.read(self._master, 4096)  # type: ignore[arg-type]
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # no process has the slave open
                self._stop.wait(POLL_SECONDS)
                return b""
            raise

    def _write(self, data: bytes) -> None:
        deadline = time.monotonic() + WRITE_TIMEOUT
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                written = os.write(self._master, view)  # type: ignore[arg-type]
                view = view[written:]
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self.stats.write_drops += 1
                    return
                select.select([], [self._master], [], POLL_SECONDS)

    def _lose_bytes(self, events: list) -> list:
        """A byte lost on the line is a framing error the UART flags at once: the frame it was in arrives as
        garbled the moment the frame is complete, never after a timer (so no race with the host's timeouts)."""
        return [Garbled("a byte of the frame was lost", event.payload)
                if isinstance(event, Frame) and self._take("drop_command_bytes") else event for event in events]

    def _command_faults(self, data: bytes) -> bytes:
        if len(data) > 2 and self._take("corrupt_commands"):
            data = data[:-2] + bytes((data[-2] ^ 0x5A,)) + data[-1:]
        return data

    # -- frames --------------------------------------------------------------------------------------
    def _control(self, kind: str) -> None:
        if self.spec.framing.has_ack_nak:
            self._write(self.spec.framing.control(kind))
            if kind == "ack":
                self.stats.acks_sent += 1
            else:
                self.stats.naks_sent += 1

    def _handle(self, event: Frame | Control | Garbled) -> None:
        self._card_events()  # a card moved since the last look is notified before any answer about it
        if isinstance(event, Garbled):
            self.stats.garbled_received += 1
            self._control("nak")
            return
        if isinstance(event, Control):
            if event.kind == "nak":
                self.stats.naks_received += 1
                if self._last_response is not None:
                    self._send_response(self._last_response)
            return
        self.stats.frames_received += 1
        try:
            message = self.spec.codec.decode_command(event.payload)
        except CodecError:
            self.stats.garbled_received += 1
            self._control("nak")
            return
        self._control("ack")
        if (self.spec.codec.layouts.has_seq and message.seq == self._last_seq
                and event.payload == self._last_command and self._last_response is not None):
            self.stats.replays += 1  # a re-sent command: answer again, do not run it again
            self._send_response(self._last_response)
            return
        response = self._run_command(message)
        try:
            self.spec.framing.encode(response)
        except ValueError:  # an answer too large for a frame: say so rather than go silent
            self.stats.count_fault("oversized_answer")
            response = self.spec.codec.response(self.spec.codec.command_code(message), message.seq, "card_error")
        self._last_seq = message.seq
        self._last_command = event.payload
        self._last_response = response
        self._send_response(response)

    def _send_response(self, payload: bytes) -> None:
        if self._take("stall_responses"):
            self._stop.wait(self.faults.stall_seconds)
        if self._take("mute_responses"):
            return
        frame = self.spec.framing.encode(payload)
        if self._take("corrupt_responses"):
            where = self.spec.framing.checksum_of(frame)
            frame = frame[: where.start] + bytes((frame[where.start] ^ 0x01,)) + frame[where.start + 1 :]
        if len(frame) > 4 and self._take("drop_response_bytes"):
            middle = len(frame) // 2
            frame = frame[:middle] + frame[middle + 1 :]
        self._write(frame)
        self.stats.responses_sent += 1

    def _send_event(self, name: str) -> None:
        self._write(self.spec.framing.encode(self.spec.codec.event(name)))
        self.stats.events_sent += 1

    def _card_events(self) -> None:
        """Insert/remove notifications when the slot changed since the last look."""
        generation, present = self.slot.generation, self.slot.present
        if generation == self._seen_generation:
            return
        if self._seen_present:
            self._send_event("card_removed")
        if present:
            self._send_event("card_inserted")
        self._seen_generation, self._seen_present = generation, present

    # -- commands ----------------------------------------------------------------------------------
    def _run_command(self, message: Message) -> bytes:
        codec = self.spec.codec
        code = codec.command_code(message)
        self.stats.commands_run += 1

        def answer(status: str, data: bytes = b"") -> bytes:
            if status not in codec.statuses:
                status = "card_error"
            return codec.response(code, message.seq, status, data)

        if not message.known:
            return answer("bad_command")
        if message.name == "status":
            card = self.slot.card
            state = "absent" if card is None else ("powered" if card.powered else "present")
            return answer("ok", bytes((codec.card_states[state],)))
        if message.name == "power_off":
            self.slot.power_off()
            return answer("ok")
        if message.name == "power_on":
            try:
                return answer("ok", self.slot.power_on())
            except NoCard:
                return answer("no_card")
        return self._transmit(message.data, answer)

    def _transmit(self, apdu: bytes, answer) -> bytes:
        card = self.slot.card
        if card is None:
            return answer("no_card")
        if not card.powered:
            return answer("not_powered")
        if len(apdu) >= 2 and self._pull_now(apdu[1]):
            self.slot.remove()
            self._card_events()
            return answer("card_removed")
        try:
            return answer("ok", self.slot.exchange(apdu))
        except CardRemoved:
            self._card_events()  # the removal notification goes out before the failed answer
            return answer("card_removed")
        except NoCard:
            return answer("no_card")

    def _pull_now(self, ins: int) -> bool:
        with self._faults_lock:
            if self.faults.pull_card_on_ins is None or ins != self.faults.pull_card_on_ins:
                return False
            self._ins_seen += 1
            if self._ins_seen != self.faults.pull_card_occurrence:
                return False
            self.faults.pull_card_on_ins = None
        self.stats.count_fault("pull_card_on_ins")
        return True
