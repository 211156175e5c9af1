"""A virtual card or phone as a Type B PICC on nfcpy's UDP link (``nfc:udp:127.0.0.1:PORT``).

nfcpy's reader side (``nfc:udp:…``, opened through the registry) then runs for real against it. The PICC
itself is :mod:`.iso_dep_picc`; this is its UDP shell: link frames are datagrams ``b"<rate>B <hex>"``
without CRC (``106B`` until ATTRIB chose a faster rate) and ``RFOFF``; a slow APDU runs
in a worker thread so the link can send S(WTX).
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
from collections.abc import Callable
from urllib.parse import urlencode

from devices.base import DeviceBusy, DeviceError, Reader
from devices.registry import open_uri
from devices.uri import Option, parse_flag

from ..card import VirtualCard
from ..profile import ProfileError
from ..rig import VirtualRig, attach
from ..slot import CardSlot
from .iso_dep_picc import IsoDepPicc

LOOP_TICK = 0.1  # the server loop wakes at least this often to notice stop()
MAX_RESPONSE = Option("max_response", "int", low=1, high=65536)
log = logging.getLogger(__name__)


def service_name(host: str, port: int) -> str:
    """The name the services database gives ``port`` ("" for none). nfcpy's UDP driver reads its port back with
    ``getnameinfo`` and ``int()``s it, so a port with a name (57000 is ``dircproxy``) cannot be opened."""
    name = socket.getnameinfo((host, port), socket.NI_NUMERICHOST)[1]
    return "" if name.isdigit() else name


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DeviceBusy(f"cannot serve the card on UDP {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _bind_numbered(host: str, port: int, tries: int = 32) -> socket.socket:
    """A UDP socket on ``port``, or on any free port (0) that nfcpy can open: one the services database names is
    kept aside while the next is taken (so it is not handed out again), then released."""
    if port:
        name = service_name(host, port)
        if name:
            raise DeviceBusy(f"cannot serve the card on UDP {host}:{port}: the services database calls that port "
                             f"'{name}', and nfcpy's UDP driver then cannot open it; choose another")
        return _bind(host, port)
    aside: list[socket.socket] = []
    try:
        for _ in range(tries):
            sock = _bind(host, 0)
            if not service_name(host, sock.getsockname()[1]):
                return sock
            aside.append(sock)
        raise DeviceBusy(f"cannot serve the card on UDP {host}: {tries} free ports in a row have service names")
    finally:
        for sock in aside:
            sock.close()


class NfcUdpCard(IsoDepPicc):
    """Serves the card in ``slot`` on a UDP port of 127.0.0.1 until :meth:`stop`."""

    def __init__(self, slot: CardSlot, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(slot)
        self._sock = _bind_numbered(host, port)
        self._address: tuple[str, int] = self._sock.getsockname()
        self._wake_r, self._wake_w = socket.socketpair()
        self._jobs: queue.Queue[tuple[int, bytes] | None] = queue.Queue()
        self._done: queue.Queue[tuple[int, bytes | None]] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

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

    # -- the link -----------------------------------------------------------------------------------
    def _emit(self, frame: bytes, rate: int) -> None:
        peer = self.peer
        if isinstance(peer, tuple):
            with contextlib.suppress(OSError):
                self._sock.sendto(f"{rate}B {frame.hex()}".encode(), peer)

    def _submit(self, ticket: int, apdu: bytes) -> None:
        self._jobs.put((ticket, apdu))

    def _on_datagram(self, datagram: bytes, peer: tuple[str, int]) -> None:
        if datagram.startswith(b"RFOFF"):
            self.rf_off()
            return
        try:
            label, hexdata = datagram.split()
            frame = bytes.fromhex(hexdata.decode("ascii"))
            rate = int(label[:-1]) if label.endswith(b"B") else 0  # 0: Type A or F, never for us
        except ValueError:
            self.stats.frames_in += 1
            self.stats.ignored_frames += 1
            return
        self.on_frame(rate, frame, peer)

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
            due = self.wtx_deadline()
            if due is not None:
                timeout = max(0.0, min(timeout, due - time.monotonic()))
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
                with self.lock:
                    try:
                        self._on_datagram(datagram, peer)
                    except DeviceError:  # the card left between two looks at the slot
                        self.stats.ignored_frames += 1
                    except Exception:  # keep serving: one bad frame must not kill the PICC
                        log.exception("PICC failed on frame %r", datagram[:80])
            with self.lock:
                self._collect_results()
                self.tick()

    def _collect_results(self) -> None:
        while True:
            try:
                ticket, answer = self._done.get_nowait()
            except queue.Empty:
                return
            self.on_result(ticket, answer)


# -- ways in -------------------------------------------------------------------------------------
def open_via_nfc(card: VirtualCard, uri: str, options: dict[str, str]) -> Reader:
    """``virtual:<profile>?via=nfc``: the card on a free UDP port, and nfcpy's real reader side in front of
    it, opened through the registry as ``nfc:udp:127.0.0.1:<port>``; closing the reader stops the PICC.

    ``options`` were checked and normalised by :func:`devices.virtual.reader.virtual_options`."""
    max_response = MAX_RESPONSE.convert(options.get("max_response", "65536"), uri)
    extended = parse_flag(options.get("extended", "1"), "extended", uri)
    server = NfcUdpCard(CardSlot(card)).start()
    query = urlencode({"targets": "106B", "extended": "1" if extended else "0", "max_response": max_response})
    try:
        reader = open_uri(f"{server.device_uri}?{query}")
    except BaseException:
        server.stop()
        raise
    reader.present_as(uri)
    reader.after_close(server.stop)
    return attach(reader, VirtualRig(server.slot, unplug=server.stop, link=server))


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


if __name__ == "__main__":  # python -m devices.virtual.bridges.nfc phone 54321
    sys.exit(serve_forever(sys.argv[1] if len(sys.argv) > 1 else "card",
                           int(sys.argv[2]) if len(sys.argv) > 2 else 54321))
