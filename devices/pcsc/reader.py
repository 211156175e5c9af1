"""PC/SC readers through pcscd: ``pcsc:<reader name or pattern>[?options]``.

Which reader a name means is :mod:`devices.pcsc.names` (exact name, glob, name without pcscd's
plug-order index, substring); the C calls and typed errors are :mod:`devices.pcsc.scard`.

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

import contextlib
import dataclasses
import time

from smartcard import scard

from devices.base import (
    CardRemoved,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    NoCard,
    ProtocolError,
    Reader,
    ReaderCapabilities,
)
from harness.iso.apdu import ApduError, CommandApdu

from .capabilities import Connection, ProbeLost, detect
from .names import select_reader
from .scard import (
    BOTH_PROTOCOLS,
    DEAD_CONTEXT,
    GONE_STATES,
    OK,
    POOL,
    PROTOCOL_NAMES,
    REMOVAL_GRACE,
    apdu_label,
    error_name,
    establish_context,
    list_readers,
    map_error,
    release_context,
    service_answers,
)
from .uri import (  # noqa: F401 - re-exported: the options were defined here first
    READER_OPTION_ROWS,
    READER_OPTIONS,
    URI_OPTIONS,
    check_pcsc_uri,
    parse_pcsc_uri,
    reader_options,
)

MAX_GET_RESPONSE = 300  # 64 KiB in 256-byte pieces, with room to spare; a card that chains on is broken


POWER_UP_RETRIES = 5  # bounded: 5 × 0.2 s
POWER_UP_PAUSE = 0.2

class PcscReader(Reader):
    """One PC/SC reader. Not thread-safe: one thread drives it, as with a real terminal."""

    handles_status_words = True  # get_response / resend_6c

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
        self._auto: list[tuple[bytes, bytes]] = []

    # -- state ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._hcard is not None

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def auto_exchanges(self) -> list[tuple[bytes, bytes]]:
        return self._auto

    def set_status_word_handling(self, *, get_response: bool, resend_6c: bool) -> None:
        self.get_response, self.resend_6c = get_response, resend_6c

    @property
    def protocol(self) -> str:
        """The active protocol of the connection (``T=0``, ``T=1``; contactless cards show T=1)."""
        return PROTOCOL_NAMES.get(self._protocol, "") if self._hcard is not None else ""

    def _ctx(self) -> int:
        if self._context is None:
            raise DeviceError(f"{self.uri}: the reader is closed")
        return self._context

    def _error(self, hr: int, action: str) -> DeviceError:
        if hr in DEAD_CONTEXT and service_answers():
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
            if hr in DEAD_CONTEXT and not revived and self._revive_context():
                revived, current = True, scard.SCARD_STATE_UNAWARE
                continue
            if hr != OK:
                raise self._error(hr, "waiting for a card")
            state = states[0][1]
            if state & GONE_STATES:
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
            if hr in (scard.SCARD_W_REMOVED_CARD, *DEAD_CONTEXT):
                self.power_off()
            elif hr != OK:
                raise self._error(hr, "resetting the card")
            else:
                self._protocol = protocol
        if self._hcard is None:
            hr, hcard, protocol = scard.SCardConnect(self._ctx(), self.name, self._share, BOTH_PROTOCOLS)
            if hr in DEAD_CONTEXT and self._revive_context():
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
                  scard.SCARD_W_RESET_CARD, *DEAD_CONTEXT):
            return  # the connection is gone either way
        raise self._error(hr, "disconnecting from the card")

    def reconnect(self, timeout: float) -> bytes:
        """After a removal: drop the stale connection, wait for a card and power it on; returns the ATR."""
        with contextlib.suppress(DeviceError):
            self.power_off()
        self.wait_for_card(timeout)
        return self.power_on()

    def release(self) -> None:
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
            return CardRemoved(f"card removed from '{self.name}' during {apdu_label(apdu)}")
        return ProtocolError(f"'{self.name}': {what} to {apdu_label(apdu)}")

    def _exchange(self, apdu: list[int]) -> list[int]:
        hcard = self._hcard
        if hcard is None:
            raise DeviceError(f"{self.uri}: transmit before power_on")
        hr, response = scard.SCardTransmit(hcard, self._protocol, apdu)
        if hr != OK:
            if hr in (scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_F_COMM_ERROR):
                raise self._card_vanished(apdu, f"transmission failed ({error_name(hr)})")
            raise self._error(hr, f"sending {apdu_label(apdu)}")
        if len(response) < 2:
            raise self._card_vanished(apdu, f"{len(response)}-byte answer without a status word")
        return response

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU; ``61xx`` and ``6Cxx`` are handled here unless switched off (see the module doc)."""
        self._auto = []
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
        self._auto.append((fixed, bytes(again)))
        return fixed, again

    def _get_response(self, cla: int, response: list[int]) -> bytes:
        """``61xx``: GET RESPONSE (``00 C0 00 00 xx``, logical channel kept) until the card stops chaining."""
        data = bytearray(response[:-2])
        channel = cla & 0x03 if cla < 0x80 else 0
        for _ in range(MAX_GET_RESPONSE):
            command = bytes((channel, 0xC0, 0x00, 0x00, response[-1]))
            response = self._exchange(list(command))
            if response[-2] == 0x6C and self.resend_6c:
                self._auto.append((command, bytes(response)))
                command = command[:4] + bytes((response[-1],))
                response = self._exchange(list(command))
            self._auto.append((command, bytes(response)))
            data += bytes(response[:-2])
            if response[-2] != 0x61:
                return bytes(data) + bytes(response[-2:])
        raise ProtocolError(f"'{self.name}': the card still answered 61xx after {MAX_GET_RESPONSE} GET RESPONSEs")

    # -- capabilities --------------------------------------------------------------
    @property
    def capabilities(self) -> ReaderCapabilities:
        """What the reader carries (:mod:`devices.pcsc.capabilities`); detected at power-on, kept for that ATR."""
        if self._caps is None or self._caps_atr != self._atr:
            self._caps = self._detect_capabilities()
            self._caps_atr = self._atr
        added = self.added_details  # a bridge's facts (via=vpcd, its port), after the backend's own
        if added and any(self._caps.details.get(k) != v for k, v in added.items()):
            self._caps = dataclasses.replace(self._caps, details={**self._caps.details, **added})
        return self._caps

    def _detect_capabilities(self) -> ReaderCapabilities:
        details = {"backend": "pcsc", "reader": self.name, "protocol": self.protocol,
                   "get_response": "on" if self.get_response else "off",
                   "resend_6c": "on" if self.resend_6c else "off"}
        link = Connection(self.name, self._hcard, self._protocol, self.protocol, self._atr)
        try:
            return detect(link, details, self._extended_forced)
        except ProbeLost as lost:
            raise self._error(lost.hr, "probing for extended APDUs") from None

    def describe(self) -> str:
        return f"{self.uri} (PC/SC reader '{self.name}')"


def open_pcsc(uri: str) -> PcscReader:
    """``pcsc:<name or pattern>``: the one reader it names (:mod:`devices.pcsc.names`); ``pcsc:`` alone is
    the first reader pcscd lists."""
    pattern, kwargs = check_pcsc_uri(uri)
    context = establish_context()
    try:
        name = select_reader(pattern, list_readers(context))
    finally:
        release_context(context)
    return PcscReader(name, uri=uri, **kwargs)  # type: ignore[arg-type]
