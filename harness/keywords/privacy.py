"""What is personal about the device under test, and whether this run may show it.

The holder record decides: its My Number (= 照合番号A), 照合番号B, name, address and birth date are
registered with :data:`harness.iso.redact.SECRETS`, so every message Robot writes masks them, and the
trace masks the files that hold them. ``hil run --show-holder-data`` (``HIL_SHOW_HOLDER_DATA=1``)
lifts the holder mask for holders whose record says ``synthetic = true``, never for others, and
never for PINs.
"""

from __future__ import annotations

import os

from cryptography.x509.oid import NameOID

from devices.virtual.rig import known_profile_facts
from harness.credentials import PIN_KINDS, DeviceFacts
from harness.fixtures import HolderData, number_b
from harness.iso.redact import SECRETS, SHOW_HOLDER_DATA_ENV, HolderValue, describe_my_number, match_note
from harness.jpki import BasicFour
from harness.pki import checks, profile

from .context import LibraryContext


def show_requested() -> bool:
    return os.environ.get(SHOW_HOLDER_DATA_ENV, "") == "1"


def may_show(holder: HolderData | None) -> bool:
    """True only under ``--show-holder-data`` and for a holder whose record says it is synthetic."""
    return holder is not None and holder.synthetic is True and show_requested()


def holder_values(holder: HolderData) -> dict[str, str]:
    """Label → value of every personal datum of a holder record (the one-character sex code aside)."""
    values = {"My Number": holder.my_number, "照合番号B": number_b(holder), "name": holder.name,
              "address": holder.address, "birth date": holder.birth_date}
    for index, part in enumerate(holder.name.split("\u3000")):
        values[f"name part {index + 1}"] = part
    return values


def register_holder(holder: HolderData | None) -> None:
    """Masks the holder's data in every message from now on, unless this run may show it."""
    if holder is None:
        return
    values = holder_values(holder)
    if may_show(holder):
        SECRETS.discard(values.values())
        return
    for label, value in values.items():
        SECRETS.add(value, f"holder {holder.record or '?'}: {label}")


def register_facts(facts: DeviceFacts) -> None:
    """PINs (from the facts and the environment) and holder data of a device just opened."""
    for kind, pin in facts.pins.items():
        SECRETS.add(pin, f"{kind} PIN")
    for kind, variable in facts.pin_env.items():  # PINs the lab inventory names by variable
        value = os.environ.get(variable)
        if value:
            SECRETS.add(value, f"{kind} PIN (${variable})")
    for kind in PIN_KINDS:
        value = os.environ.get(f"HIL_{kind.upper()}_PIN")
        if value:
            SECRETS.add(value, f"{kind} PIN (environment)")
    register_holder(facts.holder)


def register_known_profiles() -> None:
    """Every virtual profile's PINs and holder: masked even in messages written before a device opens."""
    for facts in known_profile_facts():
        for kind, value in facts.pins.items():
            SECRETS.add(value, f"{facts.profile}: {kind} PIN")
        register_holder(facts.holder)


def my_number_value(number: str, holder: HolderData | None) -> HolderValue:
    """The My Number read, as Robot will log it: ``<My Number: 12 digits, check digit valid, matches …>``."""
    shown = may_show(holder)
    if not shown:
        SECRETS.add(number, "My Number read from the card")
    expected = holder.my_number if holder else None
    return HolderValue(number, "My Number", describe_my_number(number, expected, holder and holder.record),
                       revealed=shown)


def basic_four_summary(basic: BasicFour, holder: HolderData | None) -> str:
    record = holder.record if holder else None
    notes = []
    for label, attribute in (("name", "name"), ("address", "address"), ("birth date", "birth_date"),
                             ("sex", "sex")):
        value = getattr(basic, attribute)
        expected = getattr(holder, attribute) if holder else None
        notes.append(f"{label}: {len(value)} characters, {match_note(value, expected, record)}")
    return "; ".join(notes)


def basic_four_value(basic: BasicFour, holder: HolderData | None) -> HolderValue:
    """The basic four read, as Robot will log it: lengths and whether each field matches the holder."""
    shown = may_show(holder)
    if not shown:
        for label, value in (("name", basic.name), ("address", basic.address), ("birth date", basic.birth_date)):
            SECRETS.add(value, f"{label} read from the card")
        for part in basic.name.split("\u3000"):
            SECRETS.add(part, "part of the name read from the card")
    return HolderValue(basic, "basic four", basic_four_summary(basic, holder), revealed=shown)


def register_certificate_holder(der: bytes, holder: HolderData | None) -> None:
    """A sign certificate read from the card carries the basic four in its SubjectAltName (and the name in
    its subject): masked from now on, even for a card whose holder the harness has no record of."""
    if may_show(holder):
        return
    try:
        cert = checks.load_certificate(der)
        attributes = profile.holder_attributes(cert)
        names = [a.value for a in cert.subject if isinstance(a.value, str) and a.oid != NameOID.COUNTRY_NAME]
    except (checks.PkiError, ValueError):
        return
    for label, value in attributes.items():
        if label != "sex":
            SECRETS.add(value, f"{label} in the sign certificate")
    for value in names if attributes else []:  # an auth certificate's CN is an identifier, not a name
        SECRETS.add(value, "subject of the sign certificate")


def protect(ctx: LibraryContext) -> None:
    """After the device's facts are known: register its secrets, and decide what its trace may show."""
    register_facts(ctx.facts)
    ctx.trace.show_holder_data = may_show(ctx.facts.holder)
