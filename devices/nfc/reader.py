"""USB NFC readers (Sony RC-S380, ACR122U, PN533…) and nfcpy's UDP link, driven by nfcpy's reader side.

nfcpy runs ISO 14443-3/-4 on the host (ATTRIB or RATS, I/R/S blocks, chaining, WTX),
so the harness sees what a contactless terminal sees: the ATQB or ATS, frame sizes,
waiting times and the card leaving the field. Device names: :mod:`devices.nfc.uri`.
A Type B card is activated at the fastest bit rate both sides offer where the link can switch
(:mod:`devices.nfc.activation`).

nfcpy is imported lazily so that a missing libusb gives a typed one-line error, not an ImportError.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from devices.base import (
    BackendUnavailable,
    CardRemoved,
    DeviceError,
    DeviceGone,
    NoCard,
    ProtocolError,
    Reader,
    ReaderCapabilities,
    UnknownDevice,
)

from .activation import activate_type_b, link_rates
from .iso14443 import AtqbInfo, atr_from_atqb, atr_from_ats, bit_rates_of, fastest_common_rate
from .uri import PATH_HELP, parse_nfc_uri
from .usb import open_error, safe_scan, usb_path_with_serial

ACTIVATION_TIMEOUT = 3.0  # seconds power_on() searches for a card it must re-activate


class _IsoDepEvents(logging.Filter):
    """nfcpy logs ISO-DEP retries as warnings and errors; the reader reports them as typed errors instead."""

    def __init__(self) -> None:
        super().__init__()
        self.events: deque[str] = deque(maxlen=32)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and str(record.msg).startswith("ISO-DEP"):
            self.events.append(record.getMessage())
            return False
        return True


ISO_DEP_EVENTS = _IsoDepEvents()


def _quiet_iso_dep() -> None:
    logger = logging.getLogger("nfc.tag.tt4")
    if ISO_DEP_EVENTS not in logger.filters:
        logger.addFilter(ISO_DEP_EVENTS)


class _ActivationLog(logging.Handler):
    """Catches the RATS/ATTRIB answers nfcpy logs but does not keep (they make the ATR and MBLI)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.ats: bytes | None = None
        self.attrib_response: bytes | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()  # nfcpy formats RATS itself and passes ATTRIB as an argument
        try:
            if message.startswith("rcvd RATS response"):
                self.ats = bytes.fromhex(message.rsplit(" ", 1)[-1])
            elif message.startswith("rcvd ATTRIB response"):
                self.attrib_response = bytes.fromhex(message.rsplit(" ", 1)[-1])
        except ValueError:
            pass


@contextmanager
def _capture_activation() -> Iterator[_ActivationLog]:
    logger = logging.getLogger("nfc.tag.tt4")
    handler = _ActivationLog()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the debug records stay here, not in Robot's log
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


class NfcReader(Reader):
    """One nfcpy ContactlessFrontend: ``wait_for_card`` finds and activates, ``power_on`` gives the ATR."""

    def __init__(self, path: str, uri: str = "", *, targets: tuple[str, ...] = ("106B", "106A"),
                 extended: bool = True, max_response: int = 65536, bit_rate: int | None = None) -> None:
        self.uri = uri or f"nfc:{path}"
        self.path = path
        self.targets = targets
        self.bit_rate = bit_rate  # Type B: what ATTRIB asks for; None = the fastest both sides can do
        self._attrib_response: bytes | None = None
        self._extended = extended
        self._max_response = max_response
        self._tag: Any = None
        self._fresh = False  # activated and not yet handed out by power_on
        self._atr = b""
        self._details: dict[str, str] = {}
        self._clf: Any = self._open(path)

    def _open(self, path: str) -> Any:
        try:
            import nfc
            import nfc.clf
        except ImportError as exc:
            raise BackendUnavailable(f"{self.uri}: nfcpy needs the missing package {exc.name}: "
                                     "pip install 'jpki-hil[nfc]'") from None
        self._nfc = nfc
        _quiet_iso_dep()
        try:
            return nfc.ContactlessFrontend(path)
        except ModuleNotFoundError as exc:
            raise UnknownDevice(f"{self.uri}: nfcpy has no driver '{exc.name}'; {PATH_HELP}") from None
        except ValueError as exc:  # the UDP driver int()s the port's getnameinfo name: 57000 reads 'dircproxy'
            if not path.startswith("udp:"):
                raise
            raise UnknownDevice(f"{self.uri}: nfcpy's UDP driver cannot open that port, which the services "
                                f"database names ({exc}); use a port without a name") from None
        except OSError as exc:
            if exc.errno is None and "libusb" in str(exc):
                raise BackendUnavailable(
                    f"{self.uri}: libusb-1.0 is missing: apt-get install libusb-1.0-0") from None
            raise open_error(self.uri, path, exc) from None

    # -- Reader ------------------------------------------------------------------------------
    @property
    def capabilities(self) -> ReaderCapabilities:
        details = {"backend": "nfcpy", "device": str(self._clf) if self._clf else self.path}
        details.update(self._details)
        details.update(self.added_details)
        return ReaderCapabilities(
            extended_apdu=self._extended,
            max_command_data=65535 if self._extended else 255,
            max_response=self._max_response if self._extended else min(self._max_response, 256),
            contactless=True,
            details=details,
        )

    def wait_for_card(self, timeout: float) -> None:
        if self._tag is not None:
            if self._fresh or self._present():
                return
            self._lost()  # gone since the last exchange: discover it afresh
        self._activate(timeout)

    def power_on(self) -> bytes:
        if self._tag is None or not self._fresh:
            self.power_off()
            self._activate(ACTIVATION_TIMEOUT)
        self._fresh = False
        return self._atr

    def transmit(self, apdu: bytes) -> bytes:
        if self._tag is None:
            raise NoCard(f"{self.uri}: no card activated (wait_for_card / power_on first)")
        self._fresh = False
        nfc = self._nfc
        ISO_DEP_EVENTS.events.clear()
        try:
            answer = self._tag.transceive(bytearray(apdu))
        except nfc.tag.TagCommandError as exc:
            self._lost()
            if exc.errno == nfc.tag.PROTOCOL_ERROR:
                raise ProtocolError(
                    f"{self.uri}: ISO-DEP protocol error ({exc}); the card was deactivated") from None
            naks = sum(1 for event in ISO_DEP_EVENTS.events if "(#" in event)
            raise CardRemoved(f"{self.uri}: the card left the field during the APDU "
                              f"({exc} after {naks} R(NAK) retries)") from None
        except nfc.clf.TimeoutError:
            self._lost()  # e.g. no answer after an S(WTX)
            raise CardRemoved(
                f"{self.uri}: the card stopped answering (timeout) and is taken as removed") from None
        except nfc.clf.BrokenLinkError as exc:
            self._lost()
            raise CardRemoved(f"{self.uri}: the RF link broke ({exc})") from None
        except nfc.clf.CommunicationError as exc:
            self._lost()
            raise ProtocolError(f"{self.uri}: {type(exc).__name__} {exc}") from None
        except OSError as exc:
            self._lost()
            raise DeviceGone(f"{self.uri}: the reader stopped answering ({exc})") from None
        except Exception as exc:  # nfcpy decoding what the card sent (unhexlify, ascii, indexing)
            raise self._undecodable("the APDU", exc) from None
        if answer is None or len(answer) < 2:
            raise ProtocolError(f"{self.uri}: the card answered without a status word")
        return bytes(answer)

    def power_off(self) -> None:
        """S(DESELECT), then the field off: the card loses its volatile state, as after a PC/SC power-off."""
        if self._tag is None or self._clf is None:
            return
        with suppress(Exception):  # gone already, or answering garbage: deselecting is best effort
            self._clf.exchange(bytearray((0xC2,)), self._fwt() + 0.01)
        self._lost()

    def release(self) -> None:
        if self._clf is None:
            return
        try:
            self.power_off()
        finally:
            try:
                self._clf.close()
            finally:
                self._clf = None

    # -- internals -----------------------------------------------------------------------------------
    def _fwt(self) -> float:
        dep = getattr(self._tag, "_dep", None)
        return float(getattr(dep, "fwt", 0.3))

    def _present(self) -> bool:
        try:
            return bool(self._tag.is_present)
        except Exception:  # an I/O error or an answer nfcpy cannot decode: not there as far as we can tell
            return False

    def _undecodable(self, during: str, exc: Exception) -> ProtocolError:
        """What the card side sent broke nfcpy's decoding: a typed error, the card deactivated. The
        exception's own text is left out: it may quote bytes of the card's answer."""
        self._lost()
        return ProtocolError(f"{self.uri}: the card's answer to {during} is not a valid frame "
                             f"({type(exc).__name__} in nfcpy); the card was deactivated")

    def _lost(self) -> None:
        self._tag, self._fresh = None, False
        if self._clf is not None and self._clf.device is not None:
            with suppress(OSError):
                self._clf.device.mute()  # field off: ends the session; the next sense starts clean

    def _activate(self, timeout: float) -> None:
        """Sense and activate one ISO-DEP target; nfcpy checks ``terminate`` between sense cycles."""
        if self._clf is None:
            raise DeviceGone(f"{self.uri}: the reader is closed")
        deadline = time.monotonic() + max(0.0, float(timeout))
        cycles = [0]

        def terminate() -> bool:  # nfcpy asks before each sense cycle: always allow the first
            cycles[0] += 1
            return cycles[0] > 1 and time.monotonic() >= deadline

        rated: list[Any] = []  # a Type B tag activated here at a rate above 106 kbit/s
        unanswered = [0]  # ATTRIBs that got no answer: the card is sensed again until the deadline

        def on_discover(target: Any) -> bool:  # True: nfcpy activates it (at 106 kbit/s) itself
            rate = self._rate_for(target)
            if rate == 106:
                return True
            try:
                rated.append(activate_type_b(self._clf, target, rate))
            except self._nfc.clf.TimeoutError:
                unanswered[0] += 1  # a card at the field's edge, or a served card on a loaded machine
            return False

        def stop() -> bool:
            return bool(rated) or terminate()

        options = {"targets": list(self.targets), "on-connect": lambda tag: False, "iterations": 1,
                   "interval": 0.05, "beep-on-connect": False, "on-discover": on_discover}
        self._attrib_response = None
        with _capture_activation() as seen:
            try:
                tag = self._clf.connect(rdwr=options, terminate=stop)
                if rated:
                    tag = rated[0]
                    self._attrib_response = tag.attrib_response
            except OSError as exc:
                raise DeviceGone(f"{self.uri}: the reader stopped answering ({exc})") from None
            except DeviceError:
                raise
            except self._nfc.clf.TimeoutError:
                self._lost()
                raise NoCard(f"{self.uri}: the card did not answer ATTRIB at {self._rate_label()} kbit/s") from None
            except Exception as exc:  # nfcpy decoding a garbled ATQB / ATTRIB answer
                raise self._undecodable("activation", exc) from None
        if tag is False:
            raise DeviceGone(f"{self.uri}: nfcpy gave up on the reader (I/O error or interrupt)")
        if not tag and unanswered[0]:
            self._lost()
            raise NoCard(f"{self.uri}: the card did not answer ATTRIB at {self._rate_label()} kbit/s "
                         f"({unanswered[0]} tries in {timeout:g} s)")
        if not tag:
            raise NoCard(f"{self.uri}: no ISO-DEP card ({'/'.join(self.targets)}) in the field "
                         f"within {timeout:g} s")
        if not hasattr(tag, "transceive"):
            self._clf.device.mute()
            raise NoCard(f"{self.uri}: found a {tag.type}, which is not an ISO 14443-4 card")
        self._tag, self._fresh = tag, True
        try:
            self._describe(tag, seen)
        except DeviceError:
            self._lost()
            raise
        except Exception as exc:  # an ATQB, ATS or ATTRIB answer too short for what it announces
            raise self._undecodable("activation", exc) from None

    def _rate_label(self) -> str:
        return "auto" if self.bit_rate is None else str(self.bit_rate)

    def _rate_for(self, target: Any) -> int:
        """The rate ATTRIB asks for: ``bit_rate=`` if given, else the fastest the card offers both ways and
        this link can switch to (:mod:`devices.nfc.activation`); 106 for Type A (nfcpy sends no PPS)."""
        if not target.sensb_res:
            return 106
        capability = AtqbInfo.parse(bytes(target.sensb_res)).bit_rate_capability
        possible = link_rates(self._clf)
        if self.bit_rate is None:
            return fastest_common_rate(capability, possible)
        if self.bit_rate != 106 and self.bit_rate not in possible:
            raise UnknownDevice(f"{self.uri}: bit_rate={self.bit_rate} needs a link nfcpy can switch after "
                                "ATTRIB (its UDP link); nfcpy's USB drivers stay at 106 kbit/s")
        if fastest_common_rate(capability, (self.bit_rate,)) != self.bit_rate:
            offered = ",".join(map(str, AtqbInfo.parse(bytes(target.sensb_res)).bit_rates))
            raise ProtocolError(f"{self.uri}: bit_rate={self.bit_rate} but the card offers {offered} kbit/s")
        return self.bit_rate

    def _describe(self, tag: Any, seen: _ActivationLog) -> None:
        target = tag.target
        dep = tag._dep  # nfcpy keeps FSC/FWT only on its ISO-DEP initiator
        details = {
            "technology": "ISO 14443-4 Type B" if target.sensb_res else "ISO 14443-4 Type A",
            "fwt_ms": f"{dep.fwt * 1000:.1f}",
            "fsc": str(dep.miu + 3),
            "fsd": "256" if self._clf.max_recv_data_size >= 256 else "128",
            "bit_rate": target.brty[:-1],  # what ATTRIB asked for (Type A: 106, nfcpy sends no PPS)
            # nfcpy retries min(1/FWT, 5) times: none at all once FWT reaches 1 s (FWI 12 and up)
            "nak_retries": str(getattr(dep, "n_retry_nak", "")),
        }
        if target.sensb_res:
            atqb = bytes(target.sensb_res)
            info = AtqbInfo.parse(atqb)
            to_pcd, to_picc = bit_rates_of(info.bit_rate_capability)
            attrib_response = self._attrib_response or seen.attrib_response
            mbli = (attrib_response[0] >> 4) if attrib_response else 0
            details.update({
                "type": "B", "atqb": atqb.hex(" ").upper(), "pupi": info.pupi.hex(" ").upper(),
                "app_data": info.app_data.hex(" ").upper(),
                "protocol_info": info.protocol_info.hex(" ").upper(),
                "max_frame": str(info.fsc), "fsci": str(info.fsci), "fwi": str(info.fwi),
                "bit_rates": ",".join(map(str, info.bit_rates)),
                "bit_rates_picc_to_pcd": ",".join(map(str, to_pcd)),
                "bit_rates_pcd_to_picc": ",".join(map(str, to_picc)),
                "same_bit_rate_both_ways": "yes" if info.bit_rate_capability & 0x80 else "no",
                "protocol_type": str(info.protocol_type),
                "iso14443_4": "yes" if info.protocol_type & 1 else "no",
                "cid_supported": "yes" if info.fo & 1 else "no",
                "nad_supported": "yes" if info.fo & 2 else "no",
                "mbli": str(mbli),
                "attrib_response": attrib_response.hex(" ").upper() if attrib_response else "",
            })
            self._atr = atr_from_atqb(atqb, mbli)
        else:
            ats = seen.ats or b""
            details.update({"type": "A", "uid": bytes(target.sdd_res or b"").hex(" ").upper(),
                            "ats": ats.hex(" ").upper(), "max_frame": details["fsc"]})
            if len(ats) > 1 and ats[1] & 0x20:  # TB(1) present: FWI in its high nibble
                tb = 3 if ats[1] & 0x10 else 2
                details["fwi"] = str(ats[tb] >> 4) if len(ats) > tb else ""
            self._atr = atr_from_ats(ats)
        details["atr"] = self._atr.hex(" ").upper()
        self._details = details


def open_nfc(uri: str) -> NfcReader:
    """``nfc:usb[...]``, ``nfc:tty:PORT:DRIVER`` or ``nfc:udp:HOST:PORT``: nfcpy's path after ``nfc:``;
    ``nfc:usb?serial=S`` is resolved to the bus:device of the reader with that USB serial number."""
    parsed = parse_nfc_uri(uri)
    path = usb_path_with_serial(uri, parsed.serial, safe_scan()) if parsed.serial else parsed.path
    return NfcReader(path, uri, targets=parsed.targets, extended=parsed.extended,
                     max_response=parsed.max_response, bit_rate=parsed.bit_rate)
