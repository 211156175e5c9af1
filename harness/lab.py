"""The lab inventory: device names → URIs, what each can do, and what the card behind it is.

A TOML file (read with the standard library)::

    [devices.desk3-rcs380]
    uri = "nfc:usb:054c:06c3"
    description = "Sony RC-S380, desk 3"
    contactless = true
    extended_apdu = true
    pool = "contactless"          # optional: hil run --device pool:contactless --processes N shares the pool
    [devices.desk3-rcs380.card]
    kind = "card"                 # or "phone"
    expendable = false            # true only for cards the lab may lock for good
    holder = "card"               # expected holder in fixtures/pki/holders.toml (test cards)
    pin_env = { auth = "DESK3_AUTH_PIN", sign = "DESK3_SIGN_PIN" }   # PINs come from the environment
    pin_reserve = { auth = 2 }    # wrong tries the guard always leaves on the card (1 or more)

The loader is strict, because a typo here decides whether a real card may be locked: an unknown key
in any table, a value of the wrong type (``expendable = "false"``), a reserve below 1 or an unknown
holder is an :class:`InventoryError` of one line naming the file and the line. Line numbers are
indexed once, so a large inventory loads in linear time; a file above :data:`MAX_INVENTORY_BYTES`
is refused before it is parsed.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.base import DeviceError
from devices.registry import check_uri
from harness.credentials import PIN_KINDS, DeviceFacts, expected_certificates
from harness.fixtures import FixturesError, load_holder

INVENTORY_ENV = "HIL_INVENTORY"
CARD_KINDS = ("card", "phone")
MAX_INVENTORY_BYTES = 4 << 20  # 16,000 fully described readers take 3 MiB
MAX_RESERVE = 16
DEVICE_KEYS = ("uri", "description", "contactless", "extended_apdu", "pin_pad", "pool", "card")
CARD_KEYS = ("kind", "expendable", "holder", "pin_env", "pin_reserve")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class InventoryError(ValueError):
    """A malformed inventory; the message is one line naming the file and line."""


@dataclass(frozen=True)
class LabDevice:
    name: str
    uri: str
    description: str = ""
    contactless: bool = False
    extended_apdu: bool = False
    pin_pad: bool = False
    kind: str = "card"
    expendable: bool = False
    holder: str | None = None
    pin_env: dict[str, str] = field(default_factory=dict)
    pin_reserve: dict[str, int] = field(default_factory=dict)
    pool: str = ""  # the device pool it belongs to (``--device pool:<name>``), empty for none

    def facts(self) -> DeviceFacts:
        """What the suites may assume of the card, with PINs read from the named environment variables."""
        pins = {kind: os.environ[var] for kind, var in self.pin_env.items() if os.environ.get(var)}
        facts = DeviceFacts(kind=self.kind, expendable=self.expendable, pins=pins)
        if self.pin_reserve:
            facts.pin_reserve.update(self.pin_reserve)
        if self.holder:
            facts.holder = load_holder(self.holder)
            facts.expected_certificates = expected_certificates(self.holder)
        return facts


@dataclass(frozen=True)
class Inventory:
    path: Path | None
    devices: dict[str, LabDevice]

    def get(self, name: str) -> LabDevice | None:
        return self.devices.get(name)


# -- where things are in the text ------------------------------------------------------------------
_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY)


def _parts(dotted: str) -> tuple[str, ...]:
    out = []
    for token in _PART.findall(dotted):
        if token[0] == '"':
            try:
                token = tomllib.loads(f"k = {token}")["k"]
            except tomllib.TOMLDecodeError:
                token = token[1:-1]
        elif token[0] == "'":
            token = token[1:-1]
        out.append(token)
    return tuple(out)


class LineIndex:
    """The line of each table header and key, found in one pass over the text."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("["):
                header = _HEADER.match(line)
                if header:
                    table = _parts(header.group(1))
                    self.lines.setdefault(table, number)
                continue
            assign = _ASSIGN.match(line)
            if assign:
                self.lines.setdefault(table + _parts(assign.group(1)), number)

    def line(self, *path: str) -> int:
        """The line of ``path``, or of the nearest table holding it (0: not found)."""
        for end in range(len(path), 0, -1):
            number = self.lines.get(path[:end])
            if number:
                return number
        return 0


def one_line(message: str) -> str:
    """Keys and values quoted in a message may hold line breaks or control characters: escape them."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)


# -- checks --------------------------------------------------------------------------------------------
_TYPE_NAMES = {str: "text", int: "a whole number", float: "a number", bool: "true or false",
               list: "an array", dict: "a table"}


_VALUE_NAMES = {str: "text", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}


def _describe(value: Any) -> str:
    kind = _VALUE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    shown = repr(value) if isinstance(value, (str, int, float)) else ""
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return f"{kind} {shown}".strip()


class _Checker:
    """Typed access to one inventory's data, with errors naming file, line, device and key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.index = LineIndex(text)

    def error(self, device: str | None, keys: tuple[str, ...], message: str) -> InventoryError:
        table = ("devices", device) if device is not None else ()
        line = self.index.line(*table, *keys)
        where = f"{self.path}:{line}" if line else str(self.path)
        who = f" device '{device}':" if device is not None else ""
        return InventoryError(one_line(f"{where}:{who} {message}"))

    def typed(self, device: str, keys: tuple[str, ...], value: Any, kind: type) -> Any:
        if type(value) is not kind:  # exact: a bool is not a number, a number is not a bool
            raise self.error(device, keys, f"{'.'.join(keys)} must be {_TYPE_NAMES[kind]}, got {_describe(value)}")
        return value

    def known(self, device: str, keys: tuple[str, ...], table: dict, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                label = ".".join((*keys, key))
                raise self.error(device, (*keys, key), f"unknown key {label}; known: {', '.join(allowed)}")


def _read(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_INVENTORY_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(f"{path}: inventory file not found") from None
    except IsADirectoryError:
        raise InventoryError(f"{path}: is a directory, not an inventory file") from None
    except OSError as exc:
        raise InventoryError(f"{path}: cannot read the inventory ({exc.strerror or exc})") from None
    if len(raw) > MAX_INVENTORY_BYTES:
        raise InventoryError(f"{path}: larger than {MAX_INVENTORY_BYTES >> 20} MiB, the limit for an inventory; "
                             "is this the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "syntax error"
        where = f"{path}:{match.group(1)}" if match else str(path)
        column = f" (column {match.group(2)})" if match else ""
        raise InventoryError(f"{where}: not valid TOML: {message}{column}") from None
    except RecursionError:
        raise InventoryError(f"{path}: arrays or tables nested too deeply for an inventory") from None


def _device(check: _Checker, name: str, table: Any, holders: dict[str, str | None],
            uris: dict[str, str | None]) -> LabDevice:
    if not isinstance(table, dict):
        raise check.error(name, (), f"must be a table [devices.{name}], got {_describe(table)}")
    check.known(name, (), table, DEVICE_KEYS)
    if "uri" not in table:
        raise check.error(name, (), "missing 'uri'")
    uri = check.typed(name, ("uri",), table["uri"], str)
    if uri not in uris:
        try:
            check_uri(uri)
            uris[uri] = None
        except DeviceError as exc:
            uris[uri] = str(exc)
    if uris[uri]:
        raise check.error(name, ("uri",), f"uri: {uris[uri]}")
    flags = {key: check.typed(name, (key,), table.get(key, False), bool)
             for key in ("contactless", "extended_apdu", "pin_pad")}
    card = check.typed(name, ("card",), table.get("card", {}), dict)
    check.known(name, ("card",), card, CARD_KEYS)
    kind = check.typed(name, ("card", "kind"), card.get("kind", "card"), str)
    if kind not in CARD_KINDS:
        raise check.error(name, ("card", "kind"), f"card.kind must be one of {', '.join(CARD_KINDS)}, got {kind!r}")
    # Unknown means guarded: only a literal TOML true makes a card expendable.
    expendable = check.typed(name, ("card", "expendable"), card.get("expendable", False), bool)
    holder = card.get("holder")
    if holder is not None:
        check.typed(name, ("card", "holder"), holder, str)
        if holder not in holders:
            try:
                load_holder(holder)
                holders[holder] = None
            except FixturesError as exc:
                holders[holder] = str(exc)
        if holders[holder]:
            raise check.error(name, ("card", "holder"), f"card.holder: {holders[holder]}")
    pin_env = check.typed(name, ("card", "pin_env"), card.get("pin_env", {}), dict)
    check.known(name, ("card", "pin_env"), pin_env, PIN_KINDS)
    for kind_name, variable in pin_env.items():
        keys = ("card", "pin_env", kind_name)
        check.typed(name, keys, variable, str)
        if not ENV_NAME.match(variable):
            raise check.error(name, keys, f"card.pin_env.{kind_name} must name an environment variable "
                                          f"(letters, digits, _), got {_describe(variable)}")
    reserve = check.typed(name, ("card", "pin_reserve"), card.get("pin_reserve", {}), dict)
    check.known(name, ("card", "pin_reserve"), reserve, PIN_KINDS)
    for kind_name, count in reserve.items():
        keys = ("card", "pin_reserve", kind_name)
        if type(count) is not int or not 1 <= count <= MAX_RESERVE:
            raise check.error(name, keys, f"card.pin_reserve.{kind_name} must be a whole number 1-{MAX_RESERVE} "
                                          f"(tries the guard always leaves), got {_describe(count)}")
    pool = check.typed(name, ("pool",), table.get("pool", ""), str)
    if "pool" in table and not POOL_NAME.match(pool):
        raise check.error(name, ("pool",), f"pool must be a name (letters, digits, - and _), got {_describe(pool)}")
    return LabDevice(
        name=name, uri=uri, pool=pool,
        description=check.typed(name, ("description",), table.get("description", ""), str),
        kind=kind, expendable=expendable, holder=holder, pin_env=dict(pin_env), pin_reserve=dict(reserve),
        **flags,
    )


def load_inventory(path: Path) -> Inventory:
    path = Path(path)
    text = _read(path)
    data = _parse(path, text)
    check = _Checker(path, text)
    tables = data.get("devices")
    if not isinstance(tables, dict) or not tables:
        raise InventoryError(f"{path}: no [devices.<name>] tables")
    for key in data:
        if key != "devices":
            raise check.error(None, (key,), f"unknown top-level key {key}; an inventory holds only [devices.<name>]")
    holders: dict[str, str | None] = {}
    uris: dict[str, str | None] = {}
    devices = {name: _device(check, name, table, holders, uris) for name, table in tables.items()}
    return Inventory(path, devices)


def active_inventory() -> Inventory | None:
    """The inventory named by ``$HIL_INVENTORY``, if any."""
    value = os.environ.get(INVENTORY_ENV)
    if not value:
        return None
    try:
        return load_inventory(Path(value))
    except InventoryError as exc:
        raise InventoryError(f"${INVENTORY_ENV}: {exc}") from None


def resolve(name: str, inventory: Inventory | None = None) -> tuple[str, LabDevice | None]:
    """A device name or URI → (URI, inventory entry or None)."""
    inventory = inventory if inventory is not None else active_inventory()
    if inventory is not None:
        device = inventory.get(name)
        if device is not None:
            return device.uri, device
    return name, None
