"""A Type B PICC on nfcpy's UDP link that answers correctly except where a test plants garbage.

The reader side is nfcpy's real code behind :class:`devices.nfc.reader.NfcReader`; this card answers
SENSB_REQ, ATTRIB, I-blocks (with ``9000``), R-blocks and S(DESELECT) just well enough to get that far,
then sends the planted datagrams instead of the right answer: bytes that are not ASCII, hex that is not
hex or has an odd length, blocks with random PCBs, truncated or oversized frames, RFOFF, wrong bit
rates. :func:`run_frames` counts what the reader lets escape.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import threading
from collections import deque

from fuzz_support import Tally

ATQB = bytes.fromhex("50 4A504B49 00000000 00 81 41")  # FSCI 8 (256 bytes), ISO 14443-4, FWI 4 (4.8 ms)
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
PHASES = ("sensb", "attrib", "iblock", "iblock", "iblock", "deselect")


def garbage(rng: random.Random, right: bytes) -> bytes:
    """One hostile datagram, given the answer the card should have sent."""
    roll = rng.random()
    if roll < 0.15:
        return bytes(rng.randrange(128, 256) for _ in range(rng.randint(1, 6))) + b" " + right.hex().encode()
    if roll < 0.3:
        return b"106B " + rng.choice([b"zz", b"0g", b"9000xy", b"--", "ã".encode()])
    if roll < 0.4:
        return b"106B " + right.hex().encode()[: rng.randrange(1, max(2, 2 * len(right)), 2)]
    if roll < 0.6:
        frame = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        return b"106B " + frame.hex().encode()
    if roll < 0.75:
        flipped = bytearray(right or b"\x00")
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return b"106B " + bytes(flipped).hex().encode()
    return rng.choice([b"", b"106B", b"106B 00 00", b"RFOFF", b"RFOFF junk", b"106B " + b"00" * 700,
                       b"\x00" * 3, b"106B \xff\xfe", b"  106B   9000  x"])


class HostilePicc:
    """The card. ``plant(phase, datagrams)`` replaces the next answers of that phase."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.planted: dict[str, deque[bytes]] = {}
        self.sent_garbage = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hostile-picc", daemon=True)

    @property
    def uri(self) -> str:
        return f"nfc:udp:127.0.0.1:{self.port}"

    def start(self) -> HostilePicc:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()

    def plant(self, phase: str, datagrams: list[bytes]) -> None:
        with self._lock:
            self.planted = {phase: deque(datagrams)}

    def _answer(self, frame: bytes) -> tuple[str, bytes | None]:
        if not frame:
            return "none", None
        pcb = frame[0]
        if pcb == 0x05:
            return "sensb", ATQB
        if pcb == 0x1D:
            return "attrib", b"\x00"  # MBLI 0, CID 0
        if pcb & 0xE2 == 0x02:  # I-block: chained ones get R(ACK), the last one the status word
            if pcb & 0x10:
                return "iblock", bytes((0xA2 | (pcb & 1),))
            return "iblock", bytes((0x02 | (pcb & 1),)) + b"\x90\x00"
        if pcb & 0xE6 == 0xA2:  # R-block: answer with an I-block of that number
            return "iblock", bytes((0x02 | (pcb & 1),)) + b"\x90\x00"
        if pcb == 0xC2:
            return "deselect", b"\xC2"
        return "none", None

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.socket], [], [], 0.05)[0]:
                continue
            try:
                datagram, addr = self.socket.recvfrom(2048)
            except OSError:
                return
            parts = datagram.split()
            if len(parts) != 2 or parts[0] != b"106B":
                continue  # RFOFF, other bit rates
            try:
                frame = bytes.fromhex(parts[1].decode())
            except ValueError:
                continue
            phase, right = self._answer(frame)
            with self._lock:
                queue = self.planted.get(phase)
                planted = queue.popleft() if queue else None
            if planted is not None:
                self.sent_garbage += 1
                with contextlib.suppress(OSError):
                    self.socket.sendto(planted, addr)
            elif right is not None:
                with contextlib.suppress(OSError):
                    self.socket.sendto(b"106B " + right.hex().encode(), addr)


def run_frames(count: int, seed: int) -> Tally:
    """Plant ``count`` hostile datagrams, one case at a time, and count what :class:`NfcReader` lets out."""
    from devices.base import DeviceError
    from devices.nfc.reader import open_nfc

    rng = random.Random(seed)
    tally = Tally("nfcpy frames from the card side")
    picc = HostilePicc().start()
    reader = open_nfc(picc.uri + "?targets=106B")
    try:
        while picc.sent_garbage < count:
            phase = rng.choice(PHASES)
            rights = {"sensb": ATQB, "attrib": b"\x00", "iblock": b"\x02\x90\x00", "deselect": b"\xC2"}
            picc.plant(phase, [garbage(rng, rights[phase]) for _ in range(rng.randint(1, 2))])
            tally.cases += 1
            try:
                reader.wait_for_card(0.5)
                reader.power_on()
                answer = reader.transmit(SELECT_JPKI)
                if phase == "deselect":
                    reader.power_off()
            except DeviceError as exc:
                message = str(exc)
                if "\n" in message or picc.uri not in message:
                    tally.untyped += 1
                    tally.problem(f"{type(exc).__name__}: {message[:160]!r}")
                else:
                    tally.refused += 1
                    tally.kinds[type(exc).__name__] += 1
            except Exception as exc:  # what escapes the boundary is what is counted
                tally.uncaught += 1
                tally.kinds["uncaught " + type(exc).__name__] += 1
                tally.problem(f"{type(exc).__name__}: {str(exc)[:160]}")
                with contextlib.suppress(Exception):
                    reader._lost()
            else:
                tally.accepted += 1
                if len(answer) < 2:
                    tally.untyped += 1
                    tally.problem(f"an answer without a status word came through: {answer.hex()}")
    finally:
        tally.frames = picc.sent_garbage
        reader.close()
        picc.stop()
    return tally
