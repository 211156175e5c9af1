"""Serial reader modules as :class:`~devices.base.Reader`: ``serial:``, ``rfc2217://`` and ``socket://`` devices.

``serial:/dev/ttyUSB0?protocol=kiosk&baudrate=115200``, ``rfc2217://127.0.0.1:PORT?protocol=stb&ign_set_control``,
``socket://127.0.0.1:PORT?protocol=kiosk``. The port is opened with pyserial's ``serial_for_url``, so
a local tty, an RFC 2217 server (ser2net, or the virtual firmware's) and a raw TCP socket all work.
Options the harness knows (``protocol``, line settings, ``*_timeout``, ``retries``, ``exclusive``) are
taken out of the URI; the rest (``ign_set_control``, ``poll_modem``, ``timeout``, ``logging``) go to pyserial.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import threading
import time

import serial
from serial import SerialException

from devices.base import (
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceInfo,
    DeviceTimeout,
    NoCard,
    NoReader,
    ProtocolError,
    Reader,
    ReaderCapabilities,
)
from devices.uri import parse_flag

from .link import LinkStats, SerialLink, _one_line
from .messages import CodecError, Message
from .protocol import ProtocolFileError, ProtocolSpec, available_protocols, load_protocol
from .rfc2217_port import DEFAULT_RECONNECT_GRACE, EventedRfc2217
from .uri import (  # noqa: F401 - re-exported: the options were defined here first
    HARNESS_OPTION_ROWS,
    HARNESS_OPTIONS,
    PYSERIAL_OPTIONS,
    parse_serial_uri,
)

STATUS_POLL = 1.0  # seconds between status queries while waiting for a card (events may be lost)


def _open_port(url: str, spec: ProtocolSpec, transport: str, uri: str, exclusive: bool,
               reconnect_grace: float = DEFAULT_RECONNECT_GRACE) -> serial.SerialBase:
    try:
        if transport == "rfc2217":  # pyserial's client, woken by the server's answers (.rfc2217_port)
            port = EventedRfc2217(reconnect_grace=reconnect_grace)
            port.port = url
        else:
            port = serial.serial_for_url(url, do_not_open=True)
        port.baudrate = spec.serial.baudrate
        port.bytesize = spec.serial.bytesize
        port.parity = spec.serial.parity
        port.stopbits = spec.serial.stopbits
        port.rtscts = spec.serial.rtscts
        port.xonxoff = spec.serial.xonxoff
        if transport == "tty":
            port.exclusive = exclusive
        port.open()
    except SerialException as exc:
        code = exc.errno if isinstance(exc.errno, int) else None
        text = _one_line(exc)
        if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
            raise DeviceBusy(f"{uri}: port {url} is busy: another process holds it ({text})") from None
        if code in (errno.ENOENT, errno.ENXIO, errno.ENODEV) or "refused" in text or "No such" in text:
            raise NoReader(f"{uri}: no serial port at {url} ({text})") from None
        if code == errno.EACCES:
            raise DeviceError(f"{uri}: no permission to open {url}; add the user to the 'dialout' group") from None
        raise DeviceError(f"{uri}: cannot open {url}: {text}") from None
    except ValueError as exc:
        raise DeviceError(f"{uri}: the port refuses the protocol's line settings: {exc}") from None
    return port


class SerialReader(Reader):
    """A reader module on a serial line, speaking the protocol of its protocol file.

    Card presence comes from the module's insert/remove notifications and its status command;
    a removal after power-on fails the next APDU with :class:`CardRemoved` even if a card was put back.
    """

    bounded_by_protocol = True  # every exchange ends within the protocol's timeouts and bounded retries

    @property
    def terminal_kind(self) -> str:
        """The terminal the protocol file belongs to (``kiosk``, ``stb``), "" for a plain module."""
        return self.spec.terminal

    def __init__(self, uri: str, spec: ProtocolSpec, port: serial.SerialBase, *, transport: str = "tty",
                 url: str = "") -> None:
        self.uri = uri
        self.spec = spec
        self.port = port
        self.transport = transport
        self.url = url or getattr(port, "portstr", "")
        self.link = SerialLink(port, spec, name=uri, on_event=self._on_event)
        self._present: bool | None = None
        self._generation = 0
        self._powered_generation: int | None = None
        self._closed = False
        # One exchange at a time: a caller that gave up waiting (a harness deadline) may leave one running,
        # and the next must wait for it (bounded by the protocol's timeouts) rather than share the line.
        self._lock = threading.RLock()
        limits = spec.limits
        self._caps = ReaderCapabilities(
            extended_apdu=limits.extended_apdu,
            max_command_data=limits.max_command_data,
            max_response=limits.max_response,
            contactless=False,
            details={"backend": "serial", "protocol": spec.name, "transport": transport, "port": self.url},
        )
        try:
            self.link.resync()  # stale notifications from before we opened
        except DeviceError:
            port.close()
            raise

    @classmethod
    def open(cls, uri: str, spec: ProtocolSpec | None = None) -> SerialReader:
        transport, url, options = parse_serial_uri(uri)
        if spec is None:
            if "protocol" not in options:
                raise DeviceError(f"{uri}: say which protocol the module speaks: ?protocol=NAME "
                                  f"(known: {', '.join(available_protocols())}) or ?protocol=path/to/file.toml")
            try:
                spec = load_protocol(options["protocol"])
            except ProtocolFileError as exc:
                raise DeviceError(str(exc)) from None
        try:
            spec = spec.with_options(options, uri)
        except ProtocolFileError as exc:
            raise DeviceError(str(exc)) from None
        exclusive = parse_flag(options.get("exclusive", "1"), "exclusive", uri)
        grace = float(options.get("reconnect_grace", DEFAULT_RECONNECT_GRACE))
        port = _open_port(url, spec, transport, uri, exclusive, grace)
        return cls(uri, spec, port, transport=transport, url=url)

    # -- lifecycle -----------------------------------------------------------------------
    def present_as(self, uri: str) -> None:
        """The link's messages name the reader too."""
        super().present_as(uri)
        self.link.name = uri

    def release(self) -> None:
        """Close the port (a bridge stops its firmware in an :meth:`after_close` hook)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(SerialException, OSError):
            self.port.close()

    @property
    def capabilities(self) -> ReaderCapabilities:
        added = self.added_details
        return dataclasses.replace(self._caps, details={**self._caps.details, **added}) if added else self._caps

    @property
    def stats(self) -> LinkStats:
        return self.link.stats

    def describe(self) -> str:
        return f"{self.uri} ({self.spec.name} protocol over {self.transport} {self.url})"

    # -- events and status ---------------------------------------------------------------------
    def _on_event(self, message: Message) -> None:
        if message.name == "card_inserted":
            self._present = True
            self._generation += 1
        elif message.name == "card_removed":
            self._present = False
            self._generation += 1

    def _request(self, command: str, data: bytes = b"", *, timeout: float | None = None,
                 abort_on_removal: bool = False, resend: bool = True) -> Message:
        with self._lock:
            if self._closed:
                raise DeviceError(f"{self.uri}: reader is closed")
            self.link.poll()
            return self.link.request(command, data, timeout=timeout, abort_on_removal=abort_on_removal,
                                     resend=resend)

    @property
    def present_by_events(self) -> bool | None:
        """Presence as the last notification (or status answer) told it; None before either."""
        return self._present

    def wait_for_removal(self, timeout: float) -> None:
        """Returns once the module reports the card gone (notification or status); DeviceTimeout otherwise."""
        deadline = time.monotonic() + timeout
        next_status = time.monotonic() + STATUS_POLL
        while time.monotonic() < deadline:
            self.link.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            if self._present is False:
                return
            if time.monotonic() >= next_status:
                if self.card_state() == "absent":
                    return
                next_status = time.monotonic() + STATUS_POLL
        if self.card_state() != "absent":
            raise DeviceTimeout(f"{self.uri}: the card was not removed within {timeout:g} s")

    def card_state(self) -> str:
        """``absent``, ``present`` or ``powered``, from the module's status command."""
        response = self._request("status")
        self._check(response, "status")
        try:
            state = self.spec.codec.card_state_name(response.data)
        except CodecError as exc:
            raise ProtocolError(f"{self.uri}: status answer: {exc}") from None
        present = state != "absent"
        if self._present is not None and present != self._present:
            self._generation += 1
        self._present = present
        return state

    def _check(self, response: Message, command: str) -> bytes:
        status = response.status
        if status == "ok":
            return response.data
        if status == "no_card":
            self._present = False
            raise NoCard(f"{self.uri}: no card in the reader ({command})")
        if status == "card_removed":
            self._present = False
            self._generation += 1
            raise CardRemoved(f"{self.uri}: card removed during {command}")
        if status == "not_powered" and self._powered_generation is not None:
            # this reader powered a card, and the module says the card in the slot is not powered: that card was
            # taken away (and maybe another inserted), even if the module's event for it has not arrived yet
            self._generation += 1
            raise CardRemoved(f"{self.uri}: the card was removed since power on (the reader reports the card in "
                              f"the slot unpowered during {command})")
        if status == "not_powered":
            raise DeviceError(f"{self.uri}: {command} before power_on (the reader reports the card unpowered)")
        if status == "card_error":
            raise DeviceError(f"{self.uri}: the reader reports a card error during {command} (mute or T=1 error)")
        if status == "bad_command":
            raise ProtocolError(f"{self.uri}: the reader rejected {command} as a bad command")
        raise ProtocolError(f"{self.uri}: the reader answered {command} with unknown status {status}")

    # -- Reader --------------------------------------------------------------------------------
    def wait_for_card(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        if self.card_state() != "absent":
            return
        next_status = time.monotonic() + STATUS_POLL
        while time.monotonic() < deadline:
            self.link.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            if self._present:
                return
            if time.monotonic() >= next_status:
                if self.card_state() != "absent":
                    return
                next_status = time.monotonic() + STATUS_POLL
        if self.card_state() == "absent":
            raise NoCard(f"{self.uri}: no card inserted within {timeout:g} s")

    def power_on(self) -> bytes:
        response = self._request("power_on")
        atr = self._check(response, "power_on")
        self._present = True
        self._powered_generation = self._generation
        return atr

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            return self._transmit(apdu)

    def _transmit(self, apdu: bytes) -> bytes:
        self.link.poll()
        if self._powered_generation is not None and self._generation != self._powered_generation:
            raise CardRemoved(f"{self.uri}: the card was removed since power on")
        response = self._request("transmit", apdu, timeout=self.spec.timing.apdu_timeout, abort_on_removal=True,
                                 resend=not carries_pin(apdu))
        data = self._check(response, "transmit")
        if len(data) < 2:
            raise ProtocolError(f"{self.uri}: transmit answer of {len(data)} bytes has no status word")
        return data

    def power_off(self) -> None:
        response = self._request("power_off")
        self._powered_generation = None
        if response.status in ("no_card", "card_removed"):
            return
        self._check(response, "power_off")


def carries_pin(apdu: bytes) -> bool:
    """VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER with data (any class): never sent twice."""
    return len(apdu) > 5 and apdu[1] in (0x20, 0x21, 0x24, 0x25, 0x2C)


def open_serial(uri: str) -> SerialReader:
    """Opener for the ``serial``, ``rfc2217`` and ``socket`` schemes."""
    return SerialReader.open(uri)


def discover() -> list[DeviceInfo]:
    """Local serial ports. Opening one needs the module's protocol, so the URI ends in ``?protocol=``."""
    from serial.tools import list_ports

    known = ", ".join(available_protocols())
    return [DeviceInfo(f"serial:{info.device}?protocol=", f"{info.description or info.device} "
                       f"(add the module's protocol: {known} or a .toml path)")
            for info in sorted(list_ports.comports(), key=lambda p: p.device)]
