"""A virtual card or phone as an ISO 14443-3/-4 Type B PICC on nfcpy's UDP link.

nfcpy's reader side (``nfc:udp:127.0.0.1:PORT``) then runs for real against it: SENSB_REQ
→ ATQB from the profile, ATTRIB, I-blocks with block numbers, R(ACK)/R(NAK), chaining both
ways, S(WTX) while a slow APDU runs in a worker thread, S(DESELECT), and RFOFF. Every APDU
goes through the :class:`CardSlot`, so its fault plan (removal, stalls) works here too.

Link frames are datagrams ``b"106B <hex>"`` without CRC; frame sizes below count the two
CRC_B bytes anyway, as FSC and FSD do. Block rules follow ISO/IEC 14443-4 §7.5.4 (rules 10-13).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum

from devices.base import DeviceBusy, DeviceError, Reader
from devices.nfc import FSC_TABLE, NfcReader, fwt_seconds

from .card import VirtualCard
from .profile import ContactlessSpec, ProfileError
from .slot import CardSlot

CRC_LEN = 2  # CRC_B is not sent on the UDP link but counts in FSC/FSD
WTX_FRACTION = 0.5  # ask for more time when half the granted waiting time has gone
LOOP_TICK = 0.1  # the server loop wakes at least this often to notice stop()
MAX_BUSY_SECONDS = 60.0  # S(WTX) stops after this: nfcpy would otherwise wait for ever
HISTORY = 64
log = logging.getLogger(__name__)


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


# -- statistics the keywords read ----------------------------------------------------------------
@dataclass
class LinkStats:
    """Counters of one PICC since start (or the last reset). Frame sizes include PCB and CRC, like FSC."""

    frames_in: int = 0
    frames_out: int = 0
    sensb_requests: int = 0
    activations: int = 0
    apdus: int = 0
    i_blocks_in: int = 0
    i_blocks_out: int = 0
    chained_blocks_in: int = 0  # I-blocks from the reader with the chaining bit
    chained_blocks_out: int = 0
    acks_in: int = 0
    acks_out: int = 0
    naks_in: int = 0
    wtx_sent: int = 0
    retransmissions: int = 0
    deselects: int = 0
    rf_offs: int = 0
    largest_frame_in: int = 0
    largest_frame_out: int = 0
    oversize_frames_in: int = 0  # longer than the FSC the ATQB announced
    dropped_frames: int = 0  # lost on purpose (link faults)
    ignored_frames: int = 0  # heard but not for us in our state


@dataclass(frozen=True)
class ExchangeRecord:
    """One APDU as the PICC saw it: how many blocks each way, how many S(WTX)."""

    command_length: int
    response_length: int
    blocks_in: int
    blocks_out: int
    wtx: int
    elapsed_ms: float
    outcome: str = "answered"  # or "removed", "abandoned"

    @property
    def chained_command(self) -> bool:
        return self.blocks_in > 1

    @property
    def chained_response(self) -> bool:
        return self.blocks_out > 1


@dataclass
class LinkFaults:
    """Frames to lose on purpose, to drive the reader's R(NAK) recovery."""

    drop_responses: int = 0  # the next N frames the PICC sends are lost
    ignore_commands: int = 0  # the next N blocks the reader sends are not heard


class State(Enum):
    OFF = "off"  # no field (before the first frame, after RFOFF)
    IDLE = "idle"
    READY = "ready"
    ACTIVE = "active"
    HALT = "halt"


@dataclass
class _Pending:
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


# -- the PICC ------------------------------------------------------------------------------------
class NfcUdpCard:
    """Serves the card in ``slot`` on a UDP port of 127.0.0.1 until :meth:`stop`."""

    def __init__(self, slot: CardSlot, host: str = "127.0.0.1", port: int = 0) -> None:
        self.slot = slot
        self.stats = LinkStats()
        self.faults = LinkFaults()
        self.history: deque[ExchangeRecord] = deque(maxlen=HISTORY)
        self.attrib: bytes = b""  # the last ATTRIB command heard
        self.state = State.OFF
        self.max_busy_seconds = MAX_BUSY_SECONDS
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise DeviceBusy(f"cannot serve the card on UDP {host}:{port}: {exc.strerror or exc}") from None
        self._address: tuple[str, int] = self._sock.getsockname()
        self._wake_r, self._wake_w = socket.socketpair()
        self._jobs: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._done: queue.Queue[tuple[int, bytes | None]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._peer: tuple[str, int] | None = None
        self._parked: VirtualCard | None = slot.card  # the card to bring back after a removal
        self._pending: _Pending | None = None
        self._tickets = 0
        self._bn = 1
        self._cid: int | None = None
        self._fsd = 256
        self._last_frame = b""
        self._lock = threading.Lock()  # stats/history/state against readers in other threads

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def device_uri(self) -> str:
        return f"nfc:udp:{self.host}:{self.port}"

    def start(self) -> NfcUdpCard:
        for name, target in (("picc", self._serve), ("apdu", self._work)):
            thread = threading.Thread(target=target, name=f"nfc-udp-{name}-{self.port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving; a worker stuck in a long stall is left to finish on its own (daemon thread)."""
        self._stop.set()
        self._jobs.put(None)
        self._wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for sock in (self._sock, self._wake_r, self._wake_w):
            sock.close()

    def __enter__(self) -> NfcUdpCard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests and keywords drive ------------------------------------------------------------
    def remove_from_field(self) -> None:
        """The card leaves the field: it stops answering at once, mid-APDU or not."""
        card = self.slot.remove()
        if card is not None:
            self._parked = card
        with self._lock:
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
        with self._lock:
            return self.history[-1] if self.history else None

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return asdict(self.stats)

    def reset_stats(self) -> None:
        with self._lock:
            self.stats = LinkStats()
            self.history.clear()

    # -- threads ----------------------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    def _work(self) -> None:
        """Runs APDUs one at a time through the slot, so a slow one never blocks the link."""
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=LOOP_TICK)
            except queue.Empty:
                continue
            if job is None:
                return
            ticket, apdu = job
            try:
                answer: bytes | None = self.slot.exchange(apdu)
            except DeviceError:  # CardRemoved / NoCard: the card is gone, nothing comes back
                answer = None
            except Exception:  # a card answers, it never crashes the link
                log.exception("virtual card failed on APDU %s", apdu.hex())
                answer = b"\x6f\x00"
            self._done.put((ticket, answer))
            self._wake()

    def _serve(self) -> None:
        while not self._stop.is_set():
            timeout = LOOP_TICK
            pending = self._pending
            if pending is not None and pending.busy and not pending.awaiting_wtx:
                timeout = max(0.0, min(timeout, pending.wtx_due - time.monotonic()))
            try:
                readable, _, _ = select.select([self._sock, self._wake_r], [], [], timeout)
            except (OSError, ValueError):
                return
            if self._stop.is_set():
                return
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    self._wake_r.recv(64)
            if self._sock in readable:
                try:
                    datagram, peer = self._sock.recvfrom(2048)
                except OSError:
                    return
                with self._lock:
                    try:
                        self._on_datagram(datagram, peer)
                    except DeviceError:  # the card left between two looks at the slot
                        self.stats.ignored_frames += 1
                    except Exception:  # keep serving: one bad frame must not kill the PICC
                        log.exception("PICC failed on frame %r", datagram[:80])
            with self._lock:
                self._collect_results()
                self._maybe_wtx()

    # -- sending ----------------------------------------------------------------------------------
    def _send(self, frame: bytes, *, remember: bool = True) -> None:
        if remember:
            self._last_frame = frame
        self.stats.frames_out += 1
        if self.faults.drop_responses > 0:
            self.faults.drop_responses -= 1
            self.stats.dropped_frames += 1
            return
        if self._peer is not None:
            with contextlib.suppress(OSError):
                self._sock.sendto(b"106B " + frame.hex().encode(), self._peer)

    def _block(self, pcb: int, inf: bytes = b"") -> bytes:
        """A block with our CID when the reader uses one."""
        if self._cid is not None:
            return bytes((pcb | 0x08, self._cid)) + inf
        return bytes((pcb,)) + inf

    def _note_frame_out(self, frame: bytes) -> None:
        self.stats.largest_frame_out = max(self.stats.largest_frame_out, len(frame) + CRC_LEN)

    # -- receiving --------------------------------------------------------------------------------
    def _on_datagram(self, datagram: bytes, peer: tuple[str, int]) -> None:
        self.stats.frames_in += 1
        if datagram.startswith(b"RFOFF"):
            self.stats.rf_offs += 1
            self._field_off()
            return
        try:
            brty, hexdata = datagram.split()
            frame = bytes.fromhex(hexdata.decode("ascii"))
        except ValueError:
            self.stats.ignored_frames += 1
            return
        card = self.slot.card
        if brty != b"106B" or not frame or card is None:  # Type A polls, or no card in the field
            if card is None and self.state is not State.OFF:
                self._field_off()
            self.stats.ignored_frames += 1
            return
        if self.state is not State.OFF and peer != self._peer:
            self._field_off()  # nfcpy opens a socket per field cycle: a new peer means a field reset
        self._peer = peer
        if self.state is State.OFF:
            self.slot.power_on()  # the field powers the card up: fresh volatile state
            self.state = State.IDLE
        if self.state is State.ACTIVE:
            self._on_block(frame)
        else:
            self._on_activation(frame, card)

    def _field_off(self) -> None:
        self._abandon("abandoned")
        if self.state is not State.OFF:
            self.slot.power_off()
        self.state = State.OFF

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
            self.attrib = frame
            self._fsd = FSC_TABLE[min(frame[6] & 0x0F, 8)]
            cid = frame[8] & 0x0F
            self._cid = cid if cid else None
            self._bn = 1  # ISO 14443-4 rule: the PICC block number starts at 1
            self._last_frame = b""
            self._parked = card
            self.state = State.ACTIVE
            self.stats.activations += 1
            self._send(bytes((cid,)), remember=False)  # MBLI 0 | CID
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
            pending = self._pending = _Pending(self._tickets, time.monotonic())
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
            self._send(self._block(0xC2))
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

    def _run(self, pending: _Pending) -> None:
        pending.busy = True
        pending.wtx_due = time.monotonic() + self._fwt() * WTX_FRACTION
        self.stats.apdus += 1
        self._jobs.put((pending.ticket, bytes(pending.command)))

    def _collect_results(self) -> None:
        while True:
            try:
                ticket, answer = self._done.get_nowait()
            except queue.Empty:
                return
            pending = self._pending
            if pending is None or pending.ticket != ticket or not pending.busy:
                continue  # a result for an APDU the field or a DESELECT cut off
            if answer is None:
                self._abandon("removed")  # the card left mid-APDU: silence
                self.state = State.OFF
                continue
            pending.result = answer
            self._finish_if_ready(pending)

    def _finish_if_ready(self, pending: _Pending) -> None:
        if pending.result is None or pending.awaiting_wtx or not pending.busy:
            return
        pending.busy = False
        pending.response = pending.result
        pending.offset = 0
        self._send_chunk(pending)

    def _send_chunk(self, pending: _Pending) -> None:
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

    def _maybe_wtx(self) -> None:
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

    def _send_wtx(self, pending: _Pending) -> None:
        pending.awaiting_wtx = True
        pending.wtx += 1
        self.stats.wtx_sent += 1
        self._send(self._block(0xF2, b"\x01"))  # WTXM 1: one more FWT, asked again while still busy

    def _abandon(self, outcome: str) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and (pending.busy or pending.offset < len(pending.response)):
            self._record(pending, outcome)

    def _record(self, pending: _Pending, outcome: str) -> None:
        self.history.append(ExchangeRecord(
            len(pending.command), len(pending.response), pending.blocks_in, pending.blocks_out, pending.wtx,
            (time.monotonic() - pending.started) * 1000, outcome))


# -- ways in -------------------------------------------------------------------------------------
class VirtualNfcReader(NfcReader):
    """nfcpy's reader on the UDP link to an in-process PICC; ``.slot`` and ``.server`` inject faults."""

    def __init__(self, server: NfcUdpCard, uri: str, *, extended: bool = True,
                 max_response: int = 65536) -> None:
        self.server = server
        self.slot = server.slot
        try:
            super().__init__(f"udp:{server.host}:{server.port}", uri, targets=("106B",), extended=extended,
                             max_response=max_response)
        except DeviceError:
            server.stop()
            raise

    @property
    def card(self) -> VirtualCard | None:
        return self.slot.card

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.server is not None:
                self.server.stop()


def open_via_nfc(card: VirtualCard, uri: str, options: dict[str, str]) -> Reader:
    """``virtual:<profile>?via=nfc``: the card on a free UDP port, nfcpy's real reader side in front of it."""
    try:
        max_response = int(options.get("max_response", "65536"))
    except ValueError:
        raise DeviceError(f"{uri}: max_response must be a whole number") from None
    extended = options.get("extended", "1") not in ("0", "no", "false")
    server = NfcUdpCard(CardSlot(card)).start()
    return VirtualNfcReader(server, uri, extended=extended, max_response=max_response)


def serve_forever(profile: str, port: int, host: str = "127.0.0.1", *, duration: float | None = None,
                  card: VirtualCard | None = None,
                  announce: Callable[[str], None] | None = None) -> int:
    """``hil virtual serve <profile> --nfc-udp PORT``: serve until Ctrl-C (or ``duration`` seconds)."""
    try:
        card = card if card is not None else VirtualCard.from_profile(profile)
    except ProfileError as exc:
        raise DeviceError(str(exc)) from None
    server = NfcUdpCard(CardSlot(card), host, port).start()
    say = announce or (lambda line: print(line, flush=True))
    deadline = None if duration is None else time.monotonic() + duration
    try:  # announce inside: a Ctrl-C right after the line must still end cleanly
        say(f"virtual {profile} as a Type B card on nfcpy's UDP link: open {server.device_uri}")
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # python -m devices.virtual.nfc_udp phone 54321
    sys.exit(serve_forever(sys.argv[1] if len(sys.argv) > 1 else "card",
                           int(sys.argv[2]) if len(sys.argv) > 2 else 54321))
