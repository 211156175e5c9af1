"""Sessions of the vpcd bridge that outlive one open: which slot is free, slot claims between processes,
parked card servers.

Two processes serving cards into one vpcd reader would talk to each other's card: each process takes
an exclusive ``flock`` per slot (next to pcscd's socket) while its card server runs. Within a process,
a closed ``via=pcsc`` reader leaves its server parked (connected, card in), so the next open pays no
presence poll; see :class:`ParkedServers`. :func:`claim_vpcd_slot` picks a slot with both in mind.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import socket
import threading
import time
from typing import ClassVar, Protocol

from smartcard import scard

from devices.base import BackendUnavailable, DeviceBusy, DeviceError
from devices.pcsc.scard import REMOVAL_GRACE, establish_context, list_readers, reader_states, release_context

from ..pcscd import INSTALL_HINT, users_lock_path, vpcd_first_port


class VpcdCardServer(Protocol):
    """What parking needs of :class:`.vpcd.VpcdCardServer` (no import: the server imports us)."""

    port: int
    _thread: threading.Thread | None

    @property
    def running(self) -> bool: ...

    @property
    def connected(self) -> bool: ...

    def stop(self, timeout: float = 5.0) -> None: ...


VPCD_READER = "Virtual PCD"
VPCD_SLOTS = 2
IDLE_SECONDS = 15.0  # a parked server nobody reuses within this leaves vpcd's reader
# A slot another process holds is waited for this long: its parked server leaves after IDLE_SECONDS idle
# and pcscd then needs a presence poll to see the reader empty. Slots this process holds are not waited for.
OTHERS_WAIT = IDLE_SECONDS + 5.0
OTHERS_POLL = 0.25


class SlotClaim:
    """An exclusive ``flock`` on one vpcd slot, so two processes never serve cards into the same reader."""

    held_here: ClassVar[set[int]] = set()  # ports this process holds a claim on (a flock cannot tell whose it is)

    def __init__(self, fd: int, port: int) -> None:
        self.fd, self.port = fd, port
        SlotClaim.held_here.add(port)

    @classmethod
    def try_take(cls, port: int) -> SlotClaim | None:
        """The claim, or None while another process (or another server here) holds the slot."""
        path = users_lock_path().with_name(f"hil-vpcd-{port}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise BackendUnavailable(f"cannot open the vpcd slot lock {path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return cls(fd, port)

    @classmethod
    def wait_take(cls, port: int) -> SlotClaim:
        """The claim on ``port``, waited for (bounded by :data:`OTHERS_WAIT`) while another process holds it, as
        a card server that is stopping or parked (it leaves when idle) does; then DeviceBusy in one line."""
        deadline = time.monotonic() + OTHERS_WAIT
        while (claim := cls.try_take(port)) is None:
            if time.monotonic() >= deadline:
                raise DeviceBusy(f"vpcd slot {port} is served by another process (waited {OTHERS_WAIT:.0f} s); "
                                 "choose another port")
            time.sleep(OTHERS_POLL)
        return claim

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            SlotClaim.held_here.discard(self.port)
            os.close(fd)


class ParkedServers:
    """Card servers of closed ``via=pcsc`` readers, kept connected in this process by vpcd port.

    pcscd notices a card only at its ~0.4 s presence poll, so a server that leaves vpcd costs a poll at
    close and another at the next open. Parked, the card stays in the reader; the next open swaps its
    fresh card in one step (pcscd sees no change) and the power-on's reset gives the new card's ATR and
    a fresh power-on. A slot another open needs while all are taken is freed by stopping a parked one;
    a server parked for :data:`IDLE_SECONDS` without reuse leaves by itself, so a long-lived process does
    not hold vpcd's slots against other processes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: dict[int, tuple[VpcdCardServer, str]] = {}
        self._timers: dict[int, threading.Timer] = {}
        self.enabled = True  # off: every close takes the card out (the benchmark's before/after)
        atexit.register(self.clear)

    def park(self, server: VpcdCardServer, reader_name: str) -> None:
        timer = threading.Timer(IDLE_SECONDS, self._expire, args=(server,))
        timer.daemon = True
        with self._lock:
            self._servers[server.port] = (server, reader_name)
            self._cancel_timer(server.port)
            self._timers[server.port] = timer
        timer.start()

    def _cancel_timer(self, port: int) -> None:
        timer = self._timers.pop(port, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, server: VpcdCardServer) -> None:
        with self._lock:
            entry = self._servers.get(server.port)
            if entry is None or entry[0] is not server:
                return  # reused or evicted meanwhile
            del self._servers[server.port]
            self._timers.pop(server.port, None)
        with contextlib.suppress(DeviceError):
            server.stop()

    def take(self, ports: list[int], reader: str | None = None) -> tuple[VpcdCardServer, str] | None:
        """A parked server on one of ``ports`` (whose reader is ``reader``, if given) that still runs."""
        with self._lock:
            for port in ports:
                entry = self._servers.get(port)
                if entry is None or (reader and entry[1] != reader):
                    continue
                del self._servers[port]
                self._cancel_timer(port)
                if entry[0].running and entry[0].connected:
                    return entry
                entry[0].stop()
        return None

    def ports(self) -> list[int]:
        with self._lock:
            return list(self._servers)

    def threads(self) -> list[threading.Thread]:
        """The threads of the parked servers (they run on purpose until reuse or exit)."""
        with self._lock:
            return [server._thread for server, _name in self._servers.values() if server._thread is not None]

    def evict(self, port: int) -> bool:
        """Stop the parked server on ``port`` and wait (bounded) until pcscd shows its slot empty."""
        with self._lock:
            entry = self._servers.pop(port, None)
            self._cancel_timer(port)
        if entry is None:
            return False
        server, name = entry
        server.stop()
        wait_listed_state(name, present=False, timeout=REMOVAL_GRACE)
        return True

    def evict_all(self) -> None:
        """Stop every parked server and wait (bounded) until pcscd shows their slots empty."""
        for port in self.ports():
            self.evict(port)

    def clear(self) -> None:
        with self._lock:
            servers, self._servers = self._servers, {}
            for port in list(self._timers):
                self._cancel_timer(port)
        for server, _name in servers.values():
            with contextlib.suppress(DeviceError):
                server.stop()


PARKED = ParkedServers()


def wait_listed_state(name: str, *, present: bool, timeout: float) -> bool:
    """Wait in SCardGetStatusChange (bounded) until pcscd reports reader ``name`` with / without a card."""
    context = establish_context()
    try:
        current, deadline = scard.SCARD_STATE_UNAWARE, time.monotonic() + timeout
        while True:
            remaining = 0 if current == scard.SCARD_STATE_UNAWARE else deadline - time.monotonic()
            if remaining < 0:
                return False
            hr, states = scard.SCardGetStatusChange(context, int(remaining * 1000), [(name, current)])
            if hr != scard.SCARD_S_SUCCESS:
                return False
            if bool(states[0][1] & scard.SCARD_STATE_PRESENT) == present:
                return True
            current = states[0][1] & ~scard.SCARD_STATE_CHANGED
    finally:
        release_context(context)


# -- choosing a slot ------------------------------------------------------------------------
def vpcd_reader_name(port: int, readers: list[str], base_port: int | None = None,
                     friendly: str = VPCD_READER) -> str | None:
    """pcscd names vpcd slot n ``Virtual PCD XX 0n`` (XX: the reader's index); None if not listed."""
    suffix = f" {port - (vpcd_first_port() if base_port is None else base_port):02X}"
    for name in readers:
        if name.startswith(friendly + " ") and name.endswith(suffix):
            return name
    return None


def free_vpcd_slot(ports: list[int] | None = None, reader: str | None = None) -> tuple[int, str]:
    """The first vpcd (port, reader name) whose reader holds no card and no other server claims;
    DeviceBusy when all do. A slot held by a parked server of this process is freed if need be."""
    port, name, claim = claim_vpcd_slot(ports, reader)
    claim.release()
    return port, name


def claim_vpcd_slot(ports: list[int] | None = None, reader: str | None = None) -> tuple[int, str, SlotClaim]:
    """:func:`free_vpcd_slot` and the slot's claim, held until the card server using it stops.

    While a slot is held by another process (its server may be parked, and leaves when idle), waits for it,
    bounded by :data:`OTHERS_WAIT`; when this process holds every slot, DeviceBusy at once."""
    ports = ports or [vpcd_first_port() + n for n in range(VPCD_SLOTS)]
    deadline = time.monotonic() + OTHERS_WAIT
    while True:
        try:
            return _claim_once(ports, reader)
        except DeviceBusy as exc:
            if set(ports) <= SlotClaim.held_here:
                raise
            if time.monotonic() >= deadline:
                raise DeviceBusy(f"{exc} (waited {OTHERS_WAIT:.0f} s for another process to free one)") from None
            time.sleep(OTHERS_POLL)


def port_taken(port: int) -> str:
    """Why vpcd may not be listening on ``port`` although installed: another socket has it ("" when none has).

    vpcd binds it when pcscd starts; if an outgoing connection holds it as its local port just then (it lies in
    Linux's ephemeral range), the bind fails and pcscd runs without that reader until restarted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return (f"TCP port {port}, vpcd's, is held by another socket (a connection given it as its local port "
                    f"keeps vpcd from listening: sysctl -w net.ipv4.ip_local_reserved_ports={port}-{port + 1} keeps "
                    "connections off it), then restart pcscd")
    return ""


def _claim_once(ports: list[int], reader: str | None) -> tuple[int, str, SlotClaim]:
    parked = PARKED.ports()
    for attempt in range(2):
        context = establish_context()
        try:
            readers = list_readers(context)
            names = {port: reader or vpcd_reader_name(port, readers) for port in ports}
            listed = [name for name in names.values() if name and name in readers]
            if not listed:
                raise BackendUnavailable(f"pcscd lists no vpcd reader ('{VPCD_READER} 00 00'); "
                                         + (port_taken(min(ports)) or f"{INSTALL_HINT}, then restart pcscd"))
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
