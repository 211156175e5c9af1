"""The host side of a reader protocol: one request, one response, with ACK/NAK, retries and card events.

Reliability rules (the firmware follows the same ones):

- every good frame is answered with ACK when the framing has ACK/NAK; a bad one with NAK;
- the host re-sends a command after a NAK, a bad frame or a timeout, with the *same* sequence
  number, so the reader replays its cached response instead of running the command again
  (a VERIFY is never counted twice);
- a response with another sequence number is stale (an answer to a re-sent command) and skipped;
- card events are not acknowledged and may arrive at any time; a removal during an exchange
  that asked for it ends the exchange with :class:`~devices.base.CardRemoved` (with the module's
  failed answer if it follows within ``REMOVAL_GRACE``).

After ``retries`` re-sends: :class:`~devices.base.ProtocolError` if the last failure was a bad
frame, :class:`~devices.base.DeviceTimeout` if nothing came.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from serial import SerialException

from devices.base import CardRemoved, DeviceGone, DeviceTimeout, ProtocolError

from .framing import Control, Event, Frame, Garbled
from .messages import CodecError, Message
from .protocol import ProtocolSpec

READ_SLICE = 0.02  # seconds per blocking read: how finely quiet lines and deadlines are noticed
REMOVAL_GRACE = 0.5  # after a removal notification mid-exchange, how long the failed answer may take


class PortLike(Protocol):
    """What the link needs of a pyserial port (``Serial``, ``rfc2217.Serial``, ``socket://``)."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes) -> int | None: ...
    @property
    def in_waiting(self) -> int: ...
    def reset_input_buffer(self) -> None: ...


@dataclass
class LinkStats:
    """Counters a conformance test checks (e.g. exactly one re-send after one corrupted frame)."""

    frames_sent: int = 0
    frames_received: int = 0
    retransmissions: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    garbled: int = 0
    timeouts: int = 0
    stale: int = 0
    events: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class _Outcome:
    ACK = "ack"
    NAK = "nak"
    GARBLED = "garbled"
    TIMEOUT = "timeout"


class SerialLink:
    """Frames, sends and matches messages over an open port. Not thread-safe: one caller at a time."""

    def __init__(self, port: PortLike, spec: ProtocolSpec, *, name: str = "",
                 on_event: Callable[[Message], None] | None = None) -> None:
        self.port = port
        self.spec = spec
        self.name = name or spec.name
        self.on_event = on_event or (lambda message: None)
        self.decoder = spec.framing.decoder()
        self.stats = LinkStats()
        self._seq = os.urandom(1)[0]  # a new session does not reuse the sequence numbers of the last one
        self._quiet_since = time.monotonic()
        self._last_garbled = ""
        self._events: deque = deque()  # decoded but not yet consumed (an ACK and a response often come together)
        port.timeout = READ_SLICE

    # -- port I/O ------------------------------------------------------------------------
    def _io(self, action: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except (SerialException, OSError) as exc:
            raise DeviceGone(f"{self.name}: serial port gone while {action}: {_one_line(exc)}") from None
        except (TypeError, AttributeError):  # pyserial after the port closed under us
            raise DeviceGone(f"{self.name}: serial port closed while {action}") from None

    def write(self, data: bytes) -> None:
        self._io("writing", lambda: self.port.write(data))

    def _next_event(self, deadline: float) -> Event | None:
        """The next decoded event, reading as needed until ``deadline``; None when the line stayed silent."""
        for _ in range(10_000_000):
            if self._events:
                return self._events.popleft()
            self._events.extend(self._read_events())
            if not self._events and time.monotonic() >= deadline:
                return None
        return None

    def _read_events(self) -> list:
        """One read slice: decoded events, or an expiry when the line stays quiet mid-frame."""
        waiting = self._io("reading", lambda: self.port.in_waiting)
        data = self._io("reading", lambda: self.port.read(max(1, min(waiting, 4096))))
        now = time.monotonic()
        if data:
            self._quiet_since = now
            return self.decoder.feed(data)
        if self.decoder.pending and now - self._quiet_since >= self.spec.framing.inter_byte_timeout:
            return self.decoder.expire()
        return []

    def resync(self) -> None:
        """Forget partial frames and whatever is buffered (after a failed exchange)."""
        self._io("flushing", self.port.reset_input_buffer)
        self.decoder.reset()
        self._events.clear()

    # -- events ----------------------------------------------------------------------------
    def _deliver(self, message: Message) -> None:
        self.stats.events += 1
        self.on_event(message)

    def poll(self, duration: float = 0.0) -> None:
        """Reads for ``duration`` seconds (0: only what is already buffered), delivering card events."""
        deadline = time.monotonic() + duration
        for _ in range(10_000_000):
            if (duration <= 0 and not self._events and not self.decoder.pending
                    and not self._io("reading", lambda: self.port.in_waiting)):
                return
            event = self._next_event(deadline)
            if event is None:
                return
            if isinstance(event, Frame):
                self._frame_outside_exchange(event)

    def _frame_outside_exchange(self, frame: Frame) -> None:
        self.stats.frames_received += 1
        try:
            message = self.spec.codec.decode_from_reader(frame.payload)
        except CodecError:
            self.stats.garbled += 1
            return
        if message.kind == "event":
            self._deliver(message)
        else:
            self.stats.stale += 1

    # -- exchanges ---------------------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq = (self._seq + 1) % 256
        return self._seq

    def request(self, command: str, data: bytes = b"", *, timeout: float | None = None,
                abort_on_removal: bool = False, resend: bool = True) -> Message:
        """Sends ``command`` and returns the reader's response message (any status).

        ``resend=False`` (a command carrying a PIN): the command frame goes out once; when its answer is lost
        the exchange fails with :class:`~devices.base.ProtocolError` instead of sending it again, since a
        module without sequence numbers (or a lost ACK) would run a re-sent VERIFY twice."""
        spec = self.spec
        seq = self.next_seq()
        frame = spec.framing.encode(spec.codec.command(command, seq, data))
        response_timeout = timeout if timeout is not None else spec.timing.response_timeout
        label = f"{command} (seq {seq})"
        self._last_garbled = ""
        failures = 0
        last = ""
        send = True
        for _ in range(4 * (spec.timing.retries + 1) + 4):
            awaiting_ack = send and spec.framing.has_ack_nak
            if send and failures and not resend:
                self.resync()
                raise ProtocolError(f"{self.name}: {spec.name} reader, {label}: {last}; a command carrying a PIN "
                                    "is never sent twice, so the exchange fails (the card counted it at most once)")
            if send:
                self.write(frame)
                self.stats.frames_sent += 1
                if failures:
                    self.stats.retransmissions += 1
            send = True
            if awaiting_ack:
                outcome, message = self._await(seq, spec.timing.ack_timeout, want_ack=True, label=label,
                                               abort_on_removal=abort_on_removal)
                if message is not None:
                    return message  # the ACK was lost but the response came: it acknowledges too
                if outcome == _Outcome.TIMEOUT and not resend:
                    pass  # a late or lost ACK: the frame is not sent again; its answer acknowledges it too
                elif outcome != _Outcome.ACK:
                    failures += 1
                    last = self._describe_failure(outcome, "ACK", spec.timing.ack_timeout)
                    if failures > spec.timing.retries:
                        break
                    continue
            outcome, message = self._await(seq, response_timeout, want_ack=False, label=label,
                                           abort_on_removal=abort_on_removal)
            if message is not None:
                return message
            failures += 1
            last = self._describe_failure(outcome, "response", response_timeout)
            if failures > spec.timing.retries:
                break
            if outcome == _Outcome.GARBLED and spec.framing.has_ack_nak:
                self.write(spec.framing.control("nak"))  # the reader re-sends its response
                self.stats.naks_sent += 1
                send = False
        self.resync()
        what = f"{self.name}: {spec.name} reader, {label}"
        if self._last_garbled:
            raise ProtocolError(f"{what}: bad response frame: {self._last_garbled}; "
                                f"no good frame after {spec.timing.retries} retries")
        raise DeviceTimeout(f"{what}: {last} after {spec.timing.retries} retries")

    def _describe_failure(self, outcome: str, waited_for: str, timeout: float) -> str:
        if outcome == _Outcome.TIMEOUT:
            return f"no {waited_for} within {timeout:g} s"
        if outcome == _Outcome.NAK:
            return "reader answered NAK"
        return f"bad frame: {self._last_garbled}"

    def _await(self, seq: int, timeout: float, *, want_ack: bool, label: str,
               abort_on_removal: bool) -> tuple[str, Message | None]:
        """Reads until an ACK/NAK (``want_ack``), the response to ``seq``, a bad frame, or the timeout."""
        deadline = time.monotonic() + timeout
        codec = self.spec.codec
        match_seq = codec.layouts.has_seq
        removed = False
        while (event := self._next_event(deadline)) is not None:
            if isinstance(event, Control):
                if event.kind == "nak":
                    self.stats.naks_received += 1
                    return _Outcome.NAK, None
                if want_ack:
                    return _Outcome.ACK, None
                continue  # a late ACK of a re-sent frame
            if isinstance(event, Garbled):
                self.stats.garbled += 1
                self._last_garbled = event.reason
                return _Outcome.GARBLED, None
            self.stats.frames_received += 1
            try:
                message = codec.decode_from_reader(event.payload)
            except CodecError as exc:
                self.stats.garbled += 1
                self._last_garbled = str(exc)
                return _Outcome.GARBLED, None
            if message.kind == "event":
                self._deliver(message)
                if abort_on_removal and message.name == "card_removed":
                    # the module's failed answer normally follows at once; take it, so it cannot be
                    # mistaken for the next command's answer on a protocol without sequence numbers
                    removed = True
                    deadline = min(deadline, time.monotonic() + REMOVAL_GRACE)
                continue
            if match_seq and message.seq != seq:
                self.stats.stale += 1
                continue
            if self.spec.framing.has_ack_nak:
                self.write(self.spec.framing.control("ack"))
            return _Outcome.ACK, message
        if removed:
            self.resync()
            raise CardRemoved(f"{self.name}: card removed during {label}")
        self.stats.timeouts += 1
        return _Outcome.TIMEOUT, None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
