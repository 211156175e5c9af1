"""pcscd through pyscard's low-level :mod:`smartcard.scard`: contexts, reader states, and the typed errors.

One C call per operation and no observer threads, so the harness adds almost nothing to a raw
``SCardTransmit``. Every PC/SC result code becomes one of the typed errors of :mod:`devices.base`
with a one-line message; PIN bytes never appear in them.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable

from smartcard import scard

from devices.base import (
    BackendUnavailable,
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    NoCard,
    NoReader,
    ProtocolError,
)
from harness.iso.redact import redact_apdu

START_HINT = "start it with `pcscd --foreground &` (not installed? apt-get install pcscd, or scripts/setup.sh)"

OK = scard.SCARD_S_SUCCESS
REMOVAL_GRACE = 1.5  # pcscd polls presence every 0.4 s: time to let it notice a card that vanished mid-APDU
BOTH_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
PROTOCOL_NAMES = {scard.SCARD_PROTOCOL_T0: "T=0", scard.SCARD_PROTOCOL_T1: "T=1", scard.SCARD_PROTOCOL_RAW: "RAW"}

_ERROR_NAMES = {
    getattr(scard, name) & 0xFFFFFFFF: name
    for name in dir(scard)
    if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_")) and isinstance(getattr(scard, name), int)
}
GONE_STATES = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE
# After pcscd restarts, a client's old context answers one of these for good.
DEAD_CONTEXT = (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_INVALID_HANDLE, scard.SCARD_E_SERVICE_STOPPED)


def error_name(hr: int) -> str:
    """``SCARD_E_NO_SERVICE`` for 0x8010001D, else the hex code."""
    return _ERROR_NAMES.get(hr & 0xFFFFFFFF, f"0x{hr & 0xFFFFFFFF:08X}")


def map_error(hr: int, action: str, reader: str = "") -> DeviceError:
    """The typed error for a PC/SC result code; ``action`` says what was being done (one line)."""
    code = hr & 0xFFFFFFFF
    name = error_name(code)
    where = f" '{reader}'" if reader else ""
    if code in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED):
        return BackendUnavailable(f"{action}: PC/SC service not available ({name}), pcscd is not running; "
                                  f"{START_HINT}")
    if code == scard.SCARD_E_NO_READERS_AVAILABLE:
        return NoReader(f"{action}: no PC/SC reader is connected ({name})")
    if code in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
        return DeviceGone(f"{action}: reader{where} is gone ({name}); reconnect it and open the device again")
    if code == scard.SCARD_E_INVALID_HANDLE:
        return DeviceGone(f"{action}: the connection to reader{where} is no longer valid ({name}; "
                          "pcscd restarted?); open the device again")
    if code == scard.SCARD_E_NO_SMARTCARD:
        return NoCard(f"{action}: no card in reader{where} ({name})")
    if code == scard.SCARD_W_REMOVED_CARD:
        return CardRemoved(f"{action}: the card was removed from reader{where} ({name})")
    if code in (scard.SCARD_W_RESET_CARD, scard.SCARD_W_UNPOWERED_CARD):
        return CardRemoved(f"{action}: another program reset or powered down the card in{where} ({name}); "
                           "its session is lost, power it on again")
    if code == scard.SCARD_E_SHARING_VIOLATION:
        return DeviceBusy(f"{action}: reader{where} is held exclusively by another program ({name})")
    if code == scard.SCARD_E_TIMEOUT:
        return DeviceTimeout(f"{action}: reader{where} timed out ({name})")
    if code in (scard.SCARD_W_UNRESPONSIVE_CARD, scard.SCARD_W_UNSUPPORTED_CARD, scard.SCARD_E_PROTO_MISMATCH,
                scard.SCARD_E_INSUFFICIENT_BUFFER, scard.SCARD_E_INVALID_ATR):
        return ProtocolError(f"{action}: reader{where} could not talk to the card ({name})")
    return DeviceError(f"{action} on reader{where} failed: {scard.SCardGetErrorMessage(hr).strip()} ({name})")


def apdu_label(apdu: bytes | list[int]) -> str:
    shown = redact_apdu(bytes(apdu))
    return shown if len(shown) <= 44 else f"{shown[:44]}… ({len(apdu)} bytes)"


def establish_context() -> int:
    """A PC/SC context; :class:`BackendUnavailable` (with the start command) when pcscd is not running."""
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != OK:
        raise map_error(hr, "connecting to pcscd")
    return context


def service_answers() -> bool:
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr == OK:
        scard.SCardReleaseContext(context)
    return hr == OK


def release_context(context: int) -> None:
    scard.SCardReleaseContext(context)


class ConnectionPool:
    """PC/SC contexts of closed readers, kept per process by reader name (and share mode) for the next open.

    Only contexts: a parked card handle would hold the reader against other programs (an exclusive
    connect fails while any handle is open). A context pcscd no longer knows is revived on first use;
    all are released at interpreter exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parked: dict[tuple[str, int], list[int]] = {}
        atexit.register(self.clear)

    def park(self, reader: str, share: int, context: int) -> None:
        with self._lock:
            self._parked.setdefault((reader, share), []).append(context)

    def take(self, reader: str, share: int) -> int | None:
        with self._lock:
            parked = self._parked.get((reader, share))
            return parked.pop() if parked else None

    def clear(self) -> None:
        with self._lock:
            parked, self._parked = self._parked, {}
        for contexts in parked.values():
            for context in contexts:
                scard.SCardReleaseContext(context)


POOL = ConnectionPool()


def list_readers(context: int) -> list[str]:
    hr, readers = scard.SCardListReaders(context, [])
    if hr == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hr != OK:
        raise map_error(hr, "listing PC/SC readers")
    return list(readers)


def wait_until_listed(wanted: Callable[[str], bool], timeout: float, interval: float = 0.1) -> bool:
    """True once pcscd lists a reader ``wanted`` accepts, False after ``timeout`` seconds. pcscd answers before
    it has brought up the readers of its configuration (over 10 s on a loaded two-core machine), so a caller that
    just started it waits here; pcscd not answering yet counts as not listed yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            context = establish_context()
        except DeviceError:
            context = None
        if context is not None:
            try:
                if any(wanted(name) for name in list_readers(context)):
                    return True
            except DeviceError:
                pass
            finally:
                release_context(context)
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def reader_states(context: int, readers: list[str]) -> list[tuple[str, int, bytes]]:
    """Current (name, event state, ATR) of each reader, without waiting."""
    if not readers:
        return []
    hr, states = scard.SCardGetStatusChange(context, 0, [(r, scard.SCARD_STATE_UNAWARE) for r in readers])
    if hr != OK:
        raise map_error(hr, "reading reader states")
    return [(name, state, bytes(atr)) for name, state, atr in states]


def describe_state(state: int) -> tuple[str, str]:
    """(card_state, problem) for :class:`DeviceInfo` from an SCARD_STATE_* bit set."""
    if state & GONE_STATES:
        return "", "reader unavailable"
    card = "present" if state & scard.SCARD_STATE_PRESENT else "absent" if state & scard.SCARD_STATE_EMPTY else ""
    if state & scard.SCARD_STATE_MUTE:
        return card, "card is mute (no ATR)"
    if state & scard.SCARD_STATE_EXCLUSIVE:
        return card, "held exclusively by another program"
    return card, ""

