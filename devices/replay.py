"""``replay:RECORDING.jsonl``: a reader whose card answers as a recorded card did.

A card's answer depends on the command and on the state it has reached: what was selected, verified and
read since it was powered on (its volatile state) and its counters (its lasting state). The replay
follows the same: each recorded exchange is filed under the path of commands that led to it since the
last power-on; a command is answered from the recorded exchange with the same command on the same path,
the first after the last one answered (the lasting state moves forward with the recording). When no
test took that path, a command recorded with the same applet and EF selected answers. VERIFY and CHANGE
data are written as markers (``****(4 digits)``), so any PIN of the same length and class matches. A
command the recording never saw fails with a :class:`~devices.base.ProtocolError` that names it.

Imports only the device base, the fixtures and the ISO-level names: any backend's recording replays here.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import fixtures
from harness.iso.apdu_names import command_hex, command_name

from . import base
from .base import DeviceError, ProtocolError, Reader, ReaderCapabilities

ROOT = 0  # the path id of a freshly powered card


class RecordingError(DeviceError):
    """The recording cannot be read (missing, not JSON lines, no exchanges)."""


@dataclass(frozen=True)
class Recorded:
    position: int
    command: str
    name: str
    response: str  # hex, or the structure of a masked personal file
    masked: bool
    error: str
    test: str


@dataclass
class Recording:
    header: dict[str, Any]
    atrs: list[tuple[int, str]]  # (position, ATR hex) of every power-on
    by_path: dict[int, list[Recorded]] = field(default_factory=lambda: defaultdict(list))
    by_selection: dict[tuple[str, str, str], list[Recorded]] = field(default_factory=lambda: defaultdict(list))
    commands: set[str] = field(default_factory=set)
    count: int = 0


def _path(parent: int, command: str) -> int:
    return hash((parent, command))


def _selection(selection: tuple[str, str], command: str) -> tuple[str, str, str]:
    return (selection[0], selection[1], command)


def _select(selection: tuple[str, str], command: str) -> tuple[str, str]:
    """The applet and EF a card has selected after ``command`` (hex), as far as the command says."""
    parts = command.split()
    if len(parts) > 5 and parts[1] == "A4":
        data = "".join(parts[5:5 + int(parts[4], 16)])
        if parts[2] == "04":
            return data, ""
        if len(data) == 4:
            return selection[0], data
    return selection


def load_recording(path: Path) -> Recording:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise RecordingError(f"replay: no recording {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"replay: cannot read {path}: {exc}") from None
    header: dict[str, Any] = {}
    recording = Recording(header, [])
    path_id, selection, position = ROOT, ("", ""), 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["type"]
        except (json.JSONDecodeError, TypeError, KeyError):
            raise RecordingError(f"replay: {path}:{number} is not a trace record") from None
        if kind == "header" and not header:
            header.update(record)
        elif kind == "power_on":
            path_id, selection = ROOT, ("", "")
            recording.atrs.append((position, str(record.get("atr", ""))))
        elif kind == "exchange" and record.get("by", "harness") == "harness":
            position += 1
            command = str(record["command"])
            entry = Recorded(position, command, str(record.get("name", "")), str(record.get("response", "")),
                             bool(record.get("masked")), str(record.get("error", "")), str(record.get("test", "")))
            path_id = _path(path_id, command)
            recording.by_path[path_id].append(entry)
            recording.by_selection[_selection(selection, command)].append(entry)
            recording.commands.add(command)
            selection = _select(selection, command)
    if not position:
        raise RecordingError(f"replay: {path} holds no exchanges")
    if not recording.atrs:
        raise RecordingError(f"replay: {path} holds no power-on (no ATR)")
    recording.count = position
    return recording


def _after(entries: list[Recorded], cursor: int) -> Recorded:
    return next((e for e in entries if e.position > cursor), entries[0])


_ERRORS = {name: getattr(base, name) for name in ("CardRemoved", "DeviceTimeout", "DeviceGone", "NoCard",
                                                  "ProtocolError", "DeviceBusy")}


class ReplayReader(Reader):
    """Answers from a recording; ``recorded_header`` tells the harness the recorded card's facts."""

    def __init__(self, uri: str, recording: Recording) -> None:
        self.uri = uri
        self.recording = recording
        self.recorded_header = recording.header
        self.path_id, self.selection, self.cursor = ROOT, ("", ""), 0
        self.powered = False
        self.answered = 0

    @property
    def capabilities(self) -> ReaderCapabilities:
        recorded = dict(self.recording.header.get("capabilities") or {})
        known = {k: recorded[k] for k in ("extended_apdu", "max_command_data", "max_response", "contactless",
                                          "pin_pad") if k in recorded}
        return ReaderCapabilities(**known, details={"recording": self.uri.partition(":")[2]})

    def wait_for_card(self, timeout: float) -> None:
        return None

    def power_on(self) -> bytes:
        self.path_id, self.selection, self.powered = ROOT, ("", ""), True
        atr = next((a for p, a in self.recording.atrs if p >= self.cursor), self.recording.atrs[0][1])
        return bytes.fromhex(atr.replace(" ", ""))

    def power_off(self) -> None:
        self.powered = False

    def find(self, command: str, apdu: bytes = b"") -> Recorded:
        """The recorded exchange that answers ``command`` in the state reached (see the module's doc)."""
        path_id = _path(self.path_id, command)
        entries = self.recording.by_path.get(path_id) or self.recording.by_selection.get(
            _selection(self.selection, command))
        if entries:
            return _after(entries, self.cursor)
        name = command_name(apdu or bytes.fromhex("".join(command.split()[:4])))
        if command in self.recording.commands:
            raise ProtocolError(f"replay: {name} {command} was recorded, but not with applet "
                                f"{self.selection[0] or 'none'} / EF {self.selection[1] or 'none'} selected")
        raise ProtocolError(f"replay: {name} {command} was never recorded in {self.uri.partition(':')[2]}")

    def transmit(self, apdu: bytes) -> bytes:
        if not self.powered:
            raise base.NoCard(f"{self.uri}: the card is not powered")
        command = command_hex(bytes(apdu))
        entry = self.find(command, bytes(apdu))
        self.path_id = _path(self.path_id, command)
        self.selection = _select(self.selection, command)
        self.cursor = entry.position
        self.answered += 1
        if entry.error:
            kind, _, message = entry.error.partition(": ")
            raise _ERRORS.get(kind, DeviceError)(f"replay of {entry.test or 'the recording'}: {message or kind}")
        if entry.masked:
            raise ProtocolError(f"replay: the answer to {entry.name} {command} was recorded masked (holder data); "
                                "record with --anonymise (or --show-holder-data for a synthetic holder)")
        return bytes.fromhex(entry.response.replace(" ", ""))


def recording_path(spec: str) -> Path:
    """The file of ``replay:SPEC``: as given (relative to the working directory), else under fixtures/."""
    path = Path(spec)
    if path.exists() or path.is_absolute():
        return path
    under = fixtures.fixtures_dir() / spec.removeprefix("fixtures/")
    return under if under.exists() else path


def open_replay(uri: str) -> ReplayReader:
    spec = uri.partition(":")[2]
    if not spec:
        raise base.UnknownDevice("replay: give the recording, e.g. replay:fixtures/recordings/card.jsonl")
    return ReplayReader(uri, load_recording(recording_path(spec)))
