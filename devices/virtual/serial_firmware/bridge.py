"""``virtual:<profile>?via=kiosk|stb|serial`` — a virtual card behind the real serial stack, in this process.

The card goes into a fresh :class:`CardSlot`; the firmware for the protocol serves it on a pty
(and, with ``transport=rfc2217`` or ``transport=socket``, a port server on 127.0.0.1 serves the
pty); the host side is the real serial reader, opened through the registry on the pty's (or the port
server's) URI. Its rig (``rig_of(reader)``) holds the slot, the firmware and the port server; closing the
reader stops them.

Options: ``protocol=NAME`` (with ``via=serial``; default: the via name), ``transport=pty|rfc2217|socket``,
and the serial reader's own options (``retries``, ``response_timeout``, ``apdu_timeout``…).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Mapping
from urllib.parse import urlencode

from devices.base import DeviceError, Reader
from devices.registry import open_uri
from devices.serial.protocol import ProtocolFileError, Timing, load_protocol

from ..card import VirtualCard
from ..rig import VirtualRig, attach
from ..slot import CardSlot
from .firmware import ReaderFirmware
from .portserver import PortServer

TRANSPORTS = ("pty", "rfc2217", "socket")
PASSED_OPTIONS = ("baudrate", "exclusive", *Timing.__dataclass_fields__)


def _protocol_name(options: Mapping[str, str]) -> str:
    via = options.get("via", "serial")
    if via == "serial":
        if "protocol" not in options:
            raise DeviceError("via=serial needs protocol=NAME (kiosk, stb, line or a .toml path)")
        return options["protocol"]
    return options.get("protocol", via)


def open_via_serial(card: VirtualCard, uri: str, options: Mapping[str, str]) -> Reader:
    """Starts firmware (and a port server) for ``card`` and returns the serial reader on it."""
    transport = options.get("transport", "pty")
    if transport not in TRANSPORTS:
        raise DeviceError(f"{uri}: transport={transport!r} is not one of {', '.join(TRANSPORTS)}")
    protocol = _protocol_name(options)  # the name or file the host side loads again: the same spec
    try:
        spec = load_protocol(protocol)
    except ProtocolFileError as exc:
        raise DeviceError(str(exc)) from None
    slot = CardSlot(card)
    firmware = ReaderFirmware(slot, spec).start()
    server: PortServer | None = None
    try:
        passed = {key: options[key] for key in PASSED_OPTIONS if key in options}
        if transport == "pty":
            device_uri = f"serial:{firmware.device}"
        else:
            server = PortServer(firmware.device, rfc2217=transport == "rfc2217").start()
            device_uri = server.url
            if transport == "rfc2217":
                passed["ign_set_control"] = ""  # a pty-backed port (PLATFORM-NOTES)
        query = urlencode({"protocol": protocol, **passed}).replace("ign_set_control=", "ign_set_control")
        reader = open_uri(f"{device_uri}?{query}")
    except BaseException:
        if server is not None:
            server.stop()
        firmware.stop()
        raise
    reader.present_as(uri)
    attach(reader, VirtualRig(slot, unplug=firmware.stop, firmware=firmware, port_server=server))
    if server is not None:
        reader.after_close(server.stop)
    reader.after_close(firmware.stop)  # last added, first run: the firmware stops before its port server
    return reader


def serve_forever(profile: str, protocol: str, rfc2217_port: int | None = None, *,
                  card: VirtualCard | None = None,
                  stop: threading.Event | None = None, out=None) -> None:
    """``hil virtual serve <profile> --serial <protocol> [--rfc2217 PORT]``: serve until Ctrl-C (or ``stop``).

    Prints the device name a host opens, e.g. ``serial:/dev/pts/5?protocol=kiosk``.
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    spec = load_protocol(protocol)
    slot = CardSlot(card if card is not None else VirtualCard.from_profile(profile))
    with contextlib.ExitStack() as stack:
        firmware = stack.enter_context(ReaderFirmware(slot, spec))
        print(f"serial:{firmware.device}?protocol={spec.name}", file=out, flush=True)
        if rfc2217_port is not None:
            server = stack.enter_context(PortServer(firmware.device, port=rfc2217_port))
            # it serves a client that reconnects at once: no pause before a reconnect (devices/serial/rfc2217_port.py)
            print(f"{server.url}?protocol={spec.name}&ign_set_control&reconnect_grace=0", file=out, flush=True)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                if firmware.error is not None:
                    raise DeviceError(f"firmware stopped: {firmware.error}")
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
