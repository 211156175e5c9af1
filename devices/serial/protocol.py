"""Protocol files: one TOML file describes a serial reader module completely.

``fixtures/protocols/<name>.toml`` (or any ``.toml`` path) gives the line settings,
timeouts and retries, the framing, the message layout and the codes of commands,
card events and statuses. Both the host (:class:`~devices.serial.reader.SerialReader`)
and the virtual firmware are driven by it, so attaching a real module means writing
one file (see ``fixtures/protocols/README.md``).

A malformed file is bad input: :class:`ProtocolFileError` says in one line which file,
which line (when it can be found) and which key is wrong.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness import fixtures

from .checksums import BINARY_CHECKSUMS, TEXT_CHECKSUMS
from .framing import Framing, LengthFraming, LineFraming, StxEtxFraming
from .messages import CARD_STATES, COMMANDS, EVENTS, FIELDS, REQUIRED_STATUSES, STATUSES, Layouts, MessageCodec

PROTOCOLS_DIR = fixtures.protocols_dir()
PARITIES = ("N", "E", "O", "M", "S")
FRAMING_KINDS = ("stx_etx", "length", "line")
MAX_PROTOCOL_BYTES = 256 << 10  # the reference files take 3 KiB
SECTIONS = ("protocol", "serial", "timing", "reader", "framing", "layout", "commands", "events", "status",
            "card_state")


class ProtocolFileError(ValueError):
    """A protocol file that cannot be used; one line naming the file, line and key."""


@dataclass(frozen=True)
class SerialSettings:
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1
    rtscts: bool = False
    xonxoff: bool = False


@dataclass(frozen=True)
class Timing:
    """Seconds. ``apdu_timeout`` is how long a card may take (signing); ``retries`` counts re-sends."""

    ack_timeout: float = 0.3
    response_timeout: float = 1.0
    apdu_timeout: float = 5.0
    inter_byte_timeout: float = 0.1
    retries: int = 3


@dataclass(frozen=True)
class ReaderLimits:
    extended_apdu: bool = False
    max_command_data: int = 255
    max_response: int = 256


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    description: str
    terminal: str
    serial: SerialSettings
    timing: Timing
    limits: ReaderLimits
    framing: Framing
    codec: MessageCodec
    path: Path | None = None

    def with_options(self, options: dict[str, str], where: str) -> ProtocolSpec:
        """The spec with line settings and timing overridden by URI options (``?baudrate=…&retries=…``)."""
        serial_changes: dict[str, Any] = {}
        timing_changes: dict[str, Any] = {}
        try:
            for key, value in options.items():
                if key in ("baudrate", "bytesize"):
                    serial_changes[key] = int(value)
                elif key == "stopbits":
                    serial_changes[key] = float(value) if "." in value else int(value)
                elif key == "parity":
                    if value.upper() not in PARITIES:
                        raise ValueError
                    serial_changes[key] = value.upper()
                elif key == "retries":
                    timing_changes[key] = int(value)
                elif key in Timing.__dataclass_fields__:
                    timing_changes[key] = float(value)
        except ValueError:
            raise ProtocolFileError(f"{where}: option {key}={value!r} is not a valid value") from None
        spec = replace(self, serial=replace(self.serial, **serial_changes),
                       timing=replace(self.timing, **timing_changes))
        if "inter_byte_timeout" in timing_changes:
            spec = replace(spec, framing=replace(spec.framing, inter_byte_timeout=spec.timing.inter_byte_timeout))
        return spec


def protocol_path(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".toml":
        return candidate
    return PROTOCOLS_DIR / f"{name}.toml"


def available_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOLS_DIR.glob("*.toml"))


class _File:
    """Typed access to the parsed TOML with errors that name file, line and key."""

    def __init__(self, path: Path, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.data = data

    def line_of(self, section: str, key: str | None = None) -> int | None:
        header = re.compile(rf"^\s*\[\s*{re.escape(section)}\s*\]")
        in_section = False
        for number, line in enumerate(self.lines, 1):
            if header.match(line):
                if key is None:
                    return number
                in_section = True
                continue
            if in_section and re.match(r"^\s*\[", line):
                break
            if in_section and key is not None and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return number
        return None

    def error(self, section: str, key: str | None, message: str) -> ProtocolFileError:
        line = self.line_of(section, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        label = f"[{section}] {key}" if key else f"[{section}]"
        return ProtocolFileError(f"{where}: {label} {message}")

    def table(self, section: str, *, required: bool = True, known: tuple[str, ...] | None = None) -> dict[str, Any]:
        value = self.data.get(section)
        if value is None:
            if required:
                raise ProtocolFileError(f"{self.path}: missing section [{section}]")
            return {}
        if not isinstance(value, dict):
            raise self.error(section, None, "must be a table")
        if known is not None:
            for key in value:
                if key not in known:
                    raise self.error(section, key, f"is not a known key (known: {', '.join(known)})")
        return value

    def get(self, section: str, key: str, kind: type | tuple[type, ...], default: Any = ..., *,
            choices: tuple[Any, ...] | None = None, low: float | None = None, high: float | None = None) -> Any:
        table = self.data.get(section, {})
        if key not in table:
            if default is ...:
                raise self.error(section, key, "is missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.error(section, key, f"must be {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.error(section, key, f"must be {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(section, key, f"{value!r} is not one of {', '.join(map(str, choices))}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(section, key, f"{value!r} is outside {low}..{high}")
        return value


def _byte(f: _File, section: str, key: str, default: Any = ...) -> int | None:
    value = f.get(section, key, int, default)
    if value is None:
        return None
    if not 0 <= value <= 0xFF:
        raise f.error(section, key, f"{value} is not a byte (0x00..0xFF)")
    return value


def _framing(f: _File, timing: Timing) -> Framing:
    kind = f.get("framing", "kind", str, choices=FRAMING_KINDS)
    common = {"inter_byte_timeout": timing.inter_byte_timeout}
    if kind == "line":
        f.table("framing", known=("kind", "eol", "checksum", "ack", "nak", "max_line"))
        eol = f.get("framing", "eol", str, "\r\n")
        if not eol or not eol.isascii():
            raise f.error("framing", "eol", "must be a non-empty ASCII string such as \"\\r\\n\"")
        return LineFraming(
            eol=eol.encode("ascii"),
            checksum=f.get("framing", "checksum", str, "none", choices=tuple(TEXT_CHECKSUMS)),
            ack=f.get("framing", "ack", str, None),
            nak=f.get("framing", "nak", str, None),
            max_line=f.get("framing", "max_line", int, 4200, low=16, high=1 << 20),
            **common,
        )
    binary_keys = ("kind", "length_bytes", "length_order", "checksum", "ack", "nak", "max_payload")
    if kind == "stx_etx":
        f.table("framing", known=(*binary_keys, "stx", "etx"))
    else:
        f.table("framing", known=(*binary_keys, "sync"))
    length_bytes = f.get("framing", "length_bytes", int, 2, choices=(1, 2, 4))
    max_payload = f.get("framing", "max_payload", int, 1024, low=8, high=1 << 20)
    if max_payload >= 1 << (8 * length_bytes):
        raise f.error("framing", "max_payload", f"{max_payload} does not fit a {length_bytes}-byte length field")
    binary = {
        "length_bytes": length_bytes,
        "length_order": f.get("framing", "length_order", str, "big", choices=("big", "little")),
        "checksum": f.get("framing", "checksum", str, "bcc", choices=tuple(BINARY_CHECKSUMS)),
        "ack": _byte(f, "framing", "ack", None),
        "nak": _byte(f, "framing", "nak", None),
        "max_payload": max_payload,
    }
    if (binary["ack"] is None) != (binary["nak"] is None):
        raise f.error("framing", "ack" if binary["ack"] is None else "nak", "must be given together with its pair")
    if kind == "stx_etx":
        stx, etx = _byte(f, "framing", "stx", 0x02), _byte(f, "framing", "etx", 0x03)
        if stx in (binary["ack"], binary["nak"]):
            raise f.error("framing", "stx", "must differ from ack and nak")
        return StxEtxFraming(stx=stx, etx=etx, **binary, **common)  # type: ignore[arg-type]
    sync_hex = f.get("framing", "sync", str, "")
    try:
        sync = bytes.fromhex(sync_hex)
    except ValueError:
        raise f.error("framing", "sync", f"{sync_hex!r} is not hex") from None
    if binary["ack"] is not None and not sync:
        raise f.error("framing", "ack", "needs a sync header: without one an ACK byte reads as a length")
    if sync and sync[0] in (binary["ack"], binary["nak"]):
        raise f.error("framing", "sync", "must not start with the ack or nak byte")
    return LengthFraming(sync=sync, **binary, **common)  # type: ignore[arg-type]


def _codes(f: _File, section: str, names: tuple[str, ...], required: tuple[str, ...], binary: bool) -> dict:
    table = f.table(section, known=names)
    codes: dict[str, int | str] = {}
    for name in names:
        if name not in table:
            if name in required:
                raise f.error(section, name, "is missing")
            continue
        if binary:
            codes[name] = _byte(f, section, name)  # type: ignore[assignment]
        else:
            token = f.get(section, name, str)
            if not token or " " in token or not token.isascii():
                raise f.error(section, name, f"{token!r} must be one ASCII token without spaces")
            codes[name] = token
    seen: dict[int | str, str] = {}
    for name, code in codes.items():
        if code in seen:
            raise f.error(section, name, f"repeats the code of {seen[code]}")
        seen[code] = name
    return codes


def _layout(f: _File, key: str, default: list[str]) -> tuple[str, ...]:
    fields = f.get("layout", key, list, default)
    if not fields or any(not isinstance(x, str) or x not in FIELDS for x in fields):
        raise f.error("layout", key, f"must list fields among {', '.join(FIELDS)}")
    if len(set(fields)) != len(fields) or ("data" in fields and fields[-1] != "data"):
        raise f.error("layout", key, "must name each field once, with data last")
    return tuple(fields)


def load_protocol(name_or_path: str | Path) -> ProtocolSpec:
    """Load and check a protocol file by name (``kiosk``) or path."""
    path = protocol_path(str(name_or_path))
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PROTOCOL_BYTES + 1)
    except FileNotFoundError:
        raise ProtocolFileError(f"no protocol file '{name_or_path}' ({path}); "
                                f"known: {', '.join(available_protocols())}") from None
    except OSError as exc:
        raise ProtocolFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_PROTOCOL_BYTES:
        raise ProtocolFileError(f"{path}: larger than {MAX_PROTOCOL_BYTES >> 10} KiB, the limit for a protocol file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolFileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        where = f"{path}:{match.group(1)}" if match else str(path)
        raise ProtocolFileError(f"{where}: not valid TOML: {message}") from None
    except RecursionError:
        raise ProtocolFileError(f"{path}: arrays or tables nested too deeply for a protocol file") from None
    f = _File(path, text, data)
    for section in data:
        if section not in SECTIONS:
            raise ProtocolFileError(f"{path}:{f.line_of(section) or '?'}: unknown section [{section}] "
                                    f"(known: {', '.join(SECTIONS)})")

    f.table("protocol", known=("name", "description", "terminal"))
    name = f.get("protocol", "name", str)
    description = f.get("protocol", "description", str, "")
    terminal = f.get("protocol", "terminal", str, "")

    f.table("serial", required=False, known=tuple(SerialSettings.__dataclass_fields__))
    serial = SerialSettings(
        baudrate=f.get("serial", "baudrate", int, 9600, low=50, high=4_000_000),
        bytesize=f.get("serial", "bytesize", int, 8, choices=(5, 6, 7, 8)),
        parity=f.get("serial", "parity", str, "N", choices=PARITIES),
        stopbits=f.get("serial", "stopbits", (int, float), 1, choices=(1, 1.5, 2)),
        rtscts=f.get("serial", "rtscts", bool, False),
        xonxoff=f.get("serial", "xonxoff", bool, False),
    )
    f.table("timing", required=False, known=tuple(Timing.__dataclass_fields__))
    seconds = {key: float(f.get("timing", key, (int, float), default, low=0.001, high=600))
               for key, default in (("ack_timeout", 0.3), ("response_timeout", 1.0), ("apdu_timeout", 5.0),
                                    ("inter_byte_timeout", 0.1))}
    timing = Timing(**seconds, retries=f.get("timing", "retries", int, 3, low=0, high=10))
    f.table("reader", required=False, known=tuple(ReaderLimits.__dataclass_fields__))
    extended = f.get("reader", "extended_apdu", bool, False)
    limits = ReaderLimits(
        extended_apdu=extended,
        max_command_data=f.get("reader", "max_command_data", int, 255, low=1, high=65535),
        max_response=f.get("reader", "max_response", int, 256, low=1, high=65536),
    )

    f.table("framing")
    framing = _framing(f, timing)
    binary = not isinstance(framing, LineFraming)

    f.table("layout", required=False, known=("command", "response", "event"))
    layouts = Layouts(
        command=_layout(f, "command", ["code", "seq", "data"]),
        response=_layout(f, "response", ["code", "seq", "status", "data"]),
        event=_layout(f, "event", ["code", "data"]),
    )
    if "code" not in layouts.command or "data" not in layouts.command:
        raise f.error("layout", "command", "must contain code and data")
    if "status" not in layouts.response or "data" not in layouts.response:
        raise f.error("layout", "response", "must contain status and data")
    if layouts.response[0] not in ("code", "status"):
        raise f.error("layout", "response", "must start with code or status (events are told apart by it)")
    if layouts.event[0] != "code" or "seq" in layouts.event or "status" in layouts.event:
        raise f.error("layout", "event", "must start with code and hold only code and data")
    if not framing.has_ack_nak and not layouts.has_seq:
        raise f.error("layout", "command", "needs seq in command and response: without ACK/NAK a re-sent "
                                           "command must be recognisable, or a VERIFY could count twice")

    commands = _codes(f, "commands", COMMANDS, COMMANDS, binary)
    events = _codes(f, "events", EVENTS, EVENTS, binary)
    statuses = _codes(f, "status", STATUSES, REQUIRED_STATUSES, binary)
    first = commands if layouts.response[0] == "code" else statuses
    clash = [name for name, code in events.items() if code in first.values()]
    if clash:
        raise f.error("events", clash[0], f"code {events[clash[0]]!r} is also a "
                                          f"{'command' if first is commands else 'status'} code: a response "
                                          "would read as an event")
    f.table("card_state", required=False, known=CARD_STATES)
    states = {state: _byte(f, "card_state", state, default) for state, default in
              (("absent", 0), ("present", 1), ("powered", 2))}
    if len(set(states.values())) != 3:
        raise f.error("card_state", None, "values must differ")

    codec = MessageCodec(binary, layouts, commands, events, statuses, states)  # type: ignore[arg-type]
    _check_capacity(f, framing, codec, limits)
    return ProtocolSpec(name, description, terminal, serial, timing, limits, framing, codec, path)


def _check_capacity(f: _File, framing: Framing, codec: MessageCodec, limits: ReaderLimits) -> None:
    """The largest APDU each way must fit one frame, or the module could not carry what [reader] promises."""
    apdu_overhead = 9 if limits.extended_apdu else 6  # header, Lc and Le of the largest case-4 APDU
    largest = {"command": (codec.layouts.command, limits.max_command_data + apdu_overhead),
               "response": (codec.layouts.response, limits.max_response + 2)}
    for direction, (layout, data) in largest.items():
        fixed = [name for name in layout if name != "data"]
        if codec.binary:
            needed, key, room = len(fixed) + data, "max_payload", getattr(framing, "max_payload", 0)
        else:
            widths = {"code": max(len(str(c)) for c in codec.commands.values()), "seq": 2,
                      "status": max(len(str(c)) for c in codec.statuses.values())}
            needed = sum(widths[name] + 1 for name in fixed) + 2 * data + 3
            key, room = "max_line", getattr(framing, "max_line", 0)
        if room < needed:
            raise f.error("framing", key, f"{room} cannot carry the largest {direction} [reader] allows "
                                          f"({data} APDU bytes): it needs at least {needed}")
