"""The framing engine: how reader modules cut a byte stream into frames.

Three shapes cover the modules found in kiosks and set-top boxes:

- :class:`StxEtxFraming` ``STX | LEN | payload | ETX | BCC``, with single-byte ACK/NAK between frames;
- :class:`LengthFraming` ``[sync] | LEN | payload | checksum``, binary, optionally with ACK/NAK bytes;
- :class:`LineFraming` one text line per frame, an optional ``*HH`` checksum, optional ``ACK``/``NAK`` lines.

A framing encodes payloads and makes a :class:`Decoder`: a pure state machine fed
with bytes that yields :class:`Frame`, :class:`Control` and :class:`Garbled`
events. It does no I/O, so the host link and the virtual firmware share it, and
it tells time only through :meth:`Decoder.expire` ("the line went quiet mid-frame").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from .checksums import BINARY_CHECKSUMS, BINARY_SIZES, TEXT_CHECKSUMS


@dataclass(frozen=True)
class Frame:
    """A frame whose structure and checksum were right; ``payload`` is what the message codec reads."""

    payload: bytes


@dataclass(frozen=True)
class Control:
    """A link-control token between frames: ``ack`` or ``nak``."""

    kind: str


@dataclass(frozen=True)
class Garbled:
    """Bytes that looked like a frame but were not one; ``reason`` is one line for an error message."""

    reason: str
    raw: bytes = b""


Event = Frame | Control | Garbled


class Framing(ABC):
    """One framing shape with its parameters (from a protocol file)."""

    kind: str = ""
    inter_byte_timeout: float = 0.1

    @property
    @abstractmethod
    def has_ack_nak(self) -> bool: ...

    @abstractmethod
    def encode(self, payload: bytes) -> bytes: ...

    @abstractmethod
    def control(self, kind: str) -> bytes:
        """The bytes of an ``ack`` or ``nak`` token."""

    @abstractmethod
    def decoder(self) -> Decoder: ...

    @abstractmethod
    def checksum_of(self, frame: bytes) -> slice:
        """Where the checksum sits in an encoded frame (fault injection corrupts it there)."""


class Decoder(ABC):
    """Incremental decoder. Not thread-safe: one per reading thread."""

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.buffer = bytearray()
        self.noise = 0  # bytes skipped between frames

    @property
    def pending(self) -> bool:
        """A partial frame is buffered."""
        return bool(self.buffer)

    def reset(self) -> None:
        self.buffer.clear()

    @abstractmethod
    def feed(self, data: bytes) -> list[Event]: ...

    def expire(self) -> list[Event]:
        """The line went quiet for ``inter_byte_timeout`` mid-frame: what was buffered is garbled."""
        if not self.buffer:
            return []
        raw = bytes(self.buffer)
        self.buffer.clear()
        return [Garbled(f"frame cut short: {len(raw)} bytes then silence ({_preview(raw)})", raw)]


def _preview(raw: bytes, limit: int = 12) -> str:
    text = raw[:limit].hex(" ").upper()
    return text + (" …" if len(raw) > limit else "")


def _hexbyte(value: int) -> str:
    return f"0x{value:02X}"


class _BinaryFraming(Framing):
    """What the binary shapes share: one-byte ACK/NAK tokens and a binary checksum at the end of a frame."""

    ack: int | None
    nak: int | None
    checksum: str

    @property
    def has_ack_nak(self) -> bool:
        return self.ack is not None and self.nak is not None

    def control(self, kind: str) -> bytes:
        value = self.ack if kind == "ack" else self.nak
        if value is None:
            raise ValueError(f"this framing has no {kind}")
        return bytes((value,))

    def checksum_of(self, frame: bytes) -> slice:
        return slice(len(frame) - BINARY_SIZES[self.checksum], len(frame))


# --- STX/ETX ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StxEtxFraming(_BinaryFraming):
    """``STX | LEN | payload | ETX | checksum``; the checksum covers LEN, payload and ETX."""

    stx: int = 0x02
    etx: int = 0x03
    ack: int | None = 0x06
    nak: int | None = 0x15
    length_bytes: int = 2
    length_order: str = "big"
    checksum: str = "bcc"
    max_payload: int = 1024
    inter_byte_timeout: float = 0.1
    kind: str = "stx_etx"

    def encode(self, payload: bytes) -> bytes:
        if len(payload) > self.max_payload:
            raise ValueError(f"payload of {len(payload)} bytes exceeds max_payload {self.max_payload}")
        body = len(payload).to_bytes(self.length_bytes, self.length_order) + payload + bytes((self.etx,))  # type: ignore[arg-type]
        return bytes((self.stx,)) + body + BINARY_CHECKSUMS[self.checksum](body)

    def decoder(self) -> Decoder:
        return _StxEtxDecoder(self)


class _StxEtxDecoder(Decoder):
    framing: StxEtxFraming

    def feed(self, data: bytes) -> list[Event]:
        f = self.framing
        events: list[Event] = []
        header = 1 + f.length_bytes
        trailer = 1 + BINARY_SIZES[f.checksum]
        for byte in data:
            if not self.buffer:
                if byte == f.stx:
                    self.buffer.append(byte)
                elif f.ack is not None and byte == f.ack:
                    events.append(Control("ack"))
                elif f.nak is not None and byte == f.nak:
                    events.append(Control("nak"))
                else:
                    self.noise += 1
                continue
            self.buffer.append(byte)
            if len(self.buffer) < header:
                continue
            length = int.from_bytes(self.buffer[1:header], f.length_order)  # type: ignore[arg-type]
            if length > f.max_payload:
                raw = bytes(self.buffer)
                self.buffer.clear()
                events.append(Garbled(f"length field {length} exceeds max_payload {f.max_payload}", raw))
                continue
            if len(self.buffer) < header + length + trailer:
                continue
            raw = bytes(self.buffer)
            self.buffer.clear()
            etx_at = header + length
            if raw[etx_at] != f.etx:
                events.append(Garbled(f"ETX missing: {_hexbyte(raw[etx_at])} where {_hexbyte(f.etx)} belongs "
                                      f"after {length} payload bytes", raw))
                continue
            expected = BINARY_CHECKSUMS[f.checksum](raw[1 : etx_at + 1])
            got = raw[etx_at + 1 :]
            if got != expected:
                events.append(Garbled(f"{f.checksum.upper()} {got.hex().upper()}, expected {expected.hex().upper()}",
                                      raw))
                continue
            events.append(Frame(raw[header:etx_at]))
        return events


# --- length-prefixed ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthFraming(_BinaryFraming):
    """``[sync] | LEN | payload | checksum``. ACK/NAK bytes need a sync header to tell them from a length."""

    sync: bytes = b""
    length_bytes: int = 2
    length_order: str = "big"
    checksum: str = "crc16"
    ack: int | None = None
    nak: int | None = None
    max_payload: int = 1024
    inter_byte_timeout: float = 0.1
    kind: str = "length"

    def encode(self, payload: bytes) -> bytes:
        if len(payload) > self.max_payload:
            raise ValueError(f"payload of {len(payload)} bytes exceeds max_payload {self.max_payload}")
        body = len(payload).to_bytes(self.length_bytes, self.length_order) + payload  # type: ignore[arg-type]
        return self.sync + body + BINARY_CHECKSUMS[self.checksum](body)

    def decoder(self) -> Decoder:
        return _LengthDecoder(self)


class _LengthDecoder(Decoder):
    framing: LengthFraming

    def __init__(self, framing: LengthFraming) -> None:
        super().__init__(framing)
        self.discarding = False  # after a bad length without sync bytes: skip until the line is quiet

    def expire(self) -> list[Event]:
        self.discarding = False
        return super().expire()

    def reset(self) -> None:
        super().reset()
        self.discarding = False

    def feed(self, data: bytes) -> list[Event]:
        f = self.framing
        events: list[Event] = []
        sync = f.sync
        header = len(sync) + f.length_bytes
        size = BINARY_SIZES[f.checksum]
        for byte in data:
            if self.discarding:
                self.noise += 1
                continue
            if len(self.buffer) < len(sync):
                if byte == sync[len(self.buffer)]:
                    self.buffer.append(byte)
                elif not self.buffer and f.ack is not None and byte == f.ack:
                    events.append(Control("ack"))
                elif not self.buffer and f.nak is not None and byte == f.nak:
                    events.append(Control("nak"))
                else:
                    self.noise += len(self.buffer) + 1
                    self.buffer.clear()
                    if byte == sync[0]:
                        self.buffer.append(byte)
                continue
            self.buffer.append(byte)
            if len(self.buffer) < header:
                continue
            length = int.from_bytes(self.buffer[len(sync) : header], f.length_order)  # type: ignore[arg-type]
            if length > f.max_payload:
                raw = bytes(self.buffer)
                self.buffer.clear()
                self.discarding = not sync
                events.append(Garbled(f"length field {length} exceeds max_payload {f.max_payload}", raw))
                continue
            if len(self.buffer) < header + length + size:
                continue
            raw = bytes(self.buffer)
            self.buffer.clear()
            body = raw[len(sync) : header + length]
            expected = BINARY_CHECKSUMS[f.checksum](body)
            got = raw[header + length :]
            if got != expected:
                events.append(Garbled(f"{f.checksum.upper()} {got.hex().upper()}, expected {expected.hex().upper()}",
                                      raw))
                continue
            events.append(Frame(raw[header : header + length]))
        return events


# --- text lines ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineFraming(Framing):
    """One ASCII line per frame, ended by ``eol``; ``checksum = "xor-hex"`` appends ``*HH``."""

    eol: bytes = b"\r\n"
    checksum: str = "none"
    ack: str | None = None
    nak: str | None = None
    max_line: int = 4200
    inter_byte_timeout: float = 0.1
    kind: str = "line"

    @property
    def has_ack_nak(self) -> bool:
        return self.ack is not None and self.nak is not None

    def _seal(self, text: str) -> bytes:
        check = TEXT_CHECKSUMS[self.checksum]
        if check is not None:
            text = f"{text}*{check(text)}"
        return text.encode("ascii") + self.eol

    def encode(self, payload: bytes) -> bytes:
        text = payload.decode("ascii")
        if len(text) > self.max_line:
            raise ValueError(f"line of {len(text)} characters exceeds max_line {self.max_line}")
        return self._seal(text)

    def control(self, kind: str) -> bytes:
        token = self.ack if kind == "ack" else self.nak
        if token is None:
            raise ValueError(f"this framing has no {kind}")
        return self._seal(token)

    def checksum_of(self, frame: bytes) -> slice:
        if TEXT_CHECKSUMS[self.checksum] is None:
            return slice(len(frame) - len(self.eol) - 1, len(frame) - len(self.eol))
        return slice(len(frame) - len(self.eol) - 2, len(frame) - len(self.eol))

    def decoder(self) -> Decoder:
        return _LineDecoder(self)


class _LineDecoder(Decoder):
    framing: LineFraming

    def __init__(self, framing: LineFraming) -> None:
        super().__init__(framing)
        self.overlong = False

    def feed(self, data: bytes) -> list[Event]:
        f = self.framing
        events: list[Event] = []
        self.buffer.extend(data)
        while True:
            end = self.buffer.find(f.eol)
            if end < 0:
                if len(self.buffer) > f.max_line + 8:
                    raw = bytes(self.buffer[:64])
                    self.buffer.clear()
                    if not self.overlong:
                        events.append(Garbled(f"line longer than max_line {f.max_line} without end of line", raw))
                    self.overlong = True
                return events
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + len(f.eol)]
            if self.overlong:  # the tail of a line already reported
                self.overlong = False
                continue
            if not raw:
                continue
            event = self._line(raw)
            events.append(event)

    def _line(self, raw: bytes) -> Event:
        f = self.framing
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            return Garbled(f"non-ASCII byte in a text line ({_preview(raw)})", raw)
        check = TEXT_CHECKSUMS[f.checksum]
        if check is not None:
            body, star, given = text.rpartition("*")
            if not star:
                return Garbled(f"line has no *HH checksum: {text[:40]!r}", raw)
            if given.upper() != check(body):
                return Garbled(f"checksum *{given} of line {body[:40]!r}, expected *{check(body)}", raw)
            text = body
        if f.ack is not None and text == f.ack:
            return Control("ack")
        if f.nak is not None and text == f.nak:
            return Control("nak")
        return Frame(text.encode("ascii"))
