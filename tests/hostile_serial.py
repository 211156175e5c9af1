"""A serial reader module on a real pty that answers correctly except where a case plants garbage.

The host side is :class:`devices.serial.reader.SerialReader` unchanged. The module decodes each command
frame with the protocol's own codec, builds the right answer (ATR, card state, ``9000``), and sends the
planted bytes instead: well-framed payloads of random content, the right payload with bits flipped,
a wrong sequence number, events where a response belongs, oversized frames, NAK storms or raw noise.
:func:`run_serial_frames` counts what the reader lets escape.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import tty

from fuzz_support import Tally

from devices.serial.framing import Frame
from devices.serial.protocol import ProtocolSpec, load_protocol

ATR = bytes.fromhex("3BE000FF8131FE4514")
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
FAST = "ack_timeout=0.02&response_timeout=0.05&apdu_timeout=0.08&inter_byte_timeout=0.02&retries=1"


def frame_of(spec: ProtocolSpec, payload: bytes) -> bytes:
    """The payload framed; a text protocol's frame of non-ASCII bytes is written as a raw line."""
    try:
        return spec.framing.encode(payload)
    except ValueError:
        return payload + getattr(spec.framing, "eol", b"\n")


def planted(rng: random.Random, spec: ProtocolSpec, right: bytes) -> bytes:
    """What the module sends instead of ``ack + frame(right)``."""
    framing, codec = spec.framing, spec.codec
    ack = framing.control("ack") if framing.has_ack_nak else b""
    roll = rng.random()
    if roll < 0.3:
        return ack + frame_of(spec, bytes(rng.randrange(256) for _ in range(rng.randint(0, 24))))
    if roll < 0.55:
        flipped = bytearray(right or b"\x00")
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return ack + frame_of(spec, bytes(flipped))
    if roll < 0.65:
        return ack + frame_of(spec, codec.event(rng.choice(list(codec.events))))
    if roll < 0.72:
        return ack + frame_of(spec, right + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
    if roll < 0.8 and framing.has_ack_nak:
        return framing.control("nak") * rng.randint(1, 4)
    if roll < 0.88:
        frame = bytearray(ack + frame_of(spec, right))
        frame[rng.randrange(len(frame))] ^= 0xFF  # a broken checksum or length
        return bytes(frame)
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))


class HostileModule:
    """The module on a pty; ``plant(n)`` makes its next ``n`` answers hostile, built from the right ones."""

    def __init__(self, protocol: str, rng: random.Random) -> None:
        self.rng = rng
        self.spec = load_protocol(protocol)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.device = os.ttyname(self.slave)
        self.hostile = 0
        self.sent_garbage = 0
        self.failure = ""  # the module's own crash: the run stops instead of waiting for frames
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-module", daemon=True)

    def __enter__(self) -> HostileModule:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)

    def plant(self, answers: int) -> None:
        with self._lock:
            self.hostile = answers

    def _right(self, payload: bytes) -> bytes | None:
        codec = self.spec.codec
        try:
            command = codec.decode_command(payload)
        except ValueError:
            return None
        data = {"power_on": ATR, "status": bytes((codec.card_states["powered"],)), "transmit": b"\x90\x00"}
        return codec.response(codec.command_code(command), command.seq, "ok", data.get(command.name, b""))

    def _run(self) -> None:
        try:
            self._serve()
        except Exception as exc:  # a bug of this test module, reported by the run
            self.failure = f"{type(exc).__name__}: {exc}"

    def _serve(self) -> None:
        decoder = self.spec.framing.decoder()
        ack = self.spec.framing.control("ack") if self.spec.framing.has_ack_nak else b""
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.02)[0]:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            for event in decoder.feed(chunk):
                if not isinstance(event, Frame):
                    continue
                right = self._right(event.payload)
                if right is None:
                    continue
                answer = None
                with self._lock:
                    if self.hostile > 0:
                        self.hostile -= 1
                        answer = planted(self.rng, self.spec, right)
                        self.sent_garbage += 1
                with contextlib.suppress(OSError):
                    os.write(self.master, answer if answer is not None else ack + self.spec.framing.encode(right))


def run_serial_frames(count: int, seed: int, protocols: tuple[str, ...] = ("kiosk", "stb", "line")) -> Tally:
    """Plant ``count`` hostile answers across the protocols; count what :class:`SerialReader` lets out."""
    from devices.base import DeviceError
    from devices.serial.reader import open_serial

    rng = random.Random(seed)
    tally = Tally("serial module answers")
    per_protocol = -(-count // len(protocols))
    for protocol in protocols:
        with HostileModule(protocol, rng) as module:
            uri = f"serial:{module.device}?protocol={protocol}&{FAST}"
            with open_serial(uri) as reader:
                while module.sent_garbage < per_protocol:
                    if module.failure or tally.cases > 4 * count:
                        raise RuntimeError(f"the hostile {protocol} module stopped: {module.failure or 'no frames'}")
                    module.plant(rng.randint(1, 2))
                    tally.cases += 1
                    try:
                        reader.power_on()
                        answer = reader.transmit(SELECT_JPKI)
                        reader.card_state()
                    except DeviceError as exc:
                        message = str(exc)
                        if "\n" in message or module.device not in message:
                            tally.untyped += 1
                            tally.problem(f"{type(exc).__name__}: {message[:160]!r}")
                        else:
                            tally.refused += 1
                            tally.kinds[type(exc).__name__] += 1
                    except Exception as exc:  # what escapes the boundary is what is counted
                        tally.uncaught += 1
                        tally.kinds["uncaught " + type(exc).__name__] += 1
                        tally.problem(f"{protocol}: {type(exc).__name__}: {str(exc)[:160]}")
                    else:
                        tally.accepted += 1
                        if len(answer) < 2:
                            tally.untyped += 1
                            tally.problem(f"an answer without a status word came through: {answer.hex()}")
            tally.frames += module.sent_garbage
    return tally
