"""pyserial's RFC 2217 client, woken by the server's answers instead of polling for them.

pyserial's ``rfc2217.Serial`` negotiates by polling: after each request it sleeps 0.05 s and looks whether its
reader thread has seen the answer, seven times in ``open()`` (Telnet options, line settings, flow control,
DTR, RTS, two purges), and ``close()`` always sleeps 0.3 s "in case of quick reconnects". Measured on
127.0.0.1 against the virtual port server: open 0.71 s, close 0.35 s, against 0.004 and 0.02 s on a pty;
a suite opens its device once, so every RFC 2217 suite paid about a second for nothing.

:class:`EventedRfc2217` keeps pyserial's protocol code and changes only the waiting:

- the module's ``time.sleep`` becomes :func:`_wake_or_sleep`: the same bounded wait, ended early when any
  RFC 2217 reader thread has just processed a Telnet negotiation or subnegotiation (the loops around it
  check their own state and deadline again, so an early wake is never a wrong answer);
- the reconnect grace (``reconnect_grace``, default pyserial's 0.3 s) is kept per ``host:port`` and paid by
  the next open of the same address only if it comes within that time; the virtual port server accepts a
  new client at once and its URIs say ``reconnect_grace=0``.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar
from urllib.parse import urlsplit

from serial import rfc2217

DEFAULT_RECONNECT_GRACE = 0.3  # pyserial's own pause after close()
_answers = threading.Condition()
_real_sleep = time.sleep


def _wake_or_sleep(seconds: float) -> None:
    """``time.sleep`` for pyserial's RFC 2217 module: at most ``seconds``, less when an answer arrives."""
    if seconds <= 0:
        return
    with _answers:
        _answers.wait(seconds)


class _SleepOnAnswers:
    """Stands in for the ``time`` module inside :mod:`serial.rfc2217` (which uses only ``time.sleep``)."""

    sleep = staticmethod(_wake_or_sleep)

    def __getattr__(self, name: str):
        return getattr(time, name)


def _answered() -> None:
    with _answers:
        _answers.notify_all()


rfc2217.time = _SleepOnAnswers()  # type: ignore[attr-defined]


class EventedRfc2217(rfc2217.Serial):
    """``rfc2217.Serial`` whose negotiation waits end when the server answers; see the module docstring."""

    _closed_at: ClassVar[dict[str, float]] = {}  # host:port -> when a port to it last closed
    _closed_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, *args, reconnect_grace: float = DEFAULT_RECONNECT_GRACE, **kwargs) -> None:
        self.reconnect_grace = reconnect_grace
        super().__init__(*args, **kwargs)

    def _address(self) -> str:
        return urlsplit(self.portstr or "").netloc

    def open(self) -> None:
        address = self._address()
        with self._closed_lock:
            closed = self._closed_at.get(address)
        if closed is not None:
            _real_sleep(max(0.0, closed + self.reconnect_grace - time.monotonic()))
        super().open()

    def close(self) -> None:
        thread, self._thread = self._thread, None  # pyserial sleeps its grace only when it joins the thread
        was_open = self._socket is not None
        super().close()
        if thread is not None:
            thread.join(7)
        if was_open:
            with self._closed_lock:
                self._closed_at[self._address()] = time.monotonic()

    def _telnet_negotiate_option(self, command, option) -> None:
        super()._telnet_negotiate_option(command, option)
        _answered()

    def _telnet_process_subnegotiation(self, suboption) -> None:
        super()._telnet_process_subnegotiation(suboption)
        _answered()
