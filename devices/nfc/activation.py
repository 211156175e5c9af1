"""Type B activation at a chosen bit rate, where nfcpy's own always asks for 106 kbit/s.

nfcpy 1.0.4's ``Type4BTag`` sends ATTRIB with Param 2 = ``08`` (or ``07``): bit-rate bits 0, i.e.
106 kbit/s both ways, whatever the ATQB offers; its Type A path sends no PPS either. The bit rate of a
frame is the ``brty`` of the target nfcpy exchanges with: the UDP driver writes it in front of each
datagram (``b"424B <hex>"``) and accepts only answers with the same label, so on the UDP link the
harness can switch after ATTRIB by relabelling the target. The USB drivers program the chip's RF rate
once, at sense time (RC-S380 ``in_set_rf``, PN53x ``InListPassiveTarget``), and nfcpy has no call to
change it for an activated target: there a Type B card stays at 106 kbit/s.
"""

from __future__ import annotations

import functools
from typing import Any

from .iso14443 import FSC_TABLE, AtqbInfo, attrib_param2

ATTRIB_TIMEOUT = 0.03  # seconds; the card answers ATTRIB within its FWT at activation (nfcpy uses the same)
# On the UDP link the "air" is two processes' scheduling: a loaded machine delays an answer by far more than
# an FWT, so the ATTRIB wait there is nfcpy's own UDP sense wait (its ``sense_ttb`` waits 1 s for SENSB_RES).
UDP_ATTRIB_TIMEOUT = 1.0
UDP_LINK_RATES = (212, 424)  # what nfcpy's UDP driver can label frames with after 106 (sense_ttb accepts these)


def link_rates(clf: Any) -> tuple[int, ...]:
    """Rates above 106 kbit/s the harness can switch this frontend to after ATTRIB (module doc)."""
    return UDP_LINK_RATES if _on_udp_link(clf) else ()


def attrib_timeout(clf: Any) -> float:
    """How long ATTRIB's answer may take on this frontend (module constants)."""
    return UDP_ATTRIB_TIMEOUT if _on_udp_link(clf) else ATTRIB_TIMEOUT


def _on_udp_link(clf: Any) -> bool:
    return type(clf.device).__module__ == "nfc.clf.udp"


@functools.cache
def _rated_tag_class() -> type:
    """A ``Type4BTag`` whose ATTRIB asks for a bit rate (built on first use: nfcpy is imported lazily)."""
    import nfc.tag.tt4 as tt4

    class RatedType4BTag(tt4.Type4BTag):
        def __init__(self, clf: Any, target: Any, rate: int) -> None:
            tt4.Type4Tag.__init__(self, clf, target)  # nfc.tag.Tag's state; no ATTRIB yet
            self._nfcid = bytearray(target.sensb_res[1:5])
            info = AtqbInfo.parse(bytes(target.sensb_res))
            fsdi = 8 if clf.max_recv_data_size >= 256 else 7
            command = b"\x1d" + bytes(self._nfcid) + bytes((0x00, attrib_param2(rate, fsdi), 0x01, 0x00))
            self.attrib_response = bytes(clf.exchange(bytearray(command), timeout=attrib_timeout(clf)))
            target.brty = f"{rate}B"  # from the frame after the ATTRIB answer on, at the new rate
            fsc = min(FSC_TABLE[min(info.fsci, 8)], clf.max_send_data_size)
            self._dep = tt4.IsoDepInitiator(clf, fsc, info.fwt)
            self._extended_length_support = False
            self.bit_rate = rate

    return RatedType4BTag


def activate_type_b(clf: Any, target: Any, rate: int) -> Any:
    """Activate the Type B ``target`` with an ATTRIB asking for ``rate`` kbit/s both ways."""
    return _rated_tag_class()(clf, target, rate)
