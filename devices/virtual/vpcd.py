"""A virtual card behind pcscd: the card side of vsmartcard's vpcd, in a thread of this process.

vpcd (a pcscd reader driver) listens on TCP 35963/35964; the card connects to it.
Each message is a 2-byte big-endian length and a payload: one byte is a control
(0 power off, 1 power on, 2 reset, 4 "send the ATR"), anything longer a C-APDU
answered with an R-APDU. vpcd checks presence by asking for the ATR every
0.4 s, so a card is "inserted" while connected and "removed" when the
connection closes (measured: closing is what works; a card that merely stops
answering hangs the reader instead).

``virtual:card?via=pcsc`` (see :func:`open_via_pcsc`) puts a virtual card here
and returns the real :class:`~devices.pcsc.reader.PcscReader` on that vpcd reader, so
the whole PC/SC path (pyscard, pcscd, the driver) runs under the suites.
"""

from __future__ import annotations

import contextlib
import dataclasses
import select
import signal
import socket
import threading
import time
from collections.abc import Mapping

from smartcard import scard

from devices.base import (
    BackendUnavailable,
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceTimeout,
    NoCard,
    ReaderCapabilities,
)
from devices.pcsc.reader import REMOVAL_GRACE, PcscReader, reader_options
from devices.pcsc.scard import establish_context, list_readers, reader_states, release_context
from devices.uri import parse_flag

from .card import VirtualCard
from .pcscd import INSTALL_HINT, ensure_pcscd
from .profile import ProfileError
from .rig import VirtualRig, attach
from .slot import CardSlot, FaultPlan
from .t0 import T0Responder
from .vpcd_sessions import PARKED, SlotClaim, wait_listed_state

__all__ = ["PARKED", "BridgedPcscReader", "VpcdCardServer", "claim_vpcd_slot", "free_vpcd_slot", "open_via_pcsc",
           "serve_forever"]

VPCD_PORT = 35963  # /etc/reader.conf.d/vpcd: CHANNELID 0x8C7B; slot n listens on 35963 + n
VPCD_READER = "Virtual PCD"
VPCD_SLOTS = 2
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
POLL_MS = 50  # how soon the server notices a removal or stop() while vpcd is silent
RETRY_SECONDS = 0.2  # between connection attempts while vpcd is not listening (pcscd down)
REMOVAL_GAP = 0.9  # stay away this long after a removal: pcscd must see the empty slot (polls every 0.4 s)
SW_WRONG_LENGTH = b"\x67\x00"
SW_NO_DIAGNOSIS = b"\x6f\x00"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(2, "big") + payload


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
        buffer = bytearray()
        while not self._stopping.is_set():
            if len(buffer) >= 2:
                size = int.from_bytes(buffer[:2], "big")
                if len(buffer) >= 2 + size:
                    message = bytes(buffer[2 : 2 + size])
                    del buffer[: 2 + size]
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
            chunk = sock.recv(65538)
            if not chunk:
                self.last_error = "vpcd closed the connection"
                return
            buffer += chunk

    def _answer(self, sock: socket.socket, message: bytes) -> bool:
        """Handle one message; False means the card is gone and the connection must close unanswered."""
        if len(message) == 1:
            control = message[0]
            try:
                if control == CTRL_ATR:
                    card = self.slot.card
                    if card is None:
                        return False
                    sock.sendall(_frame(card.atr))
                elif control == CTRL_OFF:
                    self.responder.power_off()
                elif control in (CTRL_ON, CTRL_RESET):
                    self.responder.power_on()  # volatile state (PINs verified, selection) starts afresh
            except NoCard:
                return False
            return True
        if len(message) < 4:
            sock.sendall(_frame(SW_WRONG_LENGTH))
            return True
        if self.short_only and _is_extended(message):
            sock.sendall(_frame(SW_WRONG_LENGTH))  # a path that carries short APDUs only
            return True
        try:
            response = self.responder.exchange(message)
        except (CardRemoved, NoCard):
            return False
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            response = SW_NO_DIAGNOSIS
        sock.sendall(_frame(response))
        return True


# -- the vpcd readers ------------------------------------------------------------------
def vpcd_reader_name(port: int, readers: list[str], base_port: int = VPCD_PORT,
                     friendly: str = VPCD_READER) -> str | None:
    """pcscd names vpcd slot n ``Virtual PCD XX 0n`` (XX: the reader's index); None if not listed."""
    suffix = f" {port - base_port:02X}"
    for name in readers:
        if name.startswith(friendly + " ") and name.endswith(suffix):
            return name
    return None


class BridgedPcscReader(PcscReader):
    """A :class:`PcscReader` whose card is in-process: ``.slot`` for faults and card swaps, ``.server``."""

    def __init__(self, reader_name: str, server: VpcdCardServer, **kwargs: object) -> None:
        super().__init__(reader_name, **kwargs)  # type: ignore[arg-type]
        self.server = server
        self.slot = server.slot
        attach(self, VirtualRig(server.slot, unplug=server.stop, wait_removed=self.wait_for_removal))

    def _detect_capabilities(self) -> ReaderCapabilities:
        caps = super()._detect_capabilities()
        details = {**caps.details, "via": "vpcd", "vpcd_port": str(self.server.port),
                   "t0_emulation": "on" if self.server.t0 else "off"}
        return dataclasses.replace(caps, details=details)

    @property
    def parkable(self) -> bool:
        """Whether the card server can stay up for the next open: connected, card in, pcscd sees it."""
        server = self.server
        if not (server.running and server.connected and self.slot.present and self._context is not None):
            return False
        try:
            return bool(self.card_state() & scard.SCARD_STATE_PRESENT)
        except DeviceError:
            return False

    def close(self) -> None:
        """Release the reader. A healthy card server is parked (see :class:`ParkedServers`): the card stays
        in vpcd's reader and the next ``virtual:…?via=pcsc`` of this process swaps in its fresh card with
        no presence poll. Otherwise: take the card out and wait (bounded) until pcscd shows the slot empty,
        so the next open finds this slot free."""
        if self._context is None:
            self.server.stop()
            return
        with contextlib.suppress(DeviceError):
            self.power_off()
        if self.pooled and PARKED.enabled and self.parkable:
            PARKED.park(self.server, self.name)
            super().close()
            return
        try:
            self.server.stop()
        finally:
            with contextlib.suppress(DeviceError):
                self._wait_state(False, REMOVAL_GRACE)
            super().close()




# Options of virtual:…?via=pcsc: the bridge's, then those devices.virtual.reader applies to the card itself.
BRIDGE_OPTIONS = ("via", "port", "t0", "extended", "reader", "timeout", "max_response", "expendable",
                  "sign_delay_ms")


def free_vpcd_slot(ports: list[int] | None = None, reader: str | None = None) -> tuple[int, str]:
    """The first vpcd (port, reader name) whose reader holds no card and no other server claims;
    DeviceBusy when all do. A slot held by a parked server of this process is freed if need be."""
    port, name, claim = claim_vpcd_slot(ports, reader)
    claim.release()
    return port, name


def claim_vpcd_slot(ports: list[int] | None = None, reader: str | None = None) -> tuple[int, str, SlotClaim]:
    """:func:`free_vpcd_slot` and the slot's claim, held until the card server using it stops."""
    ports = ports or [VPCD_PORT + n for n in range(VPCD_SLOTS)]
    parked = PARKED.ports()
    for attempt in range(2):
        context = establish_context()
        try:
            readers = list_readers(context)
            names = {port: reader or vpcd_reader_name(port, readers) for port in ports}
            listed = [name for name in names.values() if name and name in readers]
            if not listed:
                raise BackendUnavailable(f"pcscd lists no vpcd reader ('{VPCD_READER} 00 00'); "
                                         f"{INSTALL_HINT}, then restart pcscd")
            states = {name: state for name, state, _atr in reader_states(context, listed)}
        finally:
            release_context(context)
        for port, name in names.items():
            if name in states and not states[name] & scard.SCARD_STATE_PRESENT and port not in parked:
                claim = SlotClaim.try_take(port)
                if claim is not None:
                    return port, name, claim
        if attempt == 0 and _free_one(ports, names, states, parked):
            parked = PARKED.ports()
            continue
        break
    taken = ", ".join(f"'{name}'" for name in states)
    raise DeviceBusy(f"every vpcd reader already holds a card or is claimed ({taken}): another card server "
                     "is running; stop it or choose a free slot with port=…")


def _free_one(ports: list[int], names: dict[int, str | None], states: dict[str, int], parked: list[int]) -> bool:
    """Make one slot free if one can be: stop a parked server of ours, or wait (bounded) for a card that
    nobody claims to leave (a server just stopped: pcscd sees it gone at its next poll)."""
    evictable = [port for port in ports if port in parked]
    if evictable and PARKED.evict(evictable[0]):
        return True
    for port in ports:
        name = names.get(port)
        if not name or name not in states:
            continue
        claim = SlotClaim.try_take(port)
        if claim is None:
            continue
        claim.release()
        if wait_listed_state(name, present=False, timeout=REMOVAL_GRACE):
            return True
    return False


def open_via_pcsc(card: VirtualCard, uri: str, options: Mapping[str, str]) -> BridgedPcscReader:
    """``virtual:<profile>?via=pcsc[&port=35963][&t0=1][&get_response=0]…``: the card behind pcscd + vpcd.

    Starts pcscd if none runs, connects the card to the first free vpcd slot (or ``port``), waits until
    pcscd reports it present and returns the PC/SC reader on it. ``close()`` also takes the card out.
    ``t0=1`` makes the card answer like a T=0 card (61xx/6Cxx), ``extended=0`` like a short-APDU path.
    """
    unknown = sorted(set(options) - set(BRIDGE_OPTIONS) - {"get_response", "resend_6c", "reset", "share"})
    if unknown:
        raise DeviceError(f"{uri}: unknown option(s) {', '.join(unknown)}")
    try:
        ports = [int(options["port"])] if "port" in options else [VPCD_PORT + n for n in range(VPCD_SLOTS)]
        timeout = float(options.get("timeout", "5"))
    except ValueError:
        raise DeviceError(f"{uri}: port and timeout must be numbers") from None
    t0 = parse_flag(options.get("t0", "0"), "t0")
    short_only = not parse_flag(options.get("extended", "1"), "extended")
    kwargs = reader_options({k: v for k, v in options.items() if k not in BRIDGE_OPTIONS}, uri)
    ensure_pcscd()
    parked = PARKED.take(ports, options.get("reader"))
    if parked is not None:
        server, name = parked
        server.reconfigure(t0=t0, short_only=short_only)
        server.slot.arm(FaultPlan())
        server.insert(card)  # one step: pcscd sees no change, the power-on's reset reaches the new card
    else:
        port, name, claim = claim_vpcd_slot(ports, options.get("reader"))
        server = VpcdCardServer(CardSlot(card), port=port, t0=t0, short_only=short_only)
        server.claim = claim
        try:
            server.start(timeout)
        except DeviceError:
            claim.release()
            raise
    try:
        reader = BridgedPcscReader(name, server, uri=uri, **kwargs)
    except DeviceError:
        server.stop()
        raise
    try:
        reader.wait_for_card(timeout)
    except DeviceError:
        reader.close()
        raise
    return reader


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve_forever(profile: str, port: int = VPCD_PORT, host: str = "127.0.0.1", *,
                  card: VirtualCard | None = None) -> None:
    """``hil virtual serve card --pcsc``: keep the card in a vpcd reader until Ctrl-C (or SIGTERM).

    Both signals are handled here: a process started in the background by a shell ignores SIGINT,
    and an unhandled SIGTERM would skip the atexit hook that stops a pcscd this process started.
    """
    try:
        card = card if card is not None else VirtualCard.from_profile(profile)
    except ProfileError as exc:
        raise DeviceError(str(exc)) from None
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
                    signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt)}
    server: VpcdCardServer | None = None
    try:
        local = host in LOCAL_HOSTS
        if local:
            ensure_pcscd()
        server = VpcdCardServer(CardSlot(card), host=host, port=port)
        if local:  # another process serving this slot would answer for our card: refuse instead
            server.claim = SlotClaim.try_take(port)
            if server.claim is None:
                raise DeviceBusy(f"vpcd slot {port} is served by another process; choose another port")
        server.start()
        name = _wait_listed(port) if local else None
        where = f"PC/SC reader '{name}' (device pcsc:{name})" if name else f"the vpcd reader on {host}:{port}"
        print(f"virtual card '{profile}' is in {where}; Ctrl-C to remove it and stop", flush=True)
        while server.running:
            server.join(0.5)
        raise DeviceError(f"the card server on port {port} stopped: {server.last_error}")
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


def _wait_listed(port: int, timeout: float = 5.0) -> str | None:
    """The reader name once pcscd reports the card present (bounded); None if it does not show."""
    context = establish_context()
    try:
        name = vpcd_reader_name(port, list_readers(context))
        if name is None:
            return None
        hr, states = scard.SCardGetStatusChange(context, 0, [(name, scard.SCARD_STATE_UNAWARE)])
        deadline = time.monotonic() + timeout
        while hr == scard.SCARD_S_SUCCESS and not states[0][1] & scard.SCARD_STATE_PRESENT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            current = states[0][1] & ~scard.SCARD_STATE_CHANGED
            hr, states = scard.SCardGetStatusChange(context, int(remaining * 1000), [(name, current)])
        return name
    finally:
        release_context(context)
