"""Keywords for serial reader modules: protocol facts, link and firmware statistics, timed and failing exchanges,
card events.

Faults (garbled, lost, delayed frames, the card pulled) are the fault keywords' (``harness.keywords.faults``)
and need the virtual firmware (``virtual:…?via=kiosk|stb|serial``); the requirements that only observe
(framing, timing, events moved by a person) run on a real module too.
"""

from __future__ import annotations

import time
from typing import Any

from robot.api import SkipExecution, logger
from robotlibcore import keyword

from devices.base import DeviceError, Reader
from devices.serial.reader import SerialReader
from devices.virtual.rig import Firmware, rig_of
from harness.iso.apdu import parse_hex, sw_hex
from harness.jpki import JpkiClient, PinKind
from harness.pin_guard import refuse_raw_secret

from .context import LibraryComponent, LibraryContext

ERROR_NAMES = ("DeviceTimeout", "ProtocolError", "CardRemoved", "NoCard", "DeviceGone", "DeviceBusy", "DeviceError")


def _int_or_none(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(str(value), 0) if isinstance(value, str) else int(value)


class SerialState:
    """Per-library state of the serial keywords: statistic baselines, the last error and stall."""

    def __init__(self) -> None:
        self.link_baseline: dict[str, int] = {}
        self.firmware_baseline: dict[str, Any] = {}
        self.last_error: str = ""
        self.last_elapsed: float = 0.0


def serial_state(ctx: LibraryContext) -> SerialState:
    """The serial keywords' state, kept on the shared context (one per library instance)."""
    return ctx.extension("serial", SerialState)


class SerialKeywords(LibraryComponent):
    """Serial transport requirements (``robot/transport/serial_*.robot``)."""

    @property
    def state(self) -> SerialState:
        return serial_state(self.ctx)

    def _reader(self) -> SerialReader:
        reader = self.ctx.require_reader()
        if not isinstance(reader, SerialReader):
            raise DeviceError(f"{self.ctx.device_name} is not a serial reader (serial:, rfc2217://, socket:// "
                              "or virtual:…?via=kiosk|stb|serial)")
        return reader

    def _firmware(self) -> Firmware:
        rig = rig_of(self._reader())
        firmware = None if rig is None else rig.firmware
        if firmware is None:
            raise SkipExecution(f"{self.ctx.device_name} is a real module: serial faults need the virtual "
                                "firmware (virtual:…?via=kiosk|stb)")
        return firmware

    # -- protocol facts --------------------------------------------------------------------------
    @keyword
    def require_serial_reader(self) -> None:
        """Skips the test, with the reason, unless the open device is a serial reader module."""
        if not isinstance(self.ctx.require_reader(), SerialReader):
            raise SkipExecution(f"{self.ctx.device_name} is not a serial reader module: the serial requirements "
                                "need serial:, rfc2217://, socket:// or virtual:…?via=kiosk|stb|serial")

    @keyword
    def serial_protocol_should_be(self, name: str) -> None:
        """Fails unless the open serial reader speaks the protocol file ``name``."""
        reader = self._reader()
        if reader.spec.name != name:
            raise AssertionError(f"{self.ctx.device_name} speaks {reader.spec.name}, not {name}")

    @keyword
    def get_serial_reader_facts(self) -> dict[str, Any]:
        """Protocol, framing, transport, line settings and timing of the open serial reader (logged too)."""
        reader = self._reader()
        spec = reader.spec
        ack_nak = spec.framing.has_ack_nak
        checksum = getattr(spec.framing, "checksum", "none")
        facts = {"protocol": spec.name, "framing": spec.framing.kind, "transport": reader.transport,
                 "ack_nak": ack_nak, "sequence_numbers": spec.codec.layouts.has_seq,
                 # what recovery looks like on this protocol, for requirements that run on every shape
                 "bad_response_recovery": "naks_sent" if ack_nak else "retransmissions",
                 "bad_command_symptom": "naks_received" if ack_nak else "timeouts",
                 "checksum_word": "checksum" if spec.framing.kind == "line" else checksum.upper(),
                 **{f"serial.{k}": v for k, v in spec.serial.__dict__.items()},
                 **{f"timing.{k}": v for k, v in spec.timing.__dict__.items()},
                 "extended_apdu": spec.limits.extended_apdu, "max_response": spec.limits.max_response}
        logger.info(", ".join(f"{k}={v}" for k, v in facts.items()))
        return facts

    @keyword
    def port_line_settings_should_match_protocol_file(self) -> None:
        """Fails unless the open port runs at the baud rate, byte size, parity and stop bits of the protocol file."""
        reader = self._reader()
        wanted = reader.spec.serial
        for key in ("baudrate", "bytesize", "parity", "stopbits"):
            actual = getattr(reader.port, key)
            if actual != getattr(wanted, key):
                raise AssertionError(f"the port's {key} is {actual}, the protocol file says {getattr(wanted, key)}")

    @keyword
    def certificate_read_apdus_for_reader(self, der: bytes) -> int:
        """How many APDUs a certificate read should take within this reader's limits: SELECT AP, SELECT EF and
        one READ BINARY with extended APDUs, else a 256-byte first read and the rest in chunks."""
        caps = self._reader().capabilities
        per_read = caps.max_response if caps.extended_apdu else min(caps.max_response, 256)
        return 2 + -(-len(der) // per_read)

    @keyword
    def port_server_line_settings_should_be(self, **expected: str) -> None:
        """Over RFC 2217: fails unless the client negotiated these line settings (``baudrate=38400``…)."""
        rig = rig_of(self._reader())
        server = None if rig is None else rig.port_server
        if server is None or server.line is None:
            raise SkipExecution(f"{self.ctx.device_name} is not served by the virtual RFC 2217 port server")
        for key, value in expected.items():
            actual = server.line.settings.get(key)
            if str(actual) != str(value):
                raise AssertionError(f"RFC 2217 {key} is {actual}, expected {value}")

    @keyword
    def card_state_should_be(self, state: str) -> None:
        """Asks the module (status command) and fails unless the card is ``absent``, ``present`` or ``powered``."""
        actual = self._reader().card_state()
        if actual != state:
            raise AssertionError(f"the reader reports the card {actual}, expected {state}")

    # -- statistics -------------------------------------------------------------------------------------
    @keyword
    def reset_serial_statistics(self) -> None:
        """Remembers the host link's and the firmware's counters; later checks count from here."""
        reader = self._reader()
        self.state.link_baseline = reader.stats.as_dict()
        rig = rig_of(reader)
        firmware = None if rig is None else rig.firmware
        self.state.firmware_baseline = firmware.stats.as_dict() if firmware is not None else {}

    @keyword
    def get_serial_statistics(self) -> dict[str, int]:
        """Host link counters since ``Reset Serial Statistics`` (frames_sent, retransmissions, naks_sent…)."""
        now = self._reader().stats.as_dict()
        delta = {key: value - self.state.link_baseline.get(key, 0) for key, value in now.items()}
        logger.info(", ".join(f"{k}={v}" for k, v in delta.items()))
        return delta

    @keyword
    def serial_statistic_should_be(self, name: str, expected: int) -> None:
        """Fails unless the host link counter ``name`` grew by exactly ``expected`` since the reset."""
        delta = self.get_serial_statistics()
        if name not in delta:
            raise AssertionError(f"no link statistic {name!r}; known: {', '.join(delta)}")
        if delta[name] != int(expected):
            raise AssertionError(f"link statistic {name} grew by {delta[name]}, expected {expected}")

    @keyword
    def firmware_statistic_should_be(self, name: str, expected: int) -> None:
        """Fails unless the virtual firmware's counter ``name`` (commands_run, replays…) grew by ``expected``."""
        firmware = self._firmware()
        now = firmware.stats.as_dict()
        if name not in now or name == "faults_injected":
            raise AssertionError(f"no firmware statistic {name!r}")
        delta = now[name] - self.state.firmware_baseline.get(name, 0)
        if delta != int(expected):
            raise AssertionError(f"firmware statistic {name} grew by {delta}, expected {expected}")

    # -- faults --------------------------------------------------------------------------------------------
    # -- exchanges that must fail ----------------------------------------------------------------------
    @keyword
    def send_apdu_expecting_error(self, apdu: str, error: str) -> str:
        """Sends ``apdu`` (hex) and fails unless the reader raises ``error`` (``DeviceTimeout``,
        ``ProtocolError``, ``CardRemoved``, ``NoCard``…) with a one-line message. Returns the message."""
        if error not in ERROR_NAMES:
            raise ValueError(f"unknown error {error!r}; known: {', '.join(ERROR_NAMES)}")
        channel = self.ctx.require_channel()
        command = parse_hex(apdu)
        refuse_raw_secret(command, "Send APDU Expecting Error")
        start = time.monotonic()
        try:
            response = channel.transmit(command)
        except DeviceError as exc:
            self.state.last_elapsed = time.monotonic() - start
            name = type(exc).__name__
            message = str(exc)
            logger.info(f"{name} after {self.state.last_elapsed * 1000:.0f} ms: {message}")
            if name != error:
                raise AssertionError(f"expected {error} but the reader raised {name}: {message}") from None
            if "\n" in message or not message:
                raise AssertionError(f"{name} message is not one line: {message!r}") from None
            self.state.last_error = message
            return message
        self.state.last_elapsed = time.monotonic() - start
        raise AssertionError(f"expected {error} but the reader answered {sw_hex(response.sw)}")

    @keyword
    def send_apdu_timed(self, apdu: str) -> str:
        """Sends ``apdu`` (hex), returns the status word and remembers how long the exchange took."""
        command = parse_hex(apdu)
        refuse_raw_secret(command, "Send APDU Timed")
        start = time.monotonic()
        response = self.ctx.require_channel().transmit(command)
        self.state.last_elapsed = time.monotonic() - start
        logger.info(f"answered {sw_hex(response.sw)} after {self.state.last_elapsed * 1000:.0f} ms")
        return sw_hex(response.sw)

    @keyword
    def last_exchange_should_have_taken(self, at_least: float = 0.0, at_most: float = 60.0) -> None:
        """Fails unless the last timed exchange took between ``at_least`` and ``at_most`` seconds."""
        elapsed = self.state.last_elapsed
        if not float(at_least) <= elapsed <= float(at_most):
            raise AssertionError(f"the exchange took {elapsed:.3f} s, expected {at_least}..{at_most} s")

    @keyword
    def last_error_should_mention(self, *words: str) -> None:
        """Fails unless the last expected error's message names every one of ``words`` (frame, cause…)."""
        missing = [w for w in words if w.lower() not in self.state.last_error.lower()]
        if missing:
            raise AssertionError(f"error message {self.state.last_error!r} does not mention {', '.join(missing)}")

    @keyword
    def select_pin_file(self, pin: str = "auth") -> None:
        """SELECTs the applet and the EF of PIN ``auth``/``sign``/``text`` (so a fault can be armed before VERIFY)."""
        kind = PinKind.named(pin)
        client = JpkiClient(self.ctx.require_channel())
        client.select_applet(kind.applet)
        client.select_ef(kind.fid)

    @keyword
    def send_wrong_pin(self, pin: str = "auth") -> str:
        """VERIFYs a wrong PIN of the right format on the selected PIN EF, once, through the PIN guard; returns
        the status word. Only on an expendable card: a real card's tries are not spent on transport requirements."""
        if not self.ctx.facts.expendable:
            raise SkipExecution(f"{self.ctx.device_name} is not expendable: a wrong PIN would cost a real try")
        return sw_hex(self.ctx.guard().verify_wrong(PinKind.named(pin), select=False).sw)

    # -- card events -------------------------------------------------------------------------------------
    @keyword
    def card_event_should_be_notified(self, event: str, timeout: float = 2.0) -> None:
        """Fails unless the module's ``inserted``/``removed`` notification reaches the host within ``timeout``
        seconds, without the host asking (no status command is sent)."""
        reader = self._reader()
        before = reader.stats.events
        wanted = event.removeprefix("card_")
        deadline = time.monotonic() + float(timeout)
        while time.monotonic() < deadline:
            reader.link.poll(0.05)
            if reader.stats.events > before and reader.present_by_events == (wanted == "inserted"):
                return
        raise AssertionError(f"no card {wanted} notification within {timeout} s")

def _power_cycle(reader: Reader) -> None:
    try:
        reader.power_off()
    except DeviceError as exc:
        logger.info(f"power off: {exc}")
    reader.wait_for_card(2.0)
    reader.power_on()
