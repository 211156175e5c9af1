"""A reader plus a trace: the one path by which the harness sends APDUs."""

from __future__ import annotations

import threading
import time

from devices.base import DeviceError, DeviceTimeout, Reader, ReaderCapabilities
from harness.apdu import CommandApdu, ResponseApdu
from harness.redact import personal_response
from harness.trace import ApduTrace


class CardChannel:
    """Sends command APDUs through a :class:`Reader`, timing and tracing each exchange.

    With ``timeout`` set, an APDU that gets no answer in time raises :class:`DeviceTimeout` whatever the
    backend does, so a stalled card or a wedged reader stack cannot hang a run.
    """

    def __init__(self, reader: Reader, trace: ApduTrace | None = None, timeout: float | None = None) -> None:
        self.reader = reader
        self.trace = trace if trace is not None else ApduTrace()
        self.timeout = timeout
        self.apdu_count = 0

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self.reader.capabilities

    def transmit(self, apdu: bytes | CommandApdu, note: str = "") -> ResponseApdu:
        raw = bytes(apdu)
        self.trace.command(raw, note)
        self.apdu_count += 1
        start = time.perf_counter()
        try:
            answer = self.reader.transmit(raw) if self.timeout is None else self._transmit_with_deadline(raw)
        except DeviceError as exc:
            self.trace.failure(f"{type(exc).__name__}: {exc}", (time.perf_counter() - start) * 1000)
            raise
        elapsed = time.perf_counter() - start
        self.trace.response(answer, elapsed * 1000)
        response = ResponseApdu.parse(answer, elapsed)
        # the holder's data print as their structure wherever the response is logged (unless lifted)
        return response if self.trace.show_holder_data else personal_response(response, self.trace.context)

    def _transmit_with_deadline(self, raw: bytes) -> bytes:
        outcome: dict[str, object] = {}

        def exchange() -> None:
            try:
                outcome["answer"] = self.reader.transmit(raw)
            except BaseException as exc:  # handed to the caller's thread
                outcome["error"] = exc

        # A daemon thread: if the backend never returns, the run still ends.
        worker = threading.Thread(target=exchange, name="apdu", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise DeviceTimeout(f"{self.reader.uri}: no answer to the APDU within {self.timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["answer"]  # type: ignore[return-value]
