"""The message layer inside a frame: commands, responses and card events, laid out as a protocol file says.

A layout is an ordered list of fields from a small vocabulary — ``code``, ``seq``,
``status``, ``data`` (``data`` last) — so one codec serves most modules:

- binary: ``code``, ``seq`` and ``status`` are one byte each, ``data`` is the rest;
- text: fields are space-separated tokens, ``seq`` two hex digits, ``data`` hex (omitted when empty).

Names are the harness's vocabulary (``power_on``, ``transmit``, ``card_removed``…);
the protocol file maps them to the module's codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIELDS = ("code", "seq", "status", "data")
COMMANDS = ("power_on", "power_off", "status", "transmit")
EVENTS = ("card_inserted", "card_removed")
STATUSES = ("ok", "no_card", "card_removed", "card_error", "not_powered", "bad_command")
REQUIRED_STATUSES = ("ok", "no_card", "card_removed", "card_error")
CARD_STATES = ("absent", "present", "powered")


class CodecError(ValueError):
    """A frame whose payload is not a message of this protocol (too short, unknown code, bad hex)."""


@dataclass(frozen=True)
class Message:
    kind: str  # "command", "response" or "event"
    name: str  # harness name, or the raw code as text when the protocol does not know it
    seq: int | None = None
    status: str | None = None
    data: bytes = b""
    known: bool = True

    def describe(self) -> str:
        seq = "" if self.seq is None else f" seq {self.seq}"
        status = "" if self.status is None else f" {self.status}"
        return f"{self.kind} {self.name}{seq}{status} ({len(self.data)} data bytes)"


@dataclass(frozen=True)
class Layouts:
    command: tuple[str, ...]
    response: tuple[str, ...]
    event: tuple[str, ...]

    @property
    def has_seq(self) -> bool:
        return "seq" in self.command and "seq" in self.response


@dataclass(frozen=True)
class MessageCodec:
    """Encodes and decodes messages; ``binary`` selects byte fields, else text tokens."""

    binary: bool
    layouts: Layouts
    commands: dict[str, int | str]
    events: dict[str, int | str]
    statuses: dict[str, int | str]
    card_states: dict[str, int] = field(default_factory=lambda: {"absent": 0, "present": 1, "powered": 2})

    # -- encoding ----------------------------------------------------------------------
    def command(self, name: str, seq: int, data: bytes = b"") -> bytes:
        return self._encode(self.layouts.command, self.commands[name], seq, None, data)

    def response(self, command_code: int | str, seq: int | None, status: str, data: bytes = b"") -> bytes:
        return self._encode(self.layouts.response, command_code, seq, self.statuses[status], data)

    def event(self, name: str) -> bytes:
        return self._encode(self.layouts.event, self.events[name], None, None, b"")

    def _encode(self, layout: tuple[str, ...], code: int | str, seq: int | None, status: int | str | None,
                data: bytes) -> bytes:
        values = {"code": code, "seq": seq or 0, "status": status, "data": data}
        if self.binary:
            out = bytearray()
            for name in layout:
                out += values[name] if name == "data" else bytes((int(values[name]),))  # type: ignore[arg-type]
            return bytes(out)
        tokens = []
        for name in layout:
            if name == "data":
                if data:
                    tokens.append(data.hex().upper())
            elif name == "seq":
                tokens.append(f"{seq or 0:02X}")
            else:
                tokens.append(str(values[name]))
        return " ".join(tokens).encode("ascii")

    # -- decoding ----------------------------------------------------------------------
    def _fields(self, payload: bytes, layout: tuple[str, ...]) -> dict[str, object]:
        values: dict[str, object] = {"data": b""}
        if self.binary:
            fixed = [name for name in layout if name != "data"]
            if len(payload) < len(fixed):
                raise CodecError(f"payload of {len(payload)} bytes is shorter than its {len(fixed)} header fields")
            for index, name in enumerate(fixed):
                values[name] = payload[index]
            values["data"] = payload[len(fixed) :]
            return values
        try:
            tokens = payload.decode("ascii").split(" ")
        except UnicodeDecodeError:
            raise CodecError("text payload is not ASCII") from None
        fixed = [name for name in layout if name != "data"]
        if len(tokens) < len(fixed) or len(tokens) > len(layout):
            raise CodecError(f"{len(tokens)} tokens where the layout {list(layout)} expects {len(fixed)}-{len(layout)}")
        for index, name in enumerate(layout):
            if index >= len(tokens):
                break
            token = tokens[index]
            if name == "seq":
                try:
                    values[name] = int(token, 16)
                except ValueError:
                    raise CodecError(f"sequence token {token!r} is not hex") from None
            elif name == "data":
                try:
                    values[name] = bytes.fromhex(token)
                except ValueError:
                    raise CodecError(f"data token is not hex ({token[:16]!r}…)") from None
            else:
                values[name] = token
        return values

    @staticmethod
    def _name(table: dict[str, int | str], code: object) -> str | None:
        for name, value in table.items():
            if value == code:
                return name
        return None

    def _raw(self, code: object) -> str:
        return f"0x{code:02X}" if isinstance(code, int) else str(code)

    def decode_command(self, payload: bytes) -> Message:
        """A host command as the firmware sees it; an unknown code gives ``known=False``."""
        values = self._fields(payload, self.layouts.command)
        code = values.get("code")
        name = self._name(self.commands, code)
        seq = values.get("seq")
        return Message("command", name or self._raw(code), seq if isinstance(seq, int) else None, None,
                       values["data"], known=name is not None)  # type: ignore[arg-type]

    def command_code(self, message: Message) -> int | str:
        if message.known:
            return self.commands[message.name]
        return int(message.name, 16) if self.binary else message.name

    def decode_from_reader(self, payload: bytes) -> Message:
        """A response or an unsolicited event: events are told apart by their first field, a known event code."""
        first = self.layouts.event[0]
        try:
            probe = self._fields(payload, self.layouts.event)
        except CodecError:
            probe = {}
        event_name = self._name(self.events, probe.get(first)) if probe else None
        if event_name is not None:
            return Message("event", event_name, data=probe["data"])  # type: ignore[arg-type]
        values = self._fields(payload, self.layouts.response)
        status_code = values.get("status")
        status = self._name(self.statuses, status_code) if "status" in values else "ok"
        if status is None:
            status = self._raw(status_code)
        command = self._name(self.commands, values["code"]) if "code" in values else None
        name = command or (self._raw(values["code"]) if "code" in values else "response")
        seq = values.get("seq")
        return Message("response", name, seq if isinstance(seq, int) else None, status,
                       values["data"])  # type: ignore[arg-type]

    def card_state_name(self, data: bytes) -> str:
        if len(data) != 1:
            raise CodecError(f"status data is {len(data)} bytes, expected one card-state byte")
        name = self._name(self.card_states, data[0])  # type: ignore[arg-type]
        if name is None:
            raise CodecError(f"card state 0x{data[0]:02X} is none of {self.card_states}")
        return name
