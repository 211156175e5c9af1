"""What the controller and a reader host agree on: PIN targets by name and place, exchanges with PINs masked."""

from __future__ import annotations

from typing import Any

from harness.pin_guard import PinTarget, secret_command

TARGET_KEYS = ("name", "fid", "p2")


def target_to_wire(target: PinTarget) -> dict[str, Any]:
    applet = target.applet.hex() if isinstance(target.applet, bytes) else target.applet
    return {"name": target.name, "applet": applet, "applet_is_aid": isinstance(target.applet, bytes),
            "fid": target.fid, "p2": target.p2}


def target_from_wire(data: dict[str, Any]) -> PinTarget:
    applet = str(data["applet"])
    return PinTarget(str(data["name"]), bytes.fromhex(applet) if data.get("applet_is_aid") else applet,
                     int(data["fid"]), int(data["p2"]))


def _shape(byte: int) -> int:
    """A byte of the same class: what the trace needs to say ``****(4 digits)`` and nothing more."""
    char = chr(byte)
    if char.isdigit():
        return ord("0")
    if "A" <= char <= "Z":
        return ord("A")
    if "a" <= char <= "z":
        return ord("a")
    return ord("*")


def mask_secret(apdu: bytes) -> bytes:
    """``apdu`` with the data of a VERIFY/CHANGE replaced by bytes of the same length and class.

    Done on the reader host before an exchange leaves it, so no PIN ever crosses the wire."""
    if secret_command(apdu) is None:
        return apdu
    length = apdu[4]
    start = 5
    if length == 0 and len(apdu) > 7:  # extended Lc: 00 HI LO
        length, start = int.from_bytes(apdu[5:7], "big"), 7
    end = min(len(apdu), start + length)
    return apdu[:start] + bytes(_shape(b) for b in apdu[start:end]) + apdu[end:]
