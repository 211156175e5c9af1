"""USB NFC readers (Sony RC-S380, ACR122U, PN533…) and nfcpy's UDP link, driven by nfcpy's reader side.

nfcpy runs ISO 14443-3/-4 on the host (ATTRIB or RATS, I/R/S blocks, chaining, WTX),
so the harness sees what a contactless terminal sees: the ATQB or ATS, frame sizes,
waiting times and the card leaving the field. Device names are nfcpy's own paths
behind ``nfc:`` (``nfc:usb``, ``nfc:usb:054c:06c3``, ``nfc:tty:USB0:pn532``,
``nfc:udp:127.0.0.1:54321``) with optional ``?targets=106B,106A&extended=0&max_response=N``.

nfcpy is imported lazily so that a missing libusb gives a typed one-line error, not an ImportError.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.base import (
    BackendUnavailable,
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceInfo,
    NoCard,
    NoReader,
    ProtocolError,
    Reader,
    ReaderCapabilities,
    UnknownDevice,
)
from devices.uri import TERMINAL_OPTION, DeviceUri, Option

FC = 13.56e6  # carrier frequency; FWT = 4096/fc × 2^FWI (ISO 14443-4 §7.2)
FSC_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSCI/FSDI 0-8
ACTIVATION_TIMEOUT = 3.0  # seconds power_on() searches for a card it must re-activate

# nfcpy's own USB table (nfc/clf/device.py), with the names a lab knows the readers by.
SUPPORTED_USB: dict[tuple[int, int], str] = {
    (0x054C, 0x0193): "Sony PN531",
    (0x04CC, 0x0531): "Philips PN531 / SCM SCL3710",
    (0x04CC, 0x2533): "NXP PN533 demo board",
    (0x04E6, 0x5591): "SCM SCL3711",
    (0x04E6, 0x5593): "SCM SCL3712",
    (0x054C, 0x02E1): "Sony RC-S330/360/370",
    (0x054C, 0x06C1): "Sony RC-S380",
    (0x054C, 0x06C3): "Sony RC-S380",
    (0x072F, 0x2200): "ACS ACR122U",
}
# Kernel NFC drivers that claim these readers before libusb can.
KERNEL_DRIVERS = ("port100", "pn533_usb", "pn533")

_USB_PATH = re.compile(r"^usb(?::[0-9a-fA-F]{4}(?::[0-9a-fA-F]{4})?|:\d{1,3}(?::\d{1,3})?)?$")
_TTY_PATH = re.compile(r"^(?:tty|com):[A-Za-z0-9-]+(?::[a-z0-9_]+)?$")
_UDP_PATH = re.compile(r"^udp(?::(?P<host>[^:]*))?(?::(?P<port>\d+))?$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
PATH_HELP = (
    "use nfc:usb, nfc:usb:VID:PID (e.g. nfc:usb:054c:06c3), nfc:usb:BUS:DEV, "
    "nfc:tty:PORT:DRIVER (e.g. nfc:tty:USB0:pn532) or nfc:udp:127.0.0.1:PORT"
)


# -- ATQB / ATS / ATR -----------------------------------------------------------------------------
def fwt_seconds(fwi: int) -> float:
    return 4096 / FC * (2**fwi)


def bit_rates_of(capability: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(PICC→PCD, PCD→PICC) bit rates in kbit/s from the ATQB bit-rate byte (ISO 14443-3 §7.9.4.1)."""
    to_pcd = [106] + [rate for bit, rate in ((0x10, 212), (0x20, 424), (0x40, 848)) if capability & bit]
    to_picc = [106] + [rate for bit, rate in ((0x01, 212), (0x02, 424), (0x04, 848)) if capability & bit]
    return tuple(to_pcd), tuple(to_picc)


@dataclass(frozen=True)
class AtqbInfo:
    """An ATQB (SENSB_RES) taken apart: what a Type B card announces about itself."""

    pupi: bytes
    app_data: bytes
    bit_rate_capability: int
    fsci: int
    protocol_type: int
    fwi: int
    adc: int
    fo: int

    @classmethod
    def parse(cls, atqb: bytes) -> AtqbInfo:
        if len(atqb) < 12 or atqb[0] != 0x50:
            raise ProtocolError(f"not an ATQB: {atqb.hex(' ').upper()}")
        return cls(bytes(atqb[1:5]), bytes(atqb[5:9]), atqb[9], atqb[10] >> 4, atqb[10] & 0x0F,
                   atqb[11] >> 4, (atqb[11] >> 2) & 0x03, atqb[11] & 0x03)

    @property
    def protocol_info(self) -> bytes:
        return bytes((self.bit_rate_capability, self.fsci << 4 | self.protocol_type,
                      self.fwi << 4 | self.adc << 2 | self.fo))

    @property
    def fsc(self) -> int:
        return FSC_TABLE[min(self.fsci, 8)]  # FSCI 9-F are RFU: read as 256, like nfcpy

    @property
    def fwt(self) -> float:
        return fwt_seconds(self.fwi if self.fwi <= 14 else 4)

    @property
    def bit_rates(self) -> tuple[int, ...]:
        """Rates usable both ways (106 always)."""
        to_pcd, to_picc = bit_rates_of(self.bit_rate_capability)
        return tuple(rate for rate in to_pcd if rate in to_picc)


def _with_tck(body: bytes) -> bytes:
    tck = 0
    for byte in body[1:]:
        tck ^= byte
    return body + bytes((tck,))


def atr_from_atqb(atqb: bytes, mbli: int = 0) -> bytes:
    """The ATR a PC/SC reader reports for a Type B card (PC/SC Part 3 §3.1.3.2.3.2, JPKI-FACTS §7):
    ``3B 88 80 01`` + application data + protocol info + MBLI nibble from the ATTRIB answer + TCK."""
    info = AtqbInfo.parse(atqb)
    historical = info.app_data + info.protocol_info + bytes(((mbli & 0x0F) << 4,))
    return _with_tck(bytes((0x3B, 0x80 | len(historical), 0x80, 0x01)) + historical)


def atr_from_ats(ats: bytes) -> bytes:
    """The ATR a PC/SC reader reports for a Type A ISO-DEP card: ``3B 8n 80 01`` + ATS historical bytes."""
    historical = b""
    if ats:
        t0 = ats[1] if len(ats) > 1 else 0
        start = 2 + bin(t0 & 0x70).count("1")
        historical = bytes(ats[start : ats[0]])[:15]
    return _with_tck(bytes((0x3B, 0x80 | len(historical), 0x80, 0x01)) + historical)


# -- URIs -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NfcUri:
    path: str  # nfcpy's device path
    targets: tuple[str, ...]
    extended: bool = True
    max_response: int = 65536


NFC_TARGETS = ("106A", "106B", "212B", "424B")
URI_OPTIONS = (
    Option("targets", "text"),
    Option("extended"),
    Option("max_response", "int", low=1, high=65536),
    TERMINAL_OPTION,
)


def parse_nfc_uri(uri: str) -> NfcUri:
    """Split ``nfc:<nfcpy path>[?options]``; any malformed name raises one line naming the forms."""
    parsed = DeviceUri.parse(uri if uri.startswith("nfc:") else f"nfc:{uri}")
    path = parsed.body
    values = parsed.typed(URI_OPTIONS)
    if _UDP_PATH.match(path):
        match = _UDP_PATH.match(path)
        assert match is not None
        host = match.group("host") or "127.0.0.1"
        port = int(match.group("port") or 54321)
        if not (host == "localhost" or _IPV4.match(host)) or not 0 < port < 65536:
            raise UnknownDevice(f"'{uri}': udp needs a numeric IPv4 host and a port 1-65535; {PATH_HELP}")
        path, default_targets = f"udp:{host}:{port}", "106B"  # our virtual PICCs are Type B
    elif _USB_PATH.match(path) or _TTY_PATH.match(path):
        default_targets = "106B,106A"
    else:
        raise UnknownDevice(f"'{uri}' is not an nfcpy device path; {PATH_HELP}")
    wanted = values.get("targets", default_targets).split(",")
    targets = tuple(t.strip().upper() for t in wanted if t.strip())
    bad = [t for t in targets if t not in NFC_TARGETS]
    if bad or not targets:
        raise UnknownDevice(f"'{uri}': targets must be among {', '.join(NFC_TARGETS)}, got {','.join(bad)}")
    if len(set(targets)) != len(targets):
        raise UnknownDevice(f"'{uri}': targets names a technology twice")
    extended = values.get("extended", True)
    max_response = values.get("max_response", 65536)  # extended=0 caps it at 256 (capabilities)
    return NfcUri(path, targets, extended, max_response)


# -- USB scan and the errors that explain it ----------------------------------------------------------
def _udev_hint(vid: int, pid: int) -> str:
    return (
        "add a udev rule, e.g. /etc/udev/rules.d/60-nfc.rules: "
        f'SUBSYSTEM=="usb", ATTRS{{idVendor}}=="{vid:04x}", ATTRS{{idProduct}}=="{pid:04x}", MODE="0666" '
        '(or GROUP="plugdev" and add the user to plugdev), '
        "then udevadm control --reload && udevadm trigger, and replug"
    )


def _kernel_hint(driver: str) -> str:
    return (
        f"the kernel module {driver} holds the reader: blacklist it "
        f"(echo 'blacklist {driver}' > /etc/modprobe.d/blacklist-nfc.conf; modprobe -r {driver}) "
        "and replug; port100 and pn533_usb both need blacklisting for nfcpy"
    )


def _sysfs_driver(bus: int, address: int) -> str:
    """The kernel driver bound to the reader's first interface, from sysfs (no USB traffic)."""
    root = Path("/sys/bus/usb/devices")
    try:
        entries = list(root.iterdir())
    except OSError:
        return ""
    for entry in entries:
        try:
            if int((entry / "busnum").read_text()) != bus or int((entry / "devnum").read_text()) != address:
                continue
        except (OSError, ValueError):
            continue
        for interface in entry.glob(f"{entry.name}:*"):
            driver = interface / "driver"
            if driver.exists():
                return os.path.basename(os.path.realpath(driver))
    return ""


@dataclass(frozen=True)
class UsbReader:
    vid: int
    pid: int
    bus: int
    address: int
    problem: str = ""

    @property
    def name(self) -> str:
        return SUPPORTED_USB.get((self.vid, self.pid), "unknown")

    @property
    def uri(self) -> str:
        return f"nfc:usb:{self.bus:03d}:{self.address:03d}"


def scan_usb() -> list[UsbReader]:
    """nfcpy-supported readers on USB, each with the reason it cannot be opened (if any). Never opens one."""
    try:
        import usb1
    except ImportError:
        raise BackendUnavailable("nfcpy's USB access needs libusb1: pip install libusb1") from None
    try:
        with usb1.USBContext() as context:
            devices = [(d.getVendorID(), d.getProductID(), d.getBusNumber(), d.getDeviceAddress())
                       for d in context.getDeviceList(skip_on_error=True)]
    except OSError as exc:  # the shared library itself is missing
        raise BackendUnavailable(f"libusb-1.0 is missing ({exc}): apt-get install libusb-1.0-0") from None
    except usb1.USBError as exc:
        raise BackendUnavailable(f"libusb cannot list USB devices ({exc}); is /dev/bus/usb there?") from None
    found = []
    for vid, pid, bus, address in devices:
        if (vid, pid) not in SUPPORTED_USB:
            continue
        problem = ""
        node = f"/dev/bus/usb/{bus:03d}/{address:03d}"
        driver = _sysfs_driver(bus, address)
        if driver in KERNEL_DRIVERS:
            problem = _kernel_hint(driver)
        elif os.path.exists(node) and not os.access(node, os.R_OK | os.W_OK):
            problem = f"no permission on {node}: {_udev_hint(vid, pid)}"
        found.append(UsbReader(vid, pid, bus, address, problem))
    return found


def discover() -> list[DeviceInfo]:
    """USB readers nfcpy can drive; fast and empty when there are none (the UDP link is not discoverable)."""
    try:
        readers = scan_usb()
    except BackendUnavailable as exc:
        return [DeviceInfo("nfc:usb", "USB NFC readers through nfcpy", problem=str(exc))]
    return [DeviceInfo(r.uri, f"{r.name} ({r.vid:04x}:{r.pid:04x}) through nfcpy", problem=r.problem)
            for r in readers]


def _open_error(uri: str, path: str, exc: OSError) -> DeviceError:
    """Turn nfcpy's IOError into the typed error that says what to do."""
    code = exc.errno
    if path.startswith("usb"):
        if code == errno.EACCES:
            readers = _safe_scan()
            hint = _udev_hint(readers[0].vid, readers[0].pid) if readers else _udev_hint(0x054C, 0x06C3)
            return BackendUnavailable(f"{uri}: permission denied on the USB reader: {hint}")
        if code == errno.EBUSY:
            return DeviceBusy(
                f"{uri}: the reader is busy: another process has it open, or {_kernel_hint('port100')}")
        readers = _safe_scan()
        blocked = [r for r in readers if r.problem]
        if blocked:
            r = blocked[0]
            return BackendUnavailable(
                f"{uri}: found {r.name} ({r.vid:04x}:{r.pid:04x}) but cannot open it: {r.problem}")
        names = ", ".join(sorted({f"{n} {v:04x}:{p:04x}" for (v, p), n in SUPPORTED_USB.items()}))
        return NoReader(f"{uri}: no nfcpy-supported reader on USB (supported: {names})")
    if path.startswith(("tty", "com")):
        if code == errno.EACCES:
            return BackendUnavailable(f"{uri}: permission denied on the serial port: add the user to dialout")
        if code == errno.EBUSY:
            return DeviceBusy(f"{uri}: the serial port is in use by another process")
        reason = os.strerror(code or errno.ENODEV)
        return NoReader(f"{uri}: no reader answering on that serial port ({reason})")
    return NoReader(f"{uri}: nfcpy could not open {path} ({exc})")


def _safe_scan() -> list[UsbReader]:
    try:
        return scan_usb()
    except BackendUnavailable:
        return []


# -- the reader ---------------------------------------------------------------------------------------
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
                 extended: bool = True, max_response: int = 65536) -> None:
        self.uri = uri or f"nfc:{path}"
        self.path = path
        self.targets = targets
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
        except OSError as exc:
            if exc.errno is None and "libusb" in str(exc):
                raise BackendUnavailable(
                    f"{self.uri}: libusb-1.0 is missing: apt-get install libusb-1.0-0") from None
            raise _open_error(self.uri, path, exc) from None

    # -- Reader ------------------------------------------------------------------------------
    @property
    def capabilities(self) -> ReaderCapabilities:
        details = {"backend": "nfcpy", "device": str(self._clf) if self._clf else self.path}
        details.update(self._details)
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

    def close(self) -> None:
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

        options = {"targets": list(self.targets), "on-connect": lambda tag: False, "iterations": 1,
                   "interval": 0.05, "beep-on-connect": False}
        with _capture_activation() as seen:
            try:
                tag = self._clf.connect(rdwr=options, terminate=terminate)
            except OSError as exc:
                raise DeviceGone(f"{self.uri}: the reader stopped answering ({exc})") from None
            except Exception as exc:  # nfcpy decoding a garbled ATQB / ATTRIB answer
                raise self._undecodable("activation", exc) from None
        if tag is False:
            raise DeviceGone(f"{self.uri}: nfcpy gave up on the reader (I/O error or interrupt)")
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

    def _describe(self, tag: Any, seen: _ActivationLog) -> None:
        target = tag.target
        dep = tag._dep  # nfcpy keeps FSC/FWT only on its ISO-DEP initiator
        details = {
            "technology": "ISO 14443-4 Type B" if target.sensb_res else "ISO 14443-4 Type A",
            "fwt_ms": f"{dep.fwt * 1000:.1f}",
            "fsc": str(dep.miu + 3),
            "fsd": "256" if self._clf.max_recv_data_size >= 256 else "128",
            "bit_rate": "106",  # nfcpy's ATTRIB asks for 106 kbit/s both ways
            # nfcpy retries min(1/FWT, 5) times: none at all once FWT reaches 1 s (FWI 12 and up)
            "nak_retries": str(getattr(dep, "n_retry_nak", "")),
        }
        if target.sensb_res:
            atqb = bytes(target.sensb_res)
            info = AtqbInfo.parse(atqb)
            to_pcd, to_picc = bit_rates_of(info.bit_rate_capability)
            mbli = (seen.attrib_response[0] >> 4) if seen.attrib_response else 0
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
                "attrib_response": seen.attrib_response.hex(" ").upper() if seen.attrib_response else "",
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
    """``nfc:usb[...]``, ``nfc:tty:PORT:DRIVER`` or ``nfc:udp:HOST:PORT``: nfcpy's path after ``nfc:``."""
    parsed = parse_nfc_uri(uri)
    return NfcReader(parsed.path, uri, targets=parsed.targets, extended=parsed.extended,
                     max_response=parsed.max_response)
