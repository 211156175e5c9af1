"""Where PINs and card facts come from, so suites never hold secrets.

Order: the environment variables the lab inventory names for the device (a named
variable must be set: no fallback), else the profile of a virtual card (whose PINs
are test values of a card that exists only in memory), else ``HIL_AUTH_PIN``,
``HIL_SIGN_PIN``, ``HIL_TEXT_PIN``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.base import CardFacts, Reader, bench_of
from harness import fixtures
from harness.fixtures import HolderData


class MissingSecret(LookupError):
    """No PIN is configured for a device."""


@dataclass
class DeviceFacts:
    """What the harness knows about the card behind a device, beyond what the card says."""

    kind: str = "card"  # "card" or "phone"
    expendable: bool = False
    virtual: bool = False
    holder: HolderData | None = None
    expected_certificates: dict[str, Path] = field(default_factory=dict)
    pins: dict[str, str] = field(default_factory=dict, repr=False)
    pin_reserve: dict[str, int] = field(default_factory=lambda: {"auth": 2, "sign": 3, "text": 2})
    pin_env: dict[str, str] = field(default_factory=dict)  # PIN kind → variable the lab inventory names
    sealed: bool = False  # a reader host's card: its PINs stay there, ``pins`` only says which it has

    def pin(self, kind: str, device: str) -> str:
        if self.sealed:
            if kind in self.pins:
                return self.pins[kind]
            raise MissingSecret(f"no {kind} PIN for {device} on its reader host: set it in the environment or "
                                "inventory of the host that runs hil remote serve")
        if kind in self.pin_env:
            variable = self.pin_env[kind]
            value = os.environ.get(variable)
            if not value:
                raise MissingSecret(f"no {kind} PIN for {device}: the lab inventory names ${variable}, which is not "
                                    f"set (no fallback to HIL_{kind.upper()}_PIN)")
            return value
        if kind in self.pins:
            return self.pins[kind]
        env = os.environ.get(f"HIL_{kind.upper()}_PIN")
        if env:
            return env
        raise MissingSecret(
            f"no {kind} PIN for {device}: set HIL_{kind.upper()}_PIN or give it in the lab inventory"
        )


expected_certificates = fixtures.expected_certificates  # the test PKI's certificates of a holder record


def card_facts_of(reader: Reader) -> CardFacts | None:
    """What the virtual card behind ``reader`` says of itself (its rig), or None for a real reader."""
    bench = bench_of(reader)
    return None if bench is None else bench.card_facts()


def recorded_facts(reader: Reader) -> DeviceFacts | None:
    """The facts of a ``replay:`` device, from its recording's header; None for any other reader.

    PINs are values of the recorded length and class (the replay matches any such PIN), never a real one.
    """
    from harness.iso.apdu_names import placeholder

    header = reader.recorded_header
    if not isinstance(header, dict):
        return None
    record = str(header.get("holder_record") or "")
    holder = fixtures.load_holder(record) if record else None
    pins = {kind: placeholder(int(shape["length"]), str(shape["class"]))
            for kind, shape in dict(header.get("pins") or {}).items()}
    return DeviceFacts(kind=str(header.get("kind", "card")), expendable=bool(header.get("expendable")),
                       virtual=False, holder=holder,
                       expected_certificates=expected_certificates(record) if record else {}, pins=pins)


def facts_for_virtual(card: CardFacts) -> DeviceFacts:
    return DeviceFacts(
        kind=card.kind,
        expendable=card.expendable,
        virtual=card.virtual,
        holder=card.holder,
        expected_certificates=expected_certificates(card.holder_record),
        pins=dict(card.pins),
    )


def facts_for_device(card: CardFacts | None, lab_device: Any | None) -> DeviceFacts:
    """What the harness assumes of a device: the virtual card's facts and the lab inventory's entry together.

    Where both speak, the stricter wins: the card is expendable only if both say so; PINs named by the
    inventory come from its environment variables; the inventory's reserves apply."""
    facts = DeviceFacts() if card is None else facts_for_virtual(card)
    if lab_device is None:
        return facts
    facts.kind = lab_device.kind if card is None else facts.kind
    facts.expendable = lab_device.expendable and (card is None or facts.expendable)
    if lab_device.pin_env:
        facts.pin_env = dict(lab_device.pin_env)
        facts.pins = {}
    if lab_device.pin_reserve:
        facts.pin_reserve.update(lab_device.pin_reserve)
    if lab_device.holder:
        holder_facts = lab_device.facts()  # loads the holder record and its expected certificates
        facts.holder = holder_facts.holder
        facts.expected_certificates = holder_facts.expected_certificates
    return facts


PIN_KINDS = ("auth", "sign", "text")


def prompt_for_pins(variables: dict[str, str], device: str, ask=None) -> list[str]:
    """Asks at the terminal (no echo) for every PIN whose environment variable is unset, and sets it.

    ``variables`` maps a PIN kind to the variable that carries it. Returns the kinds that were asked for.
    The values live only in this process's environment: never in a file, a log or a report.
    """
    import getpass

    ask = ask or getpass.getpass
    asked = []
    for kind, variable in variables.items():
        if os.environ.get(variable):
            continue
        value = ask(f"{kind} PIN for {device} (Enter to leave unset): ")
        if value:
            os.environ[variable] = value
            asked.append(kind)
    return asked
