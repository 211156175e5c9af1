"""PC/SC readers through pcscd: ``pcsc:<reader-name substring>[?options]``.

Uses pyscard's low-level :mod:`smartcard.scard` (one C call per operation, no
observer threads) so that the harness adds almost nothing to a raw
``SCardTransmit``. Every PC/SC error becomes one of the typed errors of
:mod:`devices.base` with a one-line message; PIN bytes never appear in them.

URI options (``pcsc:ACS?get_response=0&resend_6c=0``):

- ``get_response`` (default 1): answer ``61xx`` with GET RESPONSE until the data is complete.
- ``resend_6c`` (default 1): answer ``6Cxx`` by re-sending the command with Le = xx.
  Switch both off to see how a reader (or its driver) handles them by itself.
- ``extended`` (``auto`` default, ``1``, ``0``): extended-APDU capability, see :meth:`PcscReader.capabilities`.
- ``reset`` (``cold`` default, ``warm``, ``none``): how :meth:`PcscReader.power_on` makes the card's
  volatile state fresh after connecting (pcscd may hand over a card another program left powered).
- ``share`` (``shared`` default, ``exclusive``).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import time
from collections.abc import Mapping
from urllib.parse import unquote

from smartcard import scard

from devices.base import (
    BackendUnavailable,
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceInfo,
    DeviceTimeout,
    NoCard,
    NoReader,
    ProtocolError,
    Reader,
    ReaderCapabilities,
)
from devices.uri import TERMINAL_OPTION, DeviceUri, Option, options_named
from devices.uri import parse_flag as parse_flag  # the vpcd bridge parses its flags with it
from harness.iso.apdu import ApduError, CommandApdu
from harness.iso.atr import AtrError, parse_atr
from harness.iso.redact import redact_apdu

START_HINT = "start it with `pcscd --foreground &` (not installed? apt-get install pcscd, or scripts/setup.sh)"

OK = scard.SCARD_S_SUCCESS
BOTH_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
PROTOCOL_NAMES = {scard.SCARD_PROTOCOL_T0: "T=0", scard.SCARD_PROTOCOL_T1: "T=1", scard.SCARD_PROTOCOL_RAW: "RAW"}
SHORT_APDU_MAX = 261  # 4 header + 1 Lc + 255 data + 1 Le: a reader limited to this carries short APDUs only
MAX_GET_RESPONSE = 300  # 64 KiB in 256-byte pieces, with room to spare; a card that chains on is broken
REMOVAL_GRACE = 1.5  # pcscd polls presence every 0.4 s: time to let it notice a card that vanished mid-APDU
FEATURE_REQUEST = scard.SCARD_CTL_CODE(3400)  # CM_IOCTL_GET_FEATURE_REQUEST (PC/SC part 10)
FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT, FEATURE_GET_TLV_PROPERTIES = 0x06, 0x07, 0x12
PROPERTY_MAX_APDU_DATA_SIZE = 0x0A  # dwMaxAPDUDataSize: 0 = short APDUs only
# Extended-Le READ BINARY of 1 byte: read-only, harmless whatever is selected; a path that cannot carry
# extended APDUs fails the transmit or gets 6700 from the card.
EXTENDED_PROBE = [0x00, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x01]

_ERROR_NAMES = {
    getattr(scard, name) & 0xFFFFFFFF: name
    for name in dir(scard)
    if name.startswith(("SCARD_E_", "SCARD_W_", "SCARD_F_")) and isinstance(getattr(scard, name), int)
}
_GONE_STATES = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE
# After pcscd restarts, a client's old context answers one of these for good.
_DEAD_CONTEXT = (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_INVALID_HANDLE, scard.SCARD_E_SERVICE_STOPPED)


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


def _apdu_label(apdu: bytes | list[int]) -> str:
    shown = redact_apdu(bytes(apdu))
    return shown if len(shown) <= 44 else f"{shown[:44]}… ({len(apdu)} bytes)"


def establish_context() -> int:
    """A PC/SC context; :class:`BackendUnavailable` (with the start command) when pcscd is not running."""
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != OK:
        raise map_error(hr, "connecting to pcscd")
    return context


def _service_answers() -> bool:
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
    if state & _GONE_STATES:
        return "", "reader unavailable"
    card = "present" if state & scard.SCARD_STATE_PRESENT else "absent" if state & scard.SCARD_STATE_EMPTY else ""
    if state & scard.SCARD_STATE_MUTE:
        return card, "card is mute (no ATR)"
    if state & scard.SCARD_STATE_EXCLUSIVE:
        return card, "held exclusively by another program"
    return card, ""


def discover() -> list[DeviceInfo]:
    """Every reader pcscd sees, with card state and ATR; BackendUnavailable when pcscd is not running."""
    context = establish_context()
    try:
        found = []
        for name, state, atr in reader_states(context, list_readers(context)):
            card_state, problem = describe_state(state)
            found.append(DeviceInfo(f"pcsc:{name}", f"PC/SC reader {name}", card_state,
                                    atr if card_state == "present" else b"", problem))
        return found
    finally:
        release_context(context)


def select_reader(pattern: str, readers: list[str]) -> str:
    """The one reader whose name contains ``pattern`` (case-insensitive; an exact name always wins)."""
    listing = "; ".join(f"'{r}'" for r in readers)
    if not readers:
        raise NoReader("no PC/SC reader is connected (pcscd lists none)")
    if not pattern:
        return readers[0]
    wanted = pattern.lower()
    exact = [r for r in readers if r.lower() == wanted]
    if exact:
        return exact[0]
    matches = [r for r in readers if wanted in r.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoReader(f"no PC/SC reader matches '{pattern}'; readers: {listing}")
    raise NoReader(f"'{pattern}' matches {len(matches)} PC/SC readers, name one: {listing}")


def parse_pcsc_uri(uri: str) -> tuple[str, dict[str, str]]:
    """``pcsc:Virtual%20PCD?get_response=0`` → (``"Virtual PCD"``, ``{"get_response": "0"}``)."""
    parsed = DeviceUri.parse(uri if ":" in uri else f"pcsc:{uri}")
    return unquote(parsed.body).strip(), dict(parsed.options)


READER_OPTION_ROWS = (
    Option("get_response"),
    Option("resend_6c"),
    Option("extended", "auto_flag"),
    Option("reset", "choice", choices=("cold", "warm", "none")),
    Option("share", "choice", choices=("shared", "exclusive")),
)
READER_OPTIONS = tuple(row.name for row in READER_OPTION_ROWS)
URI_OPTIONS = (*READER_OPTION_ROWS, TERMINAL_OPTION)


def reader_options(options: Mapping[str, str], uri: str, *, strict: bool = True) -> dict[str, object]:
    """Constructor keywords of :class:`PcscReader` from URI options; ``strict`` rejects unknown keys."""
    rows = options_named(READER_OPTION_ROWS)
    parsed = DeviceUri(uri, "pcsc", "", {k: v for k, v in options.items() if strict or k in rows})
    values = parsed.typed(rows)
    kwargs: dict[str, object] = {key: values[key] for key in ("get_response", "resend_6c") if key in values}
    if values.get("extended") is not None:
        kwargs["extended"] = values["extended"]
    kwargs["reset"] = values.get("reset", "cold")
    kwargs["exclusive"] = values.get("share", "shared") == "exclusive"
    return kwargs


def _le_properties(raw: list[int]) -> dict[int, int]:
    """PC/SC part 10 TLV properties: tag, length, little-endian value."""
    found, position = {}, 0
    while position + 2 <= len(raw):
        tag, length = raw[position], raw[position + 1]
        value = raw[position + 2 : position + 2 + length]
        found[tag] = int.from_bytes(bytes(value), "little")
        position += 2 + length
    return found


POWER_UP_RETRIES = 5  # bounded: 5 × 0.2 s
POWER_UP_PAUSE = 0.2

class PcscReader(Reader):
    """One PC/SC reader. Not thread-safe: one thread drives it, as with a real terminal."""

    def __init__(self, reader_name: str, *, uri: str = "", get_response: bool = True, resend_6c: bool = True,
                 extended: bool | None = None, reset: str = "cold", exclusive: bool = False,
                 pooled: bool = True) -> None:
        self.name = reader_name
        self.uri = uri or f"pcsc:{reader_name}"
        self.get_response = get_response
        self.resend_6c = resend_6c
        self.reset = reset
        self._extended_forced = extended
        self._share = scard.SCARD_SHARE_EXCLUSIVE if exclusive else scard.SCARD_SHARE_SHARED
        self.pooled = pooled  # close() parks the context (and a reset handle) in POOL for the next open
        parked = POOL.take(reader_name, self._share) if pooled else None
        self._context: int | None = parked if parked is not None else establish_context()
        self._hcard: int | None = None
        self._protocol = 0
        self._atr = b""
        self._caps: ReaderCapabilities | None = None
        self._caps_atr: bytes | None = None
        # (command, response) pairs the reader sent on its own (GET RESPONSE, 6C re-send) in the last transmit.
        self.auto_exchanges: list[tuple[bytes, bytes]] = []

    # -- state ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._hcard is not None

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def protocol(self) -> str:
        """The active protocol of the connection (``T=0``, ``T=1``; contactless cards show T=1)."""
        return PROTOCOL_NAMES.get(self._protocol, "") if self._hcard is not None else ""

    def _ctx(self) -> int:
        if self._context is None:
            raise DeviceError(f"{self.uri}: the reader is closed")
        return self._context

    def _error(self, hr: int, action: str) -> DeviceError:
        if hr in _DEAD_CONTEXT and _service_answers():
            return DeviceGone(f"{action}: pcscd restarted, the connection to reader '{self.name}' is lost "
                              f"({error_name(hr)}); reconnect the card or open the device again")
        return map_error(hr, action, self.name)

    def _revive_context(self) -> bool:
        """A context outlives no pcscd restart: take a new one if pcscd answers (the card connection is lost)."""
        hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hr != OK:
            return False
        old, self._context, self._hcard = self._context, context, None
        if old is not None:
            scard.SCardReleaseContext(old)
        return True

    def card_state(self) -> int:
        """The reader's SCARD_STATE_* bits right now."""
        hr, states = scard.SCardGetStatusChange(self._ctx(), 0, [(self.name, scard.SCARD_STATE_UNAWARE)])
        if hr != OK:
            raise self._error(hr, "reading the reader state")
        return states[0][1]

    def _wait_state(self, present: bool, timeout: float) -> bool:
        """Wait (in SCardGetStatusChange, never polling) until a card is / is not present; False on timeout."""
        deadline = time.monotonic() + max(0.0, timeout)
        current, revived = scard.SCARD_STATE_UNAWARE, False
        while True:
            remaining = 0 if current == scard.SCARD_STATE_UNAWARE else max(0.0, deadline - time.monotonic())
            hr, states = scard.SCardGetStatusChange(self._ctx(), int(remaining * 1000), [(self.name, current)])
            if hr == scard.SCARD_E_TIMEOUT:
                return False
            if hr in _DEAD_CONTEXT and not revived and self._revive_context():
                revived, current = True, scard.SCARD_STATE_UNAWARE
                continue
            if hr != OK:
                raise self._error(hr, "waiting for a card")
            state = states[0][1]
            if state & _GONE_STATES:
                raise DeviceGone(f"reader '{self.name}' is gone (unplugged, or pcscd no longer lists it)")
            if bool(state & scard.SCARD_STATE_PRESENT) == present:
                return True
            if current != scard.SCARD_STATE_UNAWARE and time.monotonic() >= deadline:
                return False
            current = state & ~scard.SCARD_STATE_CHANGED

    def wait_for_card(self, timeout: float) -> None:
        if not self._wait_state(True, timeout):
            raise NoCard(f"no card in reader '{self.name}' within {timeout:g} s")

    def wait_for_removal(self, timeout: float) -> None:
        """Return once the reader reports its slot empty; :class:`DeviceTimeout` after ``timeout`` s."""
        if not self._wait_state(False, timeout):
            raise DeviceTimeout(f"the card is still in reader '{self.name}' after {timeout:g} s")

    # -- power ---------------------------------------------------------------------
    def power_on(self) -> bytes:
        """Connect (shared, T=0 or T=1), reset per ``reset`` and return the ATR; the protocol is recorded.

        Already connected: reset again (``cold`` or ``warm``; ``none`` means warm here). A connection the
        card left (removed, pcscd restarted) is dropped and made anew.
        """
        dispositions = {"cold": scard.SCARD_UNPOWER_CARD, "warm": scard.SCARD_RESET_CARD}
        if self._hcard is not None:
            reset = dispositions.get(self.reset, scard.SCARD_RESET_CARD)
            hr, protocol = scard.SCardReconnect(self._hcard, self._share, BOTH_PROTOCOLS, reset)
            if hr in (scard.SCARD_W_REMOVED_CARD, *_DEAD_CONTEXT):
                self.power_off()
            elif hr != OK:
                raise self._error(hr, "resetting the card")
            else:
                self._protocol = protocol
        if self._hcard is None:
            hr, hcard, protocol = scard.SCardConnect(self._ctx(), self.name, self._share, BOTH_PROTOCOLS)
            if hr in _DEAD_CONTEXT and self._revive_context():
                hr, hcard, protocol = scard.SCardConnect(self._ctx(), self.name, self._share, BOTH_PROTOCOLS)
            # pcscd answers UNPOWERED while its own power-up of a just-(re)inserted card is under way
            for _ in range(POWER_UP_RETRIES):
                if hr != scard.SCARD_W_UNPOWERED_CARD:
                    break
                time.sleep(POWER_UP_PAUSE)
                hr, hcard, protocol = scard.SCardConnect(self._ctx(), self.name, self._share, BOTH_PROTOCOLS)
            if hr != OK:
                raise self._error(hr, "connecting to the card")
            self._hcard, self._protocol = hcard, protocol
            reset = dispositions.get(self.reset)
            if reset is not None:  # pcscd may hand over a card another program left powered and used
                hr, protocol = scard.SCardReconnect(hcard, self._share, BOTH_PROTOCOLS, reset)
                if hr != OK:
                    raise self._error(hr, "resetting the card")
                self._protocol = protocol
        hr, _name, _state, protocol, atr = scard.SCardStatus(self._hcard)
        if hr != OK:
            raise self._error(hr, "reading the ATR")
        self._protocol = protocol or self._protocol
        self._atr = bytes(atr)
        _ = self.capabilities  # detect now for a new ATR, before a test arms a fault (a probe is an APDU)
        return self._atr

    def power_off(self, disposition: str = "unpower") -> None:
        """Disconnect with SCARD_UNPOWER_CARD (``unpower``), SCARD_RESET_CARD (``reset``) or SCARD_LEAVE_CARD."""
        hcard, self._hcard = self._hcard, None
        if hcard is None:
            return
        how = {"unpower": scard.SCARD_UNPOWER_CARD, "reset": scard.SCARD_RESET_CARD,
               "leave": scard.SCARD_LEAVE_CARD}[disposition]
        hr = scard.SCardDisconnect(hcard, how)
        if hr in (OK, scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_E_READER_UNAVAILABLE,
                  scard.SCARD_W_RESET_CARD, *_DEAD_CONTEXT):
            return  # the connection is gone either way
        raise self._error(hr, "disconnecting from the card")

    def reconnect(self, timeout: float) -> bytes:
        """After a removal: drop the stale connection, wait for a card and power it on; returns the ATR."""
        with contextlib.suppress(DeviceError):
            self.power_off()
        self.wait_for_card(timeout)
        return self.power_on()

    def close(self) -> None:
        """Release the reader: the card is disconnected (unpowered: its security state is gone) and the
        context parked in :data:`POOL`, so the next open of this reader needs no new one."""
        with contextlib.suppress(DeviceError):
            self.power_off()
        context, self._context = self._context, None
        if context is None:
            return
        if self.pooled and scard.SCardIsValidContext(context) == OK:
            POOL.park(self.name, self._share, context)
            return
        release_context(context)

    # -- transmit ------------------------------------------------------------------
    def _card_vanished(self, apdu: list[int] | bytes, what: str) -> DeviceError:
        """The reader gave no proper answer: a card pulled mid-APDU, or a broken exchange.

        vpcd answers an APDU its card never answered with zero bytes and success; real drivers return
        an error. Either way pcscd learns of a removal on its next presence poll, so wait for that.
        """
        try:
            gone = self._wait_state(False, REMOVAL_GRACE)
        except DeviceError as exc:
            return exc
        if gone:
            return CardRemoved(f"card removed from '{self.name}' during {_apdu_label(apdu)}")
        return ProtocolError(f"'{self.name}': {what} to {_apdu_label(apdu)}")

    def _exchange(self, apdu: list[int]) -> list[int]:
        hcard = self._hcard
        if hcard is None:
            raise DeviceError(f"{self.uri}: transmit before power_on")
        hr, response = scard.SCardTransmit(hcard, self._protocol, apdu)
        if hr != OK:
            if hr in (scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_F_COMM_ERROR):
                raise self._card_vanished(apdu, f"transmission failed ({error_name(hr)})")
            raise self._error(hr, f"sending {_apdu_label(apdu)}")
        if len(response) < 2:
            raise self._card_vanished(apdu, f"{len(response)}-byte answer without a status word")
        return response

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU; ``61xx`` and ``6Cxx`` are handled here unless switched off (see the module doc)."""
        self.auto_exchanges = []
        if len(apdu) < 4:  # vpcd would take one byte for a control message and never answer
            raise DeviceError(f"{self.uri}: a {len(apdu)}-byte command is no APDU (4-byte header); not sent")
        response = self._exchange(list(apdu))
        sw1 = response[-2]
        if sw1 == 0x6C and self.resend_6c:
            apdu, response = self._resend(bytes(apdu), response)
            sw1 = response[-2]
        if sw1 == 0x61 and self.get_response:
            return self._get_response(apdu[0], response)
        return bytes(response)

    def _resend(self, apdu: bytes, response: list[int]) -> tuple[bytes, list[int]]:
        """``6Cxx``: the same command again with Le = xx (once)."""
        try:
            cmd = CommandApdu.parse(apdu)
            fixed = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, le=response[-1] or 256).to_bytes()
        except ApduError:
            return apdu, response
        again = self._exchange(list(fixed))
        self.auto_exchanges.append((fixed, bytes(again)))
        return fixed, again

    def _get_response(self, cla: int, response: list[int]) -> bytes:
        """``61xx``: GET RESPONSE (``00 C0 00 00 xx``, logical channel kept) until the card stops chaining."""
        data = bytearray(response[:-2])
        channel = cla & 0x03 if cla < 0x80 else 0
        for _ in range(MAX_GET_RESPONSE):
            command = bytes((channel, 0xC0, 0x00, 0x00, response[-1]))
            response = self._exchange(list(command))
            if response[-2] == 0x6C and self.resend_6c:
                self.auto_exchanges.append((command, bytes(response)))
                command = command[:4] + bytes((response[-1],))
                response = self._exchange(list(command))
            self.auto_exchanges.append((command, bytes(response)))
            data += bytes(response[:-2])
            if response[-2] != 0x61:
                return bytes(data) + bytes(response[-2:])
        raise ProtocolError(f"'{self.name}': the card still answered 61xx after {MAX_GET_RESPONSE} GET RESPONSEs")

    # -- capabilities --------------------------------------------------------------
    @property
    def capabilities(self) -> ReaderCapabilities:
        """What the reader carries. Extended APDUs, first source that answers:

        1. the URI option ``extended=1/0``;
        2. the reader's own report: PC/SC part 10 ``dwMaxAPDUDataSize`` (FEATURE_GET_TLV_PROPERTIES), then
           ``SCARD_ATTR_MAXINPUT`` (CCID readers give one of them; vpcd gives neither);
        3. the card's ATR: card capabilities in the historical bytes (extended Lc/Le bit);
        4. a probe: an extended-Le READ BINARY of one byte (read-only) must come back with a status word
           other than 6700.
        ``details["extended_source"]`` says which one decided. Detected at power-on and kept for that ATR.
        """
        if self._caps is None or self._caps_atr != self._atr:
            self._caps = self._detect_capabilities()
            self._caps_atr = self._atr
        return self._caps

    def _control(self, code: int) -> list[int] | None:
        hr, response = scard.SCardControl(self._hcard, code, [])
        return list(response) if hr == OK else None

    def _features(self) -> dict[int, int]:
        raw = self._control(FEATURE_REQUEST) or []
        features, position = {}, 0
        while position + 6 <= len(raw):
            features[raw[position]] = int.from_bytes(bytes(raw[position + 2 : position + 6]), "big")
            position += 2 + raw[position + 1]
        return features

    def _detect_capabilities(self) -> ReaderCapabilities:
        details = {"backend": "pcsc", "reader": self.name, "protocol": self.protocol,
                   "get_response": "on" if self.get_response else "off",
                   "resend_6c": "on" if self.resend_6c else "off"}
        try:
            atr = parse_atr(self._atr) if self._atr else None
        except AtrError as exc:
            atr, details["atr_problem"] = None, str(exc)
        extended, limit, source = self._extended_forced, None, "URI option"
        features: dict[int, int] = {}
        if self._hcard is not None:
            features = self._features()
            if extended is None and FEATURE_GET_TLV_PROPERTIES in features:
                properties = _le_properties(self._control(features[FEATURE_GET_TLV_PROPERTIES]) or [])
                if PROPERTY_MAX_APDU_DATA_SIZE in properties:
                    limit = properties[PROPERTY_MAX_APDU_DATA_SIZE]
                    extended, source = limit > SHORT_APDU_MAX, f"reader dwMaxAPDUDataSize={limit}"
            if extended is None:
                hr, value = scard.SCardGetAttrib(self._hcard, scard.SCARD_ATTR_MAXINPUT)
                if hr == OK and value:
                    limit = int.from_bytes(bytes(value), "little")
                    extended, source = limit > SHORT_APDU_MAX, f"reader SCARD_ATTR_MAXINPUT={limit}"
        if extended is None and atr is not None and atr.extended_apdu is not None:
            extended, source = atr.extended_apdu, "ATR card capabilities"
        if extended is None and self._hcard is not None:
            extended, source = self._probe_extended()
        if extended is None:
            extended, source = False, "unknown until the card is powered"
        details["extended_source"] = source
        if limit is not None and limit <= SHORT_APDU_MAX:
            limit = None
        return ReaderCapabilities(
            extended_apdu=bool(extended),
            max_command_data=min(limit or 65535, 65535) if extended else 255,
            max_response=min(limit or 65536, 65536) if extended else 256,
            contactless=bool(atr is not None and atr.contactless is not None),
            pin_pad=bool({FEATURE_VERIFY_PIN_DIRECT, FEATURE_MODIFY_PIN_DIRECT} & set(features)),
            details=details,
        )

    def _probe_extended(self) -> tuple[bool, str]:
        hr, response = scard.SCardTransmit(self._hcard, self._protocol, EXTENDED_PROBE)
        if hr != OK:
            if hr in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SERVICE, scard.SCARD_E_READER_UNAVAILABLE):
                raise self._error(hr, "probing for extended APDUs")
            return False, f"probe: the reader refused an extended APDU ({error_name(hr)})"
        if len(response) < 2:
            return False, "probe: no status word to an extended APDU"
        sw = (response[-2] << 8) | response[-1]
        return sw != 0x6700, f"probe: extended-Le READ BINARY answered {sw:04X}"

    def describe(self) -> str:
        return f"{self.uri} (PC/SC reader '{self.name}')"


def check_pcsc_uri(uri: str) -> tuple[str, dict[str, object]]:
    """(reader pattern, :class:`PcscReader` keywords) of a ``pcsc:`` URI; refuses unknown options."""
    pattern, options = parse_pcsc_uri(uri)
    DeviceUri.parse(uri).typed(URI_OPTIONS)
    return pattern, reader_options({k: v for k, v in options.items() if k != TERMINAL_OPTION.name}, uri)


def open_pcsc(uri: str) -> PcscReader:
    """``pcsc:<substring>``: the one reader whose name contains it; ``pcsc:`` alone is the first reader."""
    pattern, kwargs = check_pcsc_uri(uri)
    context = establish_context()
    try:
        name = select_reader(pattern, list_readers(context))
    finally:
        release_context(context)
    return PcscReader(name, uri=uri, **kwargs)  # type: ignore[arg-type]
