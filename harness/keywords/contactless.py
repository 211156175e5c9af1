"""Keywords for contactless readers: ATQB parameters, frame sizes, chaining, WTX, link counters.

Parameters come from any ``nfc:`` reader (what nfcpy saw during activation). Link counters need the
virtual PICC behind nfcpy's UDP link (``virtual:<profile>?via=nfc``), the ``link`` of the reader's virtual
rig; with a real card those keywords say so and fail. Faults on the link and the card (lost frames, slow
answers, the card leaving the field) are the fault keywords' (``harness.keywords.faults``).
"""

from __future__ import annotations

from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices.base import DeviceError
from devices.nfc.iso14443 import atr_from_atqb
from devices.virtual.rig import VirtualRig, rig_of
from harness.iso.apdu import parse_hex, to_hex

from .context import LibraryComponent

DIRECTIONS = ("command", "response", "both", "any")


class ContactlessKeywords(LibraryComponent):
    """Contactless transport requirements (JPKI-FACTS §7) on ``nfc:`` readers and ``…?via=nfc`` devices."""

    # -- plumbing -------------------------------------------------------------------------------
    def _details(self) -> dict[str, str]:
        reader = self.ctx.require_reader()
        caps = reader.capabilities
        if not caps.contactless:
            raise DeviceError(f"{self.ctx.device_name} is not a contactless device (try an nfc: reader "
                              "or virtual:card?via=nfc)")
        details = dict(caps.details)
        details["extended_apdu"] = "yes" if caps.extended_apdu else "no"
        return details

    def _rig(self) -> VirtualRig:
        rig = rig_of(self.ctx.require_reader())
        if rig is None or rig.link is None:
            raise DeviceError(
                f"{self.ctx.device_name}: this needs the virtual card behind nfcpy's UDP link "
                "(virtual:card?via=nfc or virtual:phone?via=nfc); a real card cannot be driven from here")
        return rig

    def _last(self) -> Any:
        record = self._rig().require_link().last_exchange
        if record is None:
            raise AssertionError("the card has not answered any APDU on the link yet")
        return record

    @keyword
    def require_virtual_contactless_card(self) -> None:
        """Skips the test unless the device is the virtual card behind nfcpy's UDP link.

        Removal, slow answers and lost frames are injected there; a real card needs a person for them.
        """
        try:
            self._rig()
        except DeviceError as exc:
            raise SkipExecution(str(exc)) from None

    @keyword
    def has_virtual_contactless_card(self) -> bool:
        """True when the device is the virtual card behind nfcpy's UDP link (faults can be injected)."""
        rig = rig_of(self.ctx.reader)
        return rig is not None and rig.link is not None

    # -- parameters -------------------------------------------------------------------------------
    @keyword
    def get_contactless_parameters(self) -> dict[str, str]:
        """Returns what the reader learnt at activation, as strings.

        Keys include ``type`` (``A``/``B``), ``atqb``, ``pupi``, ``app_data``, ``protocol_info``,
        ``max_frame`` (the card's FSC), ``fsc`` (the frame size the reader uses), ``fsd``, ``fwi``,
        ``fwt_ms``, ``bit_rates`` (both ways), ``cid_supported``, ``mbli``, ``atr`` and ``extended_apdu``.
        """
        details = self._details()
        logger.info("\n".join(f"{key} = {value}" for key, value in sorted(details.items())))
        return details

    @keyword
    def contactless_parameters_should_be(self, **expected: str) -> None:
        """Fails unless every named parameter has the given value; ``|`` separates accepted values.

        Example: ``Contactless Parameters Should Be    type=B    max_frame=256    fwi=10|13``
        """
        details = self._details()
        wrong = []
        for key, value in expected.items():
            accepted = [v.strip() for v in str(value).split("|")]
            if key not in details:
                wrong.append(f"{key}: not reported (known: {', '.join(sorted(details))})")
            elif details[key] not in accepted:
                wrong.append(f"{key}: expected {' or '.join(accepted)}, got {details[key]}")
        if wrong:
            raise AssertionError("contactless parameters differ: " + "; ".join(wrong))

    @keyword
    def max_frame_size_should_be(self, size: int) -> None:
        """Fails unless the card announced ``size`` bytes as its maximum frame (FSC from the ATQB or ATS)."""
        actual = int(self._details().get("max_frame", "0"))
        if actual != int(size):
            raise AssertionError(f"the card's maximum frame size is {actual} bytes, not {size}")

    @keyword("Contactless ATR Should Match ATQB")
    def contactless_atr_should_match_atqb(self) -> None:
        """Fails unless the ATR is the one PC/SC readers synthesise from the ATQB (``3B 88 80 01`` …).

        The historical bytes are the ATQB application data, its protocol info and the MBLI nibble.
        """
        details = self._details()
        if details.get("type") != "B":
            kind = details.get("type")
            raise AssertionError(f"{self.ctx.device_name} holds a Type {kind} card, not Type B")
        expected = atr_from_atqb(parse_hex(details["atqb"]), int(details.get("mbli", "0")))
        if self.ctx.atr != expected:
            raise AssertionError(f"ATR {to_hex(self.ctx.atr)} is not the one synthesised from the ATQB: "
                                 f"{to_hex(expected)}")

    # -- link counters ----------------------------------------------------------------------------
    @keyword
    def get_link_statistics(self) -> dict[str, int]:
        """Counters of the virtual card's side of the link: blocks, chaining, R(ACK)/R(NAK), S(WTX)."""
        return self._rig().require_link().snapshot()

    @keyword
    def reset_link_statistics(self) -> None:
        """Zeroes the link counters and forgets the recorded exchanges."""
        self._rig().require_link().reset_stats()

    @keyword
    def frames_should_respect_frame_sizes(self) -> None:
        """Fails if any frame on the link was longer than the receiver allows (FSC one way, FSD the other).

        Sizes count PCB, INF and the two CRC bytes, as the ISO 14443-4 frame sizes do.
        """
        details = self._details()
        stats = self._rig().require_link().snapshot()
        fsc, fsd = int(details["max_frame"]), int(details["fsd"])
        problems = []
        into, out = stats["largest_frame_in"], stats["largest_frame_out"]
        if into > fsc or stats["oversize_frames_in"]:
            problems.append(f"the reader sent a {into}-byte frame; the card's FSC is {fsc}")
        if out > fsd:
            problems.append(f"the card sent a {out}-byte frame; the reader's FSD is {fsd}")
        if problems:
            raise AssertionError("; ".join(problems))
        logger.info(f"largest frames: {stats['largest_frame_in']} to the card (FSC {fsc}), "
                    f"{stats['largest_frame_out']} to the reader (FSD {fsd})")

    @keyword
    def last_exchange_should_have_used_chaining(self, direction: str = "any") -> None:
        """Fails unless the last APDU was split over several I-blocks.

        ``direction``: ``command`` (reader to card), ``response`` (card to reader), ``both`` or ``any``.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
        record = self._last()
        wanted = {
            "command": record.chained_command,
            "response": record.chained_response,
            "both": record.chained_command and record.chained_response,
            "any": record.chained_command or record.chained_response,
        }[direction]
        if not wanted:
            raise AssertionError(
                f"the last APDU was not chained ({direction}): {record.blocks_in} block(s) in, "
                f"{record.blocks_out} out ({record.command_length} → {record.response_length} bytes)")
        logger.info(f"last APDU: {record.blocks_in} block(s) in, {record.blocks_out} out")

    @keyword
    def last_exchange_should_not_have_used_chaining(self) -> None:
        """Fails if the last APDU needed more than one I-block either way."""
        record = self._last()
        if record.chained_command or record.chained_response:
            raise AssertionError(f"the last APDU was chained: {record.blocks_in} block(s) in, "
                                 f"{record.blocks_out} out")

    @keyword("Last Exchange Should Have Used WTX")
    def last_exchange_should_have_used_wtx(self, minimum: int = 1) -> None:
        """Fails unless the card sent at least ``minimum`` S(WTX) requests while working on the last APDU."""
        record = self._last()
        if record.wtx < int(minimum):
            raise AssertionError(f"the last APDU took {record.elapsed_ms:.0f} ms with {record.wtx} S(WTX); "
                                 f"expected at least {minimum}")
        logger.info(f"last APDU: {record.wtx} S(WTX) over {record.elapsed_ms:.0f} ms")

    # -- faults -----------------------------------------------------------------------------------
    @keyword
    def link_statistic_should_be_at_least(self, name: str, minimum: int) -> None:
        """Fails unless the link counter ``name`` (see ``Get Link Statistics``) reached ``minimum``."""
        stats: dict[str, Any] = self._rig().require_link().snapshot()
        if name not in stats:
            raise ValueError(f"unknown link counter '{name}'; known: {', '.join(stats)}")
        if stats[name] < int(minimum):
            raise AssertionError(f"link counter {name} is {stats[name]}, expected at least {minimum}")
