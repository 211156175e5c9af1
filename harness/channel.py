"""A reader plus a trace: the one path by which the harness sends APDUs."""

from __future__ import annotations

import time

from devices.base import DeviceError, Reader
from harness.apdu import CommandApdu, ResponseApdu
from harness.trace import ApduTrace


class CardChannel:
    """Sends command APDUs through a :class:`Reader`, timing and tracing each exchange."""

    def __init__(self, reader: Reader, trace: ApduTrace | None = None) -> None:
        self.reader = reader
        self.trace = trace if trace is not None else ApduTrace()
        self.apdu_count = 0

    @property
    def capabilities(self):
        return self.reader.capabilities

    def transmit(self, apdu: bytes | CommandApdu, note: str = "") -> ResponseApdu:
        raw = bytes(apdu)
        self.trace.command(raw, note)
        self.apdu_count += 1
        start = time.perf_counter()
        try:
            answer = self.reader.transmit(raw)
        except DeviceError as exc:
            self.trace.failure(f"{type(exc).__name__}: {exc}", (time.perf_counter() - start) * 1000)
            raise
        elapsed = time.perf_counter() - start
        self.trace.response(answer, elapsed * 1000)
        return ResponseApdu.parse(answer, elapsed)
