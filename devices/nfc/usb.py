"""USB NFC readers nfcpy can drive: the scan (never opening one), stable names, and the errors that explain
why a reader cannot be opened (udev permissions, a kernel driver holding it)."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from devices.base import BackendUnavailable, DeviceBusy, DeviceError, DeviceInfo, NoReader

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


@dataclass(frozen=True)
class SysfsEntry:
    """What sysfs says about a USB device without any USB traffic: kernel driver, serial, port path."""

    driver: str = ""
    serial: str = ""
    port_path: str = ""  # e.g. ``1-2.3``: the physical port, stable while the cable stays in it


def _sysfs_entry(bus: int, address: int) -> SysfsEntry:
    root = Path("/sys/bus/usb/devices")
    try:
        entries = list(root.iterdir())
    except OSError:
        return SysfsEntry()
    for entry in entries:
        try:
            if int((entry / "busnum").read_text()) != bus or int((entry / "devnum").read_text()) != address:
                continue
        except (OSError, ValueError):
            continue
        try:
            serial = (entry / "serial").read_text().strip()
        except OSError:
            serial = ""  # the reader reports none (many PN533 clones)
        driver = ""
        for interface in entry.glob(f"{entry.name}:*"):
            if (interface / "driver").exists():
                driver = os.path.basename(os.path.realpath(interface / "driver"))
                break
        return SysfsEntry(driver, serial, entry.name)
    return SysfsEntry()


@dataclass(frozen=True)
class UsbReader:
    vid: int
    pid: int
    bus: int
    address: int
    problem: str = ""
    serial: str = ""

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
        sysfs = _sysfs_entry(bus, address)
        if sysfs.driver in KERNEL_DRIVERS:
            problem = _kernel_hint(sysfs.driver)
        elif os.path.exists(node) and not os.access(node, os.R_OK | os.W_OK):
            problem = f"no permission on {node}: {_udev_hint(vid, pid)}"
        found.append(UsbReader(vid, pid, bus, address, problem, sysfs.serial))
    return found


def stable_uri(reader: UsbReader, readers: list[UsbReader]) -> str:
    """The name for an inventory: the serial number if the reader has one, else vendor:product if no
    other reader present shares it, else bus:device (which a replug changes)."""
    if reader.serial:
        return f"nfc:usb?serial={reader.serial}"
    if sum(1 for r in readers if (r.vid, r.pid) == (reader.vid, reader.pid)) == 1:
        return f"nfc:usb:{reader.vid:04x}:{reader.pid:04x}"
    return reader.uri


def discover() -> list[DeviceInfo]:
    """USB readers nfcpy can drive; fast and empty when there are none (the UDP link is not discoverable)."""
    try:
        readers = scan_usb()
    except BackendUnavailable as exc:
        return [DeviceInfo("nfc:usb", "USB NFC readers through nfcpy", problem=str(exc))]
    return [DeviceInfo(r.uri, f"{r.name} ({r.vid:04x}:{r.pid:04x}) through nfcpy", problem=r.problem,
                       stable_uri=stable_uri(r, readers)) for r in readers]


def usb_path_with_serial(uri: str, serial: str, readers: list[UsbReader]) -> str:
    """nfcpy's ``usb:BUS:DEV`` of the one reader with USB serial ``serial``; one line naming those present."""
    matches = [r for r in readers if r.serial == serial]
    if len(matches) == 1:
        return f"usb:{matches[0].bus:03d}:{matches[0].address:03d}"
    present = "; ".join(f"{r.name} {r.uri} serial {r.serial or '(none)'}" for r in readers) or "none"
    if matches:
        raise NoReader(f"{uri}: {len(matches)} USB readers report serial {serial} ({present}); "
                       "name one by nfc:usb:BUS:DEV")
    raise NoReader(f"{uri}: no nfcpy-supported USB reader has serial {serial}; readers present: {present}")


def open_error(uri: str, path: str, exc: OSError) -> DeviceError:
    """Turn nfcpy's IOError into the typed error that says what to do."""
    code = exc.errno
    if path.startswith("usb"):
        if code == errno.EACCES:
            readers = safe_scan()
            hint = _udev_hint(readers[0].vid, readers[0].pid) if readers else _udev_hint(0x054C, 0x06C3)
            return BackendUnavailable(f"{uri}: permission denied on the USB reader: {hint}")
        if code == errno.EBUSY:
            return DeviceBusy(
                f"{uri}: the reader is busy: another process has it open, or {_kernel_hint('port100')}")
        readers = safe_scan()
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


def safe_scan() -> list[UsbReader]:
    try:
        return scan_usb()
    except BackendUnavailable:
        return []
