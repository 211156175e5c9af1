"""One grammar for every device name: ``scheme:body[?name=value&…]``.

Each backend declares the options it understands as :class:`Option` rows; :meth:`DeviceUri.typed`
turns the raw strings into values and refuses, in one line naming the option, an option nobody
declared (a typo such as ``extened=0`` must not silently test something else), an option given
twice with different values, and a value of the wrong kind or out of range. On/off options all go
through :func:`parse_flag`, so ``0``, ``no``, ``false`` and ``off`` mean the same on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .base import UnknownDevice

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
MAX_URI = 4096  # a device name longer than this is not a name


class BadDeviceUri(UnknownDevice):
    """A device URI that does not follow the grammar or its backend's options; one line."""


def parse_flag(value: str, name: str, where: str = "") -> bool:
    """``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case); anything else is an error."""
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    prefix = f"{where}: " if where else ""
    raise BadDeviceUri(f"{prefix}option {name}={value!r} is not on/off; use 1 or 0 (or true/false, yes/no, on/off)")


@dataclass(frozen=True)
class Option:
    """One URI option: ``kind`` is ``flag``, ``auto_flag`` (a flag or ``auto``), ``int``, ``float``,
    ``choice``, ``text`` or ``bare`` (a pyserial-style switch that may come without a value)."""

    name: str
    kind: str = "flag"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def convert(self, value: str, where: str) -> Any:
        if self.kind == "flag":
            return parse_flag(value, self.name, where)
        if self.kind == "auto_flag":  # ``auto`` (None): let the backend find out
            return None if value.strip().lower() == "auto" else parse_flag(value, self.name, where)
        if self.kind in ("text", "bare"):
            if self.kind == "text" and not value.strip():
                raise BadDeviceUri(f"{where}: option {self.name}= needs a value")
            return value
        if self.kind == "choice":
            word = value.strip().lower()
            if word not in self.choices:
                raise BadDeviceUri(f"{where}: option {self.name}={value!r}; use {' or '.join(self.choices)}")
            return word
        number = self._number(value, where)
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise BadDeviceUri(f"{where}: option {self.name}={value!r} is outside {self._range()}")
        return number

    def _number(self, value: str, where: str) -> int | float:
        text = value.strip()
        try:
            if self.kind == "int":
                if not text.lstrip("+-").isdigit() or len(text) > 12:
                    raise ValueError
                return int(text)
            number = float(text)
        except ValueError:
            what = "a whole number" if self.kind == "int" else "a number"
            raise BadDeviceUri(f"{where}: option {self.name}={value!r} is not {what}") from None
        if not math.isfinite(number):
            raise BadDeviceUri(f"{where}: option {self.name}={value!r} is not a finite number")
        return number

    def _range(self) -> str:
        def show(x: float | None) -> str:
            return "" if x is None else f"{x:g}"
        return f"{show(self.low)}..{show(self.high)}"


# Read by harness.terminals: which service terminal a reader sits in; every backend accepts it.
TERMINAL_OPTION = Option("terminal", "choice", choices=("kiosk", "stb"))


def options_named(rows: Iterable[Option]) -> dict[str, Option]:
    return {row.name: row for row in rows}


@dataclass(frozen=True)
class DeviceUri:
    """A device name taken apart: ``virtual:card?via=pcsc&t0=1`` → scheme ``virtual``, body ``card``,
    options ``{"via": "pcsc", "t0": "1"}`` (raw strings, percent-decoded, in the order given)."""

    text: str
    scheme: str
    body: str
    options: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> DeviceUri:
        if not isinstance(text, str):
            raise BadDeviceUri(f"a device name must be text, got {type(text).__name__}")
        if len(text) > MAX_URI:
            raise BadDeviceUri(f"a device name of {len(text)} characters is too long (limit {MAX_URI})")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            raise BadDeviceUri(f"{text!r}: a device name has no control characters")
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme:
            raise BadDeviceUri(f"'{text}' is not a device URI (scheme:…)")
        body, _, query = rest.partition("?")
        options: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if not name:
                raise BadDeviceUri(f"{text}: an option without a name ('={value}')")
            if name in options and options[name] != value:
                raise BadDeviceUri(f"{text}: option {name} given twice ({options[name]!r} and {value!r})")
            options[name] = value
        return cls(text, scheme, body, options)

    def check_known(self, allowed: Iterable[Option] | Mapping[str, Option], context: str = "") -> None:
        """Refuse any option not in ``allowed``, naming it and the known ones."""
        known = allowed if isinstance(allowed, Mapping) else options_named(allowed)
        unknown = [name for name in self.options if name not in known]
        if unknown:
            where = f" {context}" if context else ""
            raise BadDeviceUri(f"{self.text}: unknown option{'s' if len(unknown) > 1 else ''} "
                               f"{', '.join(unknown)}{where}; known: {', '.join(known) or 'none'}")

    def typed(self, allowed: Iterable[Option] | Mapping[str, Option], context: str = "") -> dict[str, Any]:
        """The options as values (flags as bool, numbers as int/float), refusing unknown ones."""
        known = allowed if isinstance(allowed, Mapping) else options_named(allowed)
        self.check_known(known, context)
        return {name: known[name].convert(value, self.text) for name, value in self.options.items()}

    def forbid_together(self, values: Mapping[str, Any], first: str, second: str, why: str) -> None:
        if first in values and second in values:
            raise BadDeviceUri(f"{self.text}: options {first} and {second} conflict: {why}")
