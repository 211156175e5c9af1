"""Keywords for reader transport requirements: ATR, APDU sizes, GET RESPONSE and 6Cxx, removal seen, reconnection.

They work on any reader; what needs a PC/SC reader (``pcsc:…`` or ``virtual:…?via=pcsc``) says so. Moving
the card and other faults are the fault keywords' (``harness.keywords.faults``); these check what the
reader reports afterwards.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices.base import CardRemoved, DeviceError, NoCard, Reader
from harness.iso import tlv
from harness.iso.apdu import ResponseApdu, parse_hex, sw_hex, to_hex
from harness.iso.atr import Atr, parse_atr
from harness.iso.redact import redact_apdu
from harness.pin_guard import refuse_raw_secret

from .context import LibraryComponent

GET_RESPONSE_INS = 0xC0


def _flag(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in ("on", "1", "true", "yes"):
        return True
    if text in ("off", "0", "false", "no"):
        return False
    raise ValueError(f"expected on or off, got {value!r}")


class TransportKeywords(LibraryComponent):
    """Reader transport requirements (the ``transport`` suites)."""

    # -- plumbing ----------------------------------------------------------------------------
    def _pcsc_reader(self) -> Reader:
        """The open reader when it is a PC/SC reader (it has the 61xx/6Cxx switches), else fail."""
        reader = self.ctx.require_reader()
        if not reader.handles_status_words:
            raise DeviceError(f"{self.ctx.device_name} is not a PC/SC reader (pcsc:… or virtual:…?via=pcsc)")
        return reader

    def _auto_exchanges(self) -> list[tuple[bytes, bytes]]:
        return list(self.ctx.require_reader().auto_exchanges)

    def _record_auto_exchanges(self) -> None:
        """Put what the reader sent on its own (GET RESPONSE, re-sent commands) into the trace, before the
        final response the channel recorded, so the log shows the exchange as it happened on the wire."""
        auto = self._auto_exchanges()
        entries = self.ctx.trace.entries
        if not auto or not entries:
            return
        position = len(entries) - 1
        for command, response in auto:
            entries[position:position] = self.ctx.trace.reader_exchange(command, response)
            position += 2

    def _atr(self) -> Atr:
        if not self.ctx.atr:
            raise DeviceError("no ATR yet: open the device (or power the card on) first")
        return parse_atr(self.ctx.atr)

    # -- ATR and protocol ------------------------------------------------------------------
    @keyword("Read ATR")
    def read_atr(self) -> str:
        """Returns the ATR of the last power-on as hex and logs what it says (protocols, historical bytes).

        Fails with a one-line reason when the ATR is malformed.
        """
        atr = self._atr()
        logger.info(f"ATR {atr.describe()}; interface bytes: {atr.interface_summary or 'none'}")
        if atr.contactless is not None:
            logger.info(f"contactless ATR: {atr.contactless}")
        return atr.hex

    @keyword("ATR Should Be Well Formed")
    def atr_should_be_well_formed(self) -> None:
        """Fails unless the ATR parses and its check byte TCK (when required) makes the XOR of T0…TCK zero."""
        parse_atr(self.ctx.atr, strict=True)

    @keyword("ATR Should Offer Protocol")
    def atr_should_offer_protocol(self, protocol: str) -> None:
        """Fails unless the ATR offers ``protocol``: ``T=0``, ``T=1`` or ``T=CL`` (a contactless ATR)."""
        atr = self._atr()
        if not atr.offers(protocol):
            offered = ", ".join(f"T={t}" for t in atr.protocols)
            raise AssertionError(f"ATR {atr.hex} does not offer {protocol}; it offers {offered}")

    @keyword("Active Protocol Should Be Offered By ATR")
    def active_protocol_should_be_offered_by_atr(self) -> str:
        """Fails unless the protocol the reader negotiated is one the ATR offers; returns it (``T=1``).

        Skips on readers without protocol negotiation (the in-process virtual reader).
        """
        protocol = self.ctx.require_reader().protocol
        if not protocol:
            raise SkipExecution(f"{self.ctx.device_name} negotiates no protocol (not a PC/SC reader)")
        atr = self._atr()
        if not atr.offers(protocol):
            raise AssertionError(f"the reader uses {protocol} but ATR {atr.hex} offers "
                                 f"{', '.join(f'T={t}' for t in atr.protocols)}")
        return protocol

    # -- APDUs -----------------------------------------------------------------------------
    @keyword("Send Raw APDU")
    def send_raw_apdu(self, apdu: str) -> ResponseApdu:
        """Sends the APDU given as hex exactly as written (short or extended) and returns the response.

        The exchange is traced; what the reader sends on its own (GET RESPONSE after ``61xx``, a re-send
        after ``6Cxx``) is traced too, marked "sent by the reader".
        """
        command = parse_hex(apdu)
        refuse_raw_secret(command, "Send Raw APDU")
        response = self.ctx.require_channel().transmit(command)
        self._record_auto_exchanges()
        return response

    @keyword("Send Raw APDUs Back To Back")
    def send_raw_apdus_back_to_back(self, apdu: str, count: int = 200, expected_sw: str = "9000") -> dict:
        """Sends the APDU ``count`` times without pause; fails at the first other status word or error.

        Returns ``count``, ``median_ms`` and ``max_ms`` of the exchanges (also logged). Only the first
        and last exchanges stay in the trace, to keep the log readable.
        """
        channel = self.ctx.require_channel()
        raw, wanted = parse_hex(apdu), int(expected_sw, 16)
        refuse_raw_secret(raw, "Send Raw APDUs Back To Back")
        times = []
        for index in range(int(count)):
            start = time.perf_counter()
            response = channel.transmit(raw)
            times.append((time.perf_counter() - start) * 1000)
            if response.sw != wanted:
                raise AssertionError(f"APDU {index + 1} of {count} answered {sw_hex(response.sw)} "
                                     f"({response.sw_name}), expected {expected_sw}")
            if 1 <= index < int(count) - 1:
                del self.ctx.trace.entries[-2:]
        summary = {"count": len(times), "median_ms": round(statistics.median(times), 3),
                   "max_ms": round(max(times), 3)}
        logger.info(f"{summary['count']} APDUs back to back: median {summary['median_ms']} ms, "
                    f"max {summary['max_ms']} ms")
        return summary

    @keyword
    def response_length_should_be(self, response: ResponseApdu, length: int) -> None:
        """Fails unless the response's data field (status word not counted) is ``length`` bytes long."""
        if len(response.data) != int(length):
            raise AssertionError(f"expected {length} data bytes, got {len(response.data)} "
                                 f"(SW {sw_hex(response.sw)})")

    @keyword("Response Should Hold Complete DER Object")
    def response_should_hold_complete_der_object(self, response: ResponseApdu) -> int:
        """Fails unless the data starts with a whole DER object (e.g. a certificate); returns its length."""
        if len(response.data) < 4 or response.data[0] != 0x30:
            raise AssertionError(f"the data does not start with a DER SEQUENCE: {to_hex(response.data[:8])}")
        total = tlv.der_total_length(response.data[:6])
        if len(response.data) < total:
            raise AssertionError(f"DER object of {total} bytes but only {len(response.data)} bytes arrived")
        return total

    @keyword("Last Exchange Should Have Used GET RESPONSE")
    def last_exchange_should_have_used_get_response(self, minimum: int = 1) -> int:
        """Fails unless the reader answered ``61xx`` with at least ``minimum`` GET RESPONSEs in the last
        APDU; returns how many it sent."""
        count = sum(1 for command, _ in self._auto_exchanges() if command[1] == GET_RESPONSE_INS)
        if count < int(minimum):
            raise AssertionError(f"the reader sent {count} GET RESPONSE, expected at least {minimum}")
        return count

    @keyword
    def last_exchange_should_have_been_resent_with_le(self, le: str = "") -> int:
        """Fails unless the reader re-sent the last command after ``6Cxx``, with Le = ``le`` (hex) when given.

        Returns the Le of the re-sent command (256 for ``00``).
        """
        resent = [command for command, _ in self._auto_exchanges() if command[1] != GET_RESPONSE_INS]
        if not resent:
            raise AssertionError("the reader re-sent nothing after the last command")
        sent = resent[-1][-1] or 256
        if le and sent != (int(le, 16) or 256):
            raise AssertionError(f"the re-sent command {redact_apdu(resent[-1])} carries Le {sent % 256:02X}, "
                                 f"expected {le}")
        return sent

    @keyword
    def last_exchange_should_have_gone_unchanged(self) -> None:
        """Fails if the reader added any exchange (GET RESPONSE, re-send) to the last APDU."""
        auto = self._auto_exchanges()
        if auto:
            raise AssertionError(f"the reader added {len(auto)} exchange(s): "
                                 + ", ".join(redact_apdu(c) for c, _ in auto))

    # -- reader features -------------------------------------------------------------------
    @keyword("Reader Should Support Extended APDUs")
    def reader_should_support_extended_apdus(self) -> None:
        """Fails unless the reader reports extended-length APDUs; logs how that was decided
        (reader report, ATR card capabilities or a probe)."""
        caps = self.ctx.require_reader().capabilities
        source = caps.details.get("extended_source", "the backend")
        logger.info(f"extended APDUs: {'yes' if caps.extended_apdu else 'no'} (from {source}); "
                    f"max response {caps.max_response}, max command data {caps.max_command_data}")
        if not caps.extended_apdu:
            raise AssertionError(f"{self.ctx.device_name} does not carry extended APDUs (from {source})")

    @keyword
    def set_reader_handling(self, get_response: str = "on", resend_6c: str = "on") -> None:
        """Switches the harness's own ``61xx`` GET RESPONSE and ``6Cxx`` re-send on or off (PC/SC readers).

        Off lets ``61xx``/``6Cxx`` reach the test, to see whether the reader or its driver handles them.
        """
        self._pcsc_reader().set_status_word_handling(get_response=_flag(get_response), resend_6c=_flag(resend_6c))

    # -- card movement and faults ------------------------------------------------------------
    @keyword
    def card_removal_should_be_reported(self, apdu: str = "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01",
                                        timeout: float = 5.0) -> str:
        """Sends ``apdu`` and fails unless the reader reports the card removed (or absent) within ``timeout``
        seconds, instead of answering. Returns the reader's one-line message."""
        channel = self.ctx.require_channel()
        start = time.monotonic()
        try:
            command = parse_hex(apdu)
            refuse_raw_secret(command, "Card Removal Should Be Reported")
            response = channel.transmit(command)
        except (CardRemoved, NoCard) as exc:
            elapsed = time.monotonic() - start
            logger.info(f"reported after {elapsed * 1000:.0f} ms: {type(exc).__name__}: {exc}")
            if elapsed > float(timeout):
                raise AssertionError(f"removal reported only after {elapsed:.1f} s (limit {timeout} s)") from None
            return str(exc)
        raise AssertionError(f"the reader answered {sw_hex(response.sw)} instead of reporting the removal")

    @keyword
    def reconnect_card(self, timeout: float = 5.0) -> str:
        """Drops the old connection, waits up to ``timeout`` s for a card and powers it on; returns the ATR."""
        reader: Reader = self.ctx.require_reader()
        try:
            reader.power_off()
        except DeviceError as exc:
            logger.info(f"power off of the old connection: {exc}")
        reader.wait_for_card(float(timeout))
        self.ctx.atr = reader.power_on()
        return to_hex(self.ctx.atr)

