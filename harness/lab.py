"""The lab inventory: device names → URIs, what each can do, and what the card behind it is.

A TOML file (read with the standard library)::

    [devices.desk3-rcs380]
    uri = "nfc:usb:054c:06c3"
    description = "Sony RC-S380, desk 3"
    contactless = true
    extended_apdu = true
    [devices.desk3-rcs380.card]
    kind = "card"                 # or "phone"
    expendable = false            # true only for cards the lab may lock for good
    holder = "card"               # expected holder in fixtures/pki/holders.toml (test cards)
    pin_env = { auth = "DESK3_AUTH_PIN", sign = "DESK3_SIGN_PIN" }   # PINs come from the environment

Errors name the file and the line of the device's table.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.virtual.profile import ProfileError, load_holder
from harness.credentials import DeviceFacts, expected_certificates

INVENTORY_ENV = "HIL_INVENTORY"
CARD_KINDS = ("card", "phone")


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


def _line_of(text: str, table: str) -> int:
    header = f"[devices.{table}"
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(header):
            return number
    return 0


def _typed(value: Any, kind: type, where: str) -> Any:
    if (kind is bool and not isinstance(value, bool)) or not isinstance(value, kind):
        raise InventoryError(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def load_inventory(path: Path) -> Inventory:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InventoryError(f"{path}: inventory file not found") from None
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: not UTF-8 text ({exc.reason})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{path}: {exc}") from None
    tables = data.get("devices")
    if not isinstance(tables, dict) or not tables:
        raise InventoryError(f"{path}: no [devices.<name>] tables")
    devices = {}
    for name, table in tables.items():
        where = f"{path}:{_line_of(text, name)}: device '{name}'"
        if not isinstance(table, dict):
            raise InventoryError(f"{where}: must be a table")
        if "uri" not in table:
            raise InventoryError(f"{where}: missing 'uri'")
        card = _typed(table.get("card", {}), dict, f"{where}.card")
        kind = _typed(card.get("kind", "card"), str, f"{where}.card.kind")
        if kind not in CARD_KINDS:
            raise InventoryError(f"{where}: card.kind must be one of {CARD_KINDS}, got {kind!r}")
        pin_env = _typed(card.get("pin_env", {}), dict, f"{where}.card.pin_env")
        reserve = _typed(card.get("pin_reserve", {}), dict, f"{where}.card.pin_reserve")
        holder = card.get("holder")
        if holder is not None:
            try:
                load_holder(_typed(holder, str, f"{where}.card.holder"))
            except ProfileError as exc:
                raise InventoryError(f"{where}: {exc}") from None
        unknown = set(table) - {"uri", "description", "contactless", "extended_apdu", "pin_pad", "card"}
        if unknown:
            raise InventoryError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        devices[name] = LabDevice(
            name=name,
            uri=_typed(table["uri"], str, f"{where}.uri"),
            description=_typed(table.get("description", ""), str, f"{where}.description"),
            contactless=_typed(table.get("contactless", False), bool, f"{where}.contactless"),
            extended_apdu=_typed(table.get("extended_apdu", False), bool, f"{where}.extended_apdu"),
            pin_pad=_typed(table.get("pin_pad", False), bool, f"{where}.pin_pad"),
            kind=kind,
            expendable=_typed(card.get("expendable", False), bool, f"{where}.card.expendable"),
            holder=holder,
            pin_env={str(k): _typed(v, str, f"{where}.card.pin_env.{k}") for k, v in pin_env.items()},
            pin_reserve={str(k): _typed(v, int, f"{where}.card.pin_reserve.{k}") for k, v in reserve.items()},
        )
    return Inventory(path, devices)


def active_inventory() -> Inventory | None:
    """The inventory named by ``$HIL_INVENTORY``, if any."""
    value = os.environ.get(INVENTORY_ENV)
    return load_inventory(Path(value)) if value else None


def resolve(name: str, inventory: Inventory | None = None) -> tuple[str, LabDevice | None]:
    """A device name or URI → (URI, inventory entry or None)."""
    inventory = inventory if inventory is not None else active_inventory()
    if inventory is not None:
        device = inventory.get(name)
        if device is not None:
            return device.uri, device
    return name, None
