"""The ISO 14443-3/-4 Type B PICC state machine of a virtual card, apart from the link that carries it.

SENSB_REQ → ATQB from the profile, ATTRIB (with the bit rate it asks for, if the ATQB offers it),
I-blocks with block numbers, R(ACK)/R(NAK), chaining both ways, S(WTX) while a slow APDU runs
elsewhere, S(DESELECT), field off. Every APDU goes through the :class:`CardSlot`, so its fault plan
(removal, stalls) works here too. Block rules follow ISO/IEC 14443-4 §7.5.4 (rules 10-13).

A link shell (:mod:`.nfc` for nfcpy's UDP link) feeds frames in with :meth:`IsoDepPicc.on_frame`, sends
what :meth:`IsoDepPicc._emit` hands it, runs the APDUs :meth:`IsoDepPicc._submit` queues and reports
their answers with :meth:`IsoDepPicc.on_result`, all under :attr:`IsoDepPicc.lock`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import asdict, dataclass, field
from enum import Enum

from devices.base import DeviceError
from devices.nfc.iso14443 import FSC_TABLE, fwt_seconds, rate_of_param2

from ..card import VirtualCard
from ..profile import ContactlessSpec
from ..slot import CardSlot
from .link_stats import ExchangeRecord, LinkFaults, LinkStats

CRC_LEN = 2  # CRC_B is not sent on the UDP link but counts in FSC/FSD
WTX_FRACTION = 0.5  # ask for more time when half the granted waiting time has gone
MAX_BUSY_SECONDS = 60.0  # S(WTX) stops after this: nfcpy would otherwise wait for ever
HISTORY = 64
BASE_RATE = 106  # SENSB_REQ, ATQB, ATTRIB and its answer always go at 106 kbit/s


# -- ATQB ----------------------------------------------------------------------------------------
def fsci_for(max_frame: int) -> int:
    """The largest FSCI whose frame size fits ``max_frame`` (ISO 14443-3 Table: 16…256)."""
    fitting = [index for index, size in enumerate(FSC_TABLE) if size <= max_frame]
    return fitting[-1] if fitting else 0


def bit_rate_byte(rates: tuple[int, ...]) -> int:
    """ATQB bit-rate capability: the same rates both ways (b8) for every rate above 106 kbit/s."""
    value = 0
    for rate, bits in ((212, 0x11), (424, 0x22), (848, 0x44)):
        if rate in rates:
            value |= bits
    return value | (0x80 if value else 0)


def build_atqb(spec: ContactlessSpec) -> bytes:
    """``50 | PUPI | app data | bit rates | FSCI, protocol type 1 | FWI, ADC 0, FO CID``: JPKI-FACTS §7."""
    if len(spec.pupi) != 4 or len(spec.app_data) != 4:
        raise ValueError("contactless pupi and app_data must be 4 bytes each")
    if not 0 <= spec.fwi <= 14:
        raise ValueError(f"contactless fwi must be 0-14, got {spec.fwi}")
    fsci = fsci_for(spec.max_frame)
    protocol = bytes((bit_rate_byte(spec.bit_rates), fsci << 4 | 0x01, spec.fwi << 4 | 0x01))
    return b"\x50" + spec.pupi + spec.app_data + protocol



class State(Enum):
    OFF = "off"  # no field (before the first frame, after RFOFF)
    IDLE = "idle"
    READY = "ready"
    ACTIVE = "active"
    HALT = "halt"


@dataclass
class Pending:
    """The APDU being received, run or sent back."""

    ticket: int
    started: float
    command: bytearray = field(default_factory=bytearray)
    blocks_in: int = 0
    busy: bool = False
    result: bytes | None = None
    failed: bool = False
    response: bytes = b""
    offset: int = 0
    blocks_out: int = 0
    wtx: int = 0
    awaiting_wtx: bool = False
    wtx_due: float = 0.0



class IsoDepPicc(ABC):
    """The card in ``slot`` as a Type B PICC; a subclass carries its frames (module doc)."""

    def __init__(self, slot: CardSlot) -> None:
        self.slot = slot
        self.stats = LinkStats()
        self.faults = LinkFaults()
        self.history: deque[ExchangeRecord] = deque(maxlen=HISTORY)
        self.attrib: bytes = b""  # the last ATTRIB command heard
        self.state = State.OFF
        self.bit_rate = BASE_RATE  # both ways; what the last ATTRIB chose, 106 again once the field drops
        self.max_busy_seconds = MAX_BUSY_SECONDS
        self._parked: VirtualCard | None = slot.card  # the card to bring back after a removal
        self._pending: Pending | None = None
        self._tickets = 0
        self._bn = 1
        self._cid: int | None = None
        self._fsd = 256
        self._last_frame = b""
        self.peer: object = None  # where the link sends our frames: the reader of the current field cycle
        self.lock = threading.Lock()  # stats/history/state against readers in other threads

    @abstractmethod
    def _emit(self, frame: bytes, rate: int) -> None:
        """Put ``frame`` on the link at ``rate`` kbit/s."""

    @abstractmethod
    def _submit(self, ticket: int, apdu: bytes) -> None:
        """Run ``apdu`` away from the link; its answer comes back through :meth:`on_result`."""

    # -- what tests and keywords drive ------------------------------------------------------------
    def remove_from_field(self) -> None:
        """The card leaves the field: it stops answering at once, mid-APDU or not."""
        card = self.slot.remove()
        if card is not None:
            self._parked = card
        with self.lock:
            self._abandon("removed")
            self.state = State.OFF  # unpowered: whatever the reader sends next goes unanswered

    def return_to_field(self, card: VirtualCard | None = None) -> None:
        """The card (or ``card``) comes back unpowered; the reader must discover and activate it again."""
        card = card or self._parked or self.slot.card
        if card is None:
            raise DeviceError("no card to return to the field")
        self._parked = card
        if self.slot.card is not card:
            self.slot.insert(card)

    @property
    def in_field(self) -> bool:
        return self.slot.present

    @property
    def last_exchange(self) -> ExchangeRecord | None:
        with self.lock:
            return self.history[-1] if self.history else None

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return asdict(self.stats)

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = LinkStats()
            self.history.clear()

    # -- sending ----------------------------------------------------------------------------------
    def _send(self, frame: bytes, *, remember: bool = True, rate: int | None = None) -> None:
        if remember:
            self._last_frame = frame
        self.stats.frames_out += 1
        self.stats.bytes_out += len(frame) + CRC_LEN
        if self.faults.drop_responses > 0:
            self.faults.drop_responses -= 1
            self.stats.dropped_frames += 1
            return
        self._emit(frame, rate or self.bit_rate)

    def _block(self, pcb: int, inf: bytes = b"") -> bytes:
        """A block with our CID when the reader uses one."""
        if self._cid is not None:
            return bytes((pcb | 0x08, self._cid)) + inf
        return bytes((pcb,)) + inf

    def _note_frame_out(self, frame: bytes) -> None:
        self.stats.largest_frame_out = max(self.stats.largest_frame_out, len(frame) + CRC_LEN)


    # -- receiving --------------------------------------------------------------------------------
    def on_frame(self, rate: int, frame: bytes, peer: object) -> None:
        """A Type B frame heard at ``rate`` kbit/s from ``peer`` (the link's reply address); a new peer
        means a new field cycle (nfcpy opens a socket per field cycle)."""
        self.stats.frames_in += 1
        card = self.slot.card
        if not frame or card is None:  # no card in the field
            if card is None and self.state is not State.OFF:
                self.field_off()
            self.stats.ignored_frames += 1
            return
        if self.state is not State.OFF and peer != self.peer:
            self.field_off()
        expected = self.bit_rate if self.state is State.ACTIVE else BASE_RATE
        if rate != expected:  # a reader talking at a rate ATTRIB did not choose
            self.stats.ignored_frames += 1
            return
        self.peer = peer
        self.stats.bytes_in += len(frame) + CRC_LEN
        if self.state is State.OFF:
            self.slot.power_on()  # the field powers the card up: fresh volatile state
            self.state = State.IDLE
        if self.state is State.ACTIVE:
            self._on_block(frame)
        else:
            self._on_activation(frame, card)

    def rf_off(self) -> None:
        """The reader switched its field off."""
        self.stats.frames_in += 1
        self.stats.rf_offs += 1
        self.field_off()

    def field_off(self) -> None:
        self._abandon("abandoned")
        if self.state is not State.OFF:
            self.slot.power_off()
        self.state = State.OFF
        self.bit_rate = BASE_RATE

    def _on_activation(self, frame: bytes, card: VirtualCard) -> None:
        spec = card.profile.contactless
        atqb = build_atqb(spec)
        if frame[0] == 0x05 and len(frame) == 3:  # SENSB_REQ / ALLB_REQ
            self.stats.sensb_requests += 1
            wake_all = bool(frame[2] & 0x08)
            afi = frame[1]
            family = spec.app_data[0]  # AFI 00 polls every card; x0 a whole family (ISO 14443-3 §7.7.2)
            family_ok = afi in (0, family) or (afi & 0x0F == 0 and afi >> 4 == family >> 4)
            if (self.state is not State.HALT or wake_all) and family_ok:
                self.state = State.READY
                self._send(atqb)
            return
        if frame[0] == 0x50 and frame[1:5] == spec.pupi:  # HLTB
            self.state = State.HALT
            self._send(b"\x00")
            return
        if frame[0] == 0x1D and len(frame) >= 9 and frame[1:5] == spec.pupi and self.state is State.READY:
            to_pcd, to_picc = rate_of_param2(frame[6])
            if to_pcd != to_picc or to_pcd not in (BASE_RATE, *spec.bit_rates):
                self.stats.ignored_frames += 1  # a rate the ATQB did not offer: no answer, the reader retries
                return
            self.attrib = frame
            self._fsd = FSC_TABLE[min(frame[6] & 0x0F, 8)]
            cid = frame[8] & 0x0F
            self._cid = cid if cid else None
            self._bn = 1  # ISO 14443-4 rule: the PICC block number starts at 1
            self._last_frame = b""
            self._parked = card
            self.state = State.ACTIVE
            self.stats.activations += 1
            self.bit_rate = to_pcd  # every frame after the answer goes at the rate ATTRIB chose
            self._send(bytes((cid,)), remember=False, rate=BASE_RATE)  # MBLI 0 | CID, still at 106 kbit/s
            return
        self.stats.ignored_frames += 1

    def _on_block(self, frame: bytes) -> None:
        pcb = frame[0]
        body = frame[1:]
        self._cid = None
        if pcb & 0x08 and body:  # CID follows the PCB: answer with it
            self._cid, body = body[0] & 0x0F, body[1:]
        if self.faults.ignore_commands > 0:
            self.faults.ignore_commands -= 1
            self.stats.dropped_frames += 1
            return
        size = len(frame) + CRC_LEN
        self.stats.largest_frame_in = max(self.stats.largest_frame_in, size)
        if size > self._fsc():
            self.stats.oversize_frames_in += 1
        if pcb & 0xE2 == 0x02:
            self._on_i_block(pcb, body[1:] if pcb & 0x04 else body)  # NAD is skipped
        elif pcb & 0xE6 == 0xA2:
            self._on_r_block(pcb)
        elif pcb & 0xC7 == 0xC2:
            self._on_s_block(pcb, body)
        else:
            self.stats.ignored_frames += 1

    def _on_i_block(self, pcb: int, inf: bytes) -> None:
        self.stats.i_blocks_in += 1
        bn = pcb & 0x01
        pending = self._pending
        if pending is not None and pending.busy:
            self.stats.ignored_frames += 1  # the reader must wait for our answer
            return
        if bn == self._bn and self._last_frame:
            self.stats.retransmissions += 1  # a block we already took: answer it again
            self._send(self._last_frame)
            return
        self._bn = bn  # rule 10: toggle on a new I-block
        if pending is None or pending.busy or pending.result is not None:
            self._tickets += 1
            pending = self._pending = Pending(self._tickets, time.monotonic())
        pending.command += inf
        pending.blocks_in += 1
        if pcb & 0x10:
            self.stats.chained_blocks_in += 1
            self.stats.acks_out += 1
            self._send(self._block(0xA2 | self._bn))
            return
        self._run(pending)

    def _on_r_block(self, pcb: int) -> None:
        bn = pcb & 0x01
        pending = self._pending
        if pcb & 0x10:  # R(NAK): the reader missed our last frame, or checks presence
            self.stats.naks_in += 1
            if pending is not None and pending.busy:
                self._send_wtx(pending)  # still working: say so rather than stay silent
            elif bn == self._bn and self._last_frame:
                self.stats.retransmissions += 1
                self._send(self._last_frame)  # rule 11
            else:
                self.stats.acks_out += 1
                self._send(self._block(0xA2 | self._bn))  # rule 12
            return
        self.stats.acks_in += 1
        if bn == self._bn:
            if self._last_frame:
                self.stats.retransmissions += 1
                self._send(self._last_frame)  # rule 11
            return
        if pending is not None and pending.response and pending.offset < len(pending.response):
            self._bn = bn  # rule 13: the reader wants the next chained block
            self._send_chunk(pending)
        else:
            self.stats.ignored_frames += 1

    def _on_s_block(self, pcb: int, inf: bytes) -> None:
        if pcb & 0x30 == 0x00:  # S(DESELECT)
            self.stats.deselects += 1
            self._abandon("abandoned")
            rate, self.bit_rate = self.bit_rate, BASE_RATE  # answered at the session's rate, then back to 106
            self._send(self._block(0xC2), rate=rate)
            self.slot.power_off()  # the session ends: volatile state is gone, as on a PC/SC power-off
            self.state = State.HALT
            return
        if pcb & 0x30 == 0x30:  # S(WTX) response
            pending = self._pending
            if pending is None or not pending.awaiting_wtx:
                self.stats.ignored_frames += 1
                return
            pending.awaiting_wtx = False
            granted = (inf[0] & 0x3F) if inf else 1
            pending.wtx_due = time.monotonic() + max(1, granted) * self._fwt() * WTX_FRACTION
            self._finish_if_ready(pending)
            return
        self.stats.ignored_frames += 1

    # -- APDUs ------------------------------------------------------------------------------------
    def _spec(self) -> ContactlessSpec | None:
        card = self.slot.card or self._parked
        return card.profile.contactless if card else None

    def _fwt(self) -> float:
        spec = self._spec()
        return fwt_seconds(spec.fwi if spec else 10)

    def _fsc(self) -> int:
        spec = self._spec()
        return FSC_TABLE[fsci_for(spec.max_frame)] if spec else 256


    def _run(self, pending: Pending) -> None:
        pending.busy = True
        pending.wtx_due = time.monotonic() + self._fwt() * WTX_FRACTION
        self.stats.apdus += 1
        self._submit(pending.ticket, bytes(pending.command))

    def on_result(self, ticket: int, answer: bytes | None) -> None:
        """The answer to APDU ``ticket`` (None: the card left the field while running it)."""
        pending = self._pending
        if pending is None or pending.ticket != ticket or not pending.busy:
            return  # a result for an APDU the field or a DESELECT cut off
        if answer is None:
            self._abandon("removed")  # the card left mid-APDU: silence
            self.state = State.OFF
            return
        pending.result = answer
        self._finish_if_ready(pending)

    def wtx_deadline(self) -> float | None:
        """When :meth:`tick` must run next to send an S(WTX) in time (None: nothing due)."""
        pending = self._pending
        if pending is not None and pending.busy and not pending.awaiting_wtx:
            return pending.wtx_due
        return None

    def _finish_if_ready(self, pending: Pending) -> None:
        if pending.result is None or pending.awaiting_wtx or not pending.busy:
            return
        pending.busy = False
        pending.response = pending.result
        pending.offset = 0
        self._send_chunk(pending)

    def _send_chunk(self, pending: Pending) -> None:
        room = self._fsd - CRC_LEN - 1 - (1 if self._cid is not None else 0)
        chunk = pending.response[pending.offset : pending.offset + room]
        pending.offset += len(chunk)
        more = pending.offset < len(pending.response)
        frame = self._block(0x02 | (0x10 if more else 0) | self._bn, chunk)
        pending.blocks_out += 1
        self.stats.i_blocks_out += 1
        if more:
            self.stats.chained_blocks_out += 1
        self._note_frame_out(frame)
        self._send(frame)
        if not more:
            self._record(pending, "answered")

    def tick(self) -> None:
        pending = self._pending
        if pending is None or not pending.busy or pending.awaiting_wtx or self.state is not State.ACTIVE:
            return
        if self.slot.card is None:
            return  # out of the field: silent
        if time.monotonic() - pending.started > self.max_busy_seconds:
            self._abandon("abandoned")  # a card that never finishes goes quiet: the reader times out
            return
        if time.monotonic() >= pending.wtx_due:
            self._send_wtx(pending)

    def _send_wtx(self, pending: Pending) -> None:
        pending.awaiting_wtx = True
        pending.wtx += 1
        self.stats.wtx_sent += 1
        self._send(self._block(0xF2, b"\x01"))  # WTXM 1: one more FWT, asked again while still busy

    def _abandon(self, outcome: str) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and (pending.busy or pending.offset < len(pending.response)):
            self._record(pending, outcome)

    def _record(self, pending: Pending, outcome: str) -> None:
        self.history.append(ExchangeRecord(
            len(pending.command), len(pending.response), pending.blocks_in, pending.blocks_out, pending.wtx,
            (time.monotonic() - pending.started) * 1000, outcome))


