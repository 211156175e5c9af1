"""``hil devices``: what every backend can see, and the devices of a lab inventory."""

from __future__ import annotations

import argparse
from pathlib import Path

from devices.registry import discover
from harness.iso.apdu import to_hex
from harness.lab import load_inventory


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hil devices``."""
    devices = sub.add_parser("devices", help="list the devices every backend can see")
    devices.add_argument("--inventory", help="also list the devices of this lab inventory (TOML)")
    devices.set_defaults(func=cmd_devices)


def cmd_devices(args: argparse.Namespace) -> int:
    for scheme, found in discover().items():
        if isinstance(found, str):
            print(f"{scheme}: {found}")
            continue
        if not found:
            print(f"{scheme}: no devices found")
        for info in found:
            state = f" [{info.card_state}]" if info.card_state else ""
            atr = f" ATR {to_hex(info.atr)}" if info.atr else ""
            problem = f" — cannot open: {info.problem}" if info.problem else ""
            print(f"{info.uri:32} {info.description}{state}{atr}{problem}")
            if info.stable_uri:
                print(f"{'':32}   inventory: uri = \"{info.stable_uri}\"")
    if args.inventory:
        inventory = load_inventory(Path(args.inventory))
        print(f"inventory {inventory.path}:")
        for device in inventory.devices.values():
            expendable = "expendable" if device.expendable else "guarded"
            print(f"  {device.name:24} → {device.uri:32} {device.kind}, {expendable}  {device.description}")
    return 0
