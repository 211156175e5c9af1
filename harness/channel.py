"""A reader plus a trace: the one path by which the harness sends APDUs.

Two guards hold here, for every backend alike:

- a command that is not a well-formed APDU is refused with :class:`MalformedApdu` before any byte leaves
  (a 1-byte ``00`` reached vpcd as its "power off" control message and the run hung for good);
- every call into a backend has a deadline: where the backend has none of its own (PC/SC, nfcpy, lab
  plug-ins) the call runs on the channel's worker thread and the caller waits at most ``timeout`` s (or
  :data:`BACKSTOP_SECONDS` when none is set), so a wedged stack cannot hang a run, and the waiting main
  thread still sees SIGTERM and Ctrl-C.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from devices.base import DeviceError, DeviceTimeout, Reader, ReaderCapabilities
from harness.iso.apdu import ApduError, CommandApdu, ResponseApdu
from harness.iso.redact import personal_response
from harness.trace import ApduTrace

# The deadline of a backend call when the test set none: far above any card's working time (slow signing,
# WTX, serial retries), short enough that a hung stack ends the run in a minute, not never.
BACKSTOP_SECONDS = 60.0
HEADER_LENGTH = 4


class MalformedApdu(DeviceError):
    """The harness refused to send bytes that are not a command APDU (nothing reached the reader)."""


def command_problem(raw: bytes, *, wrong_length_ok: bool = False) -> str:
    """Why ``raw`` is no command APDU (empty when it is one).

    Shorter than the 4-byte header is never sendable. A body whose Lc/Le does not match its length is
    refused too, unless ``wrong_length_ok``: a conformance test sends exactly that on purpose to see the
    card answer ``6700``, and every transport carries such bytes unchanged.
    """
    if len(raw) < HEADER_LENGTH:
        return f"{len(raw)}-byte command is shorter than the 4-byte APDU header (CLA INS P1 P2)"
    if wrong_length_ok:
        return ""
    try:
        CommandApdu.parse(raw)
    except ApduError as exc:
        return f"malformed command APDU ({exc}); nothing was sent"
    return ""


class _WorkerLogs(logging.Handler):
    """Log records made on channel workers (nfcpy's frame log, a plug-in's messages), kept per worker.

    Robot keeps only what the main thread logs; the caller replays a call's records through Robot's
    handler once the call is back (:func:`_replay_for_robot`). Every other handler saw them already.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.buffers: dict[int, list[logging.LogRecord]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        buffer = self.buffers.get(threading.get_ident())
        if buffer is not None:
            buffer.append(record)

    def take(self, ident: int) -> list[logging.LogRecord]:
        records = self.buffers.get(ident)
        if not records:
            return []
        self.buffers[ident] = []
        return records


_WORKER_LOGS = _WorkerLogs()
_install_lock = threading.Lock()


def _capture_worker_logs() -> None:
    with _install_lock:
        root = logging.getLogger()
        if _WORKER_LOGS not in root.handlers:
            root.addHandler(_WORKER_LOGS)


def _replay_for_robot(records: list[logging.LogRecord]) -> None:
    """Hand records made on a worker to Robot's logging handler, now in the thread Robot listens to."""
    handlers = [h for h in logging.getLogger().handlers if type(h).__module__.startswith("robot.")]
    for handler in handlers:
        for record in records:
            if record.levelno >= handler.level:
                handler.handle(record)


class _BackendWorker:
    """One daemon thread per channel that makes the backend calls, so the caller can stop waiting.

    Two plain locks hand a call over and back (the cheapest handoff Python has, ~15 µs). A call that
    overran its deadline keeps the worker: the next call first waits (bounded) for it to end, so the
    reader is never driven by two threads at once.
    """

    def __init__(self, name: str) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._function: Callable[[bytes], bytes] | None = None
        self._argument = b""
        self._answer = b""
        self._error: BaseException | None = None
        self._busy = False  # a call is running, perhaps past its deadline
        self._closed = False
        _capture_worker_logs()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _WORKER_LOGS.buffers[threading.get_ident()] = []
        while True:
            self._go.acquire()
            if self._closed or self._function is None:
                _WORKER_LOGS.buffers.pop(threading.get_ident(), None)
                return
            try:
                self._answer, self._error = self._function(self._argument), None
            except BaseException as exc:  # handed to the caller's thread
                self._answer, self._error = b"", exc
            self._done.release()
            if self._closed:
                _WORKER_LOGS.buffers.pop(threading.get_ident(), None)
                return

    def call(self, function: Callable[[bytes], bytes], argument: bytes, timeout: float) -> bool:
        """Run ``function(argument)`` on the worker; False when it did not end within ``timeout`` s.

        Afterwards :attr:`answer` / :attr:`error` hold the outcome.
        """
        if self._busy:
            if not self._done.acquire(timeout=timeout):
                return False
            self._busy = False  # the overrun call's outcome is dropped
        self._function, self._argument, self._busy = function, argument, True
        self._go.release()
        if not self._done.acquire(timeout=timeout):
            return False
        self._busy = False
        if self._thread.ident is not None and (records := _WORKER_LOGS.take(self._thread.ident)):
            _replay_for_robot(records)
        return True

    @property
    def answer(self) -> bytes:
        return self._answer

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stop(self) -> None:
        self._closed = True
        if not self._busy:
            self._go.release()


def _bounds_itself(reader: Reader) -> bool:
    """Readers whose calls cannot outlive a deadline of their own: the in-process card (no I/O) and a
    serial module, whose every exchange ends within its protocol's timeouts and bounded retries."""
    return reader.answers_in_caller or reader.bounded_by_protocol


class CardChannel:
    """Sends command APDUs through a :class:`Reader`, timing and tracing each exchange.

    ``timeout`` (seconds) is the test's deadline for one APDU; None means :data:`BACKSTOP_SECONDS`.
    A reader that bounds its calls itself (``answers_in_caller``: the in-process card, ~10 µs an APDU;
    ``bounded_by_protocol``: a serial module, whose timing-sensitive ACK/NAK exchange is better left in
    one thread) is called directly unless a ``timeout`` is set.
    ``wrong_length_ok`` lets a deliberately inconsistent Lc/Le through (never a command under 4 bytes).
    """

    def __init__(self, reader: Reader, trace: ApduTrace | None = None, timeout: float | None = None) -> None:
        self.reader = reader
        self.trace = trace if trace is not None else ApduTrace()
        self.timeout = timeout
        self.apdu_count = 0
        self._worker: _BackendWorker | None = None

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self.reader.capabilities

    def transmit(self, apdu: bytes | CommandApdu, note: str = "", *, wrong_length_ok: bool = False) -> ResponseApdu:
        raw = bytes(apdu)
        problem = "" if isinstance(apdu, CommandApdu) else command_problem(raw, wrong_length_ok=wrong_length_ok)
        self.trace.command(raw, note)
        if problem:
            self.trace.failure(f"MalformedApdu: {problem}", 0.0)
            raise MalformedApdu(f"{self.reader.uri}: {problem}")
        self.apdu_count += 1
        start = time.perf_counter()
        try:
            answer = self._call_backend(raw)
        except DeviceError as exc:
            self.trace.failure(f"{type(exc).__name__}: {exc}", (time.perf_counter() - start) * 1000)
            raise
        elapsed = time.perf_counter() - start
        self.trace.response(answer, elapsed * 1000)
        response = ResponseApdu.parse(answer, elapsed)
        # the holder's data print as their structure wherever the response is logged (unless lifted)
        return response if self.trace.show_holder_data else personal_response(response, self.trace.context)

    def _call_backend(self, raw: bytes) -> bytes:
        if self.timeout is None and _bounds_itself(self.reader):
            return self.reader.transmit(raw)
        deadline = BACKSTOP_SECONDS if self.timeout is None else self.timeout
        if self._worker is None:
            self._worker = _BackendWorker(f"apdu-{self.reader.uri}")
        worker = self._worker
        if not worker.call(self.reader.transmit, raw, deadline):
            raise DeviceTimeout(f"{self.reader.uri}: no answer to the APDU within {deadline:g} s "
                                "(the reader is wedged: close and open the device again)")
        if worker.error is not None:
            raise worker.error
        return worker.answer

    def close(self) -> None:
        """End the worker thread (a stuck one ends with the process: it is a daemon)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()

    def __del__(self) -> None:
        self.close()
