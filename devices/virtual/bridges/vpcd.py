"""The card side of vsmartcard's vpcd, in a thread of this process: one card slot on one vpcd port.

vpcd (a pcscd reader driver) listens on TCP 35963/35964; the card connects to it and answers its
messages (:mod:`.vpcd_wire`). vpcd checks presence by asking for the ATR every 0.4 s, so a card is
"inserted" while connected and "removed" when the connection closes (measured: closing is what works;
a card that merely stops answering hangs the reader instead). The PC/SC reader on top is :mod:`.pcsc`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

from devices.base import BackendUnavailable, CardRemoved, DeviceTimeout, NoCard

from ..card import VirtualCard
from ..pcscd import INSTALL_HINT
from ..slot import CardSlot
from .t0 import T0Responder
from .vpcd_sessions import SlotClaim
from .vpcd_wire import (
    LENGTH_BYTES,
    MAX_PAYLOAD,
    VPCD_PORT,
    Control,
    MessageBuffer,
    VpcdWireError,
    decode_message,
    encode,
)

__all__ = ["VPCD_PORT", "VpcdCardServer"]

POLL_MS = 50  # how soon the server notices a removal or stop() while vpcd is silent
RETRY_SECONDS = 0.2  # between connection attempts while vpcd is not listening (pcscd down)
REMOVAL_GAP = 0.9  # stay away this long after a removal: pcscd must see the empty slot (polls every 0.4 s)
SW_WRONG_LENGTH = b"\x67\x00"
SW_NO_DIAGNOSIS = b"\x6f\x00"


def _is_extended(apdu: bytes) -> bool:
    return len(apdu) > 5 and apdu[4] == 0


class VpcdCardServer:
    """Connects the card in ``slot`` to vpcd and answers for it until :meth:`stop`.

    Insertion and removal follow the slot: a card in the slot is connected, an
    empty slot is not. A removal (also one raised by the slot's fault plan in
    the middle of an APDU) closes the connection without an answer, and the
    server stays away :data:`REMOVAL_GAP` s so pcscd reports the slot empty,
    even when the card is put back at once. Replacing the card in one step
    (``slot.insert`` while a card is in) keeps the connection: pcscd sees no
    change, as with a card swapped faster than a reader polls, and the next
    power-on reaches the new card (what ``Insert Fresh Virtual Card`` relies on).
    """

    def __init__(self, slot: CardSlot, host: str = "127.0.0.1", port: int = VPCD_PORT, *, t0: bool = False,
                 short_only: bool = False, removal_gap: float = REMOVAL_GAP) -> None:
        self.slot = slot
        self.host = host
        self.port = port
        self.t0 = t0
        self.short_only = short_only
        self.removal_gap = removal_gap
        self.responder: CardSlot | T0Responder = T0Responder(slot) if t0 else slot
        self.claim: SlotClaim | None = None  # this process's hold on the vpcd slot, released at stop()
        self.connections = 0  # successful connections to vpcd so far
        self.last_error = ""
        self._last_card = slot.card
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._absent_until = 0.0
        self._generation = slot.generation

    # -- control -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self, timeout: float = 5.0) -> VpcdCardServer:
        """Start the thread; with a card in the slot, return once connected to vpcd's port (pcscd takes the
        connection at its next presence poll, within ~0.4 s: wait for the reader to report the card)."""
        if self.running:
            return self
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"vpcd-card-{self.port}", daemon=True)
        self._thread.start()
        if self.slot.present and not self._connected.wait(timeout):
            error = self.last_error or "no connection"
            self.stop()
            raise BackendUnavailable(f"vpcd is not listening on {self.host}:{self.port} ({error}); "
                                     f"pcscd must run with vsmartcard-vpcd: {INSTALL_HINT}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect (the card leaves the reader) and end the thread within ``timeout`` s."""
        self._stopping.set()
        self._shutdown_socket()
        claim, self.claim = self.claim, None
        if claim is not None:
            claim.release()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise DeviceTimeout(f"vpcd card server on port {self.port} did not stop within {timeout:g} s "
                                    "(a stalled APDU?)")

    def reconfigure(self, *, t0: bool, short_only: bool) -> None:
        """Answer like a T=0 card or a short-APDU path from the next APDU on (a parked server's reuse)."""
        if t0 != self.t0:
            self.t0 = t0
            self.responder = T0Responder(self.slot) if t0 else self.slot
        self.short_only = short_only

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the thread to end (it ends only through :meth:`stop`)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def remove(self) -> VirtualCard | None:
        """Pull the card: the connection closes and pcscd reports the slot empty within ~0.4 s."""
        card = self.slot.remove()
        if card is not None:
            self._last_card = card
        return card

    def insert(self, card: VirtualCard | None = None) -> VirtualCard:
        """Insert ``card``, or a factory-fresh card of the last card's profile. Into an empty slot: the server
        connects and pcscd reports an insertion; over a card: a one-step swap (see the class doc)."""
        if card is None:
            model = self.slot.card or self._last_card
            if model is None:
                raise NoCard("no card to insert: pass one, the slot has never held a card")
            card = VirtualCard(model.profile)
        self._last_card = card
        self.slot.insert(card)
        return card

    # -- thread ----------------------------------------------------------------------
    def _shutdown_socket(self) -> None:
        with self._sock_lock:
            sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self.slot.present:
                self.slot.wait(True, POLL_MS / 1000)
                continue
            gap = self._absent_until - time.monotonic()
            if gap > 0:
                self._stopping.wait(gap)
                continue
            sock = self._connect()
            if sock is None:
                self._stopping.wait(RETRY_SECONDS)
                continue
            try:
                self._serve(sock)
            except OSError as exc:  # vpcd dropped us (pcscd stopped): connect again
                self.last_error = str(exc)
            finally:
                with self._sock_lock:
                    self._sock = None
                self._connected.clear()
                sock.close()

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=1.0)
        except OSError as exc:
            self.last_error = str(exc)
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._sock_lock:
            self._sock = sock
        self._generation = self.slot.generation
        self.connections += 1
        self._connected.set()
        return sock

    def _card_left(self) -> bool:
        """Whether the slot was emptied since we connected, even if a card is back already.

        The slot bumps ``generation`` on every insertion and removal: one step while a card is in is a
        one-step swap (kept); two or more mean it was empty in between.
        """
        generation, present = self.slot.generation, self.slot.present
        if not present or generation - self._generation >= 2:
            return True
        self._generation = generation
        return False

    def _serve(self, sock: socket.socket) -> None:
        """Answer vpcd until it disconnects, the card leaves the slot, or stop()."""
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        messages = MessageBuffer()
        while not self._stopping.is_set():
            message = messages.next()
            if message is not None:
                if self._card_left() or not self._answer(sock, message):
                    self._absent_until = time.monotonic() + self.removal_gap
                    return
                continue
            # PLATFORM-NOTES latency trap: vpcd writes without TCP_NODELAY, so ack at once, before every recv.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if not poller.poll(POLL_MS):
                if self._card_left():
                    self._absent_until = time.monotonic() + self.removal_gap
                    return
                continue
            chunk = sock.recv(LENGTH_BYTES + MAX_PAYLOAD)
            if not chunk:
                self.last_error = "vpcd closed the connection"
                try:
                    messages.close()
                except VpcdWireError as exc:
                    self.last_error += f" ({exc})"
                return
            messages.feed(chunk)

    def _answer(self, sock: socket.socket, message: bytes) -> bool:
        """Handle one message; False means the card is gone and the connection must close unanswered."""
        try:
            decoded = decode_message(message)
        except VpcdWireError as exc:  # an unknown control: vpcd expects no answer, so none is sent
            self.last_error = str(exc)
            return True
        if isinstance(decoded, Control):
            try:
                if decoded is Control.ATR:
                    card = self.slot.card
                    if card is None:
                        return False
                    sock.sendall(encode(card.atr))
                elif decoded is Control.POWER_OFF:
                    self.responder.power_off()
                else:  # POWER_ON, RESET
                    self.responder.power_on()  # volatile state (PINs verified, selection) starts afresh
            except NoCard:
                return False
            return True
        if len(decoded) < 4 or (self.short_only and _is_extended(decoded)):
            sock.sendall(encode(SW_WRONG_LENGTH))  # too short for a C-APDU; or a path for short APDUs only
            return True
        try:
            response = self.responder.exchange(decoded)
        except (CardRemoved, NoCard):
            return False
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            response = SW_NO_DIAGNOSIS
        sock.sendall(encode(response))
        return True
