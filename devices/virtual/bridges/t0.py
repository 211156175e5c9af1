"""Make a virtual card answer like a T=0 card: ``61xx`` with GET RESPONSE, ``6Cxx`` for a wrong Le.

The card OS answers like a T=1 card (data and status word in one response).
Hosts and readers must also cope with T=0 cards, where the transport cannot
carry both a command's data and its response: this layer sits between a bridge
and the :class:`~devices.virtual.slot.CardSlot` and reshapes the answers, so the
host's GET RESPONSE and 6C handling runs through the real stack (pcscd, vpcd).
Enabled per device: ``virtual:card?via=pcsc&t0=1``.

Rules (ISO/IEC 7816-3 §12.2 and 7816-4 §5.3 as a T=0 card applies them):

- case 4 (data in and out) and any response over 256 bytes: ``61 xx`` (xx = bytes available, 00 = 256 or
  more); the data waits for ``00 C0 00 00 Le``, which returns up to Le bytes and ``61 xx`` while more remain;
- case 2 with a short Le that differs from the data length: ``6C xx`` with the exact length;
- any other command drops data still waiting; status-only answers pass unchanged.
"""

from __future__ import annotations

import threading

from harness.iso.apdu import ApduError, CommandApdu

from ..slot import CardSlot

GET_RESPONSE_INS = 0xC0


def _available(count: int) -> bytes:
    return bytes((0x61, count if count < 256 else 0))


class T0Responder:
    """Wraps a slot's ``exchange``/``power_on``/``power_off`` with T=0 response shaping."""

    def __init__(self, slot: CardSlot) -> None:
        self.slot = slot
        self._held = b""
        self._held_sw = b""
        self._lock = threading.Lock()

    def power_on(self) -> bytes:
        self._drop()
        return self.slot.power_on()

    def power_off(self) -> None:
        self._drop()
        self.slot.power_off()

    def _drop(self) -> None:
        with self._lock:
            self._held, self._held_sw = b"", b""

    def exchange(self, apdu: bytes) -> bytes:
        if len(apdu) >= 4 and apdu[1] == GET_RESPONSE_INS and apdu[0] & 0x80 == 0 and self._held_sw:
            return self._get_response(apdu)
        self._drop()
        response = self.slot.exchange(apdu)
        data, sw = response[:-2], response[-2:]
        if not data:
            return response
        try:
            cmd = CommandApdu.parse(apdu)
        except ApduError:
            return response
        if cmd.data or len(data) > 256 or cmd.is_extended:
            with self._lock:
                self._held, self._held_sw = data, sw
            return _available(len(data))
        if cmd.le is not None and cmd.le != len(data):
            return bytes((0x6C, len(data) % 256))
        return response

    def _get_response(self, apdu: bytes) -> bytes:
        if len(apdu) != 5 or apdu[2:4] != b"\x00\x00":
            return b"\x67\x00" if len(apdu) != 5 else b"\x6a\x86"
        with self._lock:
            wanted = apdu[4] or 256
            held, sw = self._held, self._held_sw
            if wanted > len(held):
                return bytes((0x6C, len(held) % 256))
            chunk, self._held = held[:wanted], held[wanted:]
            if self._held:
                return chunk + _available(len(self._held))
            self._held_sw = b""
            return chunk + sw
