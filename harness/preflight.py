"""Pre-flight: before any test, every device of a run is opened, its card found and identified, and
the PINs and holder the selected tests need are known. Nothing but SELECT and READ BINARY of the free
token file is sent, never a VERIFY. A problem is one line naming the device and the fix.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from devices import DeviceError, NoCard, open_device
from devices.registry import check_uri
from devices.remote import RemoteReader
from harness import fixtures, lab, pools
from harness.channel import CardChannel
from harness.credentials import MissingSecret, card_facts_of, facts_for_device, recorded_facts
from harness.iso.apdu import to_hex
from harness.jpki import CardStatusError, JpkiClient
from harness.remote.guard import remote_facts
from harness.suite_model import parsed
from harness.trace import ApduTrace

TOKEN_KINDS = {"JPKIAPICCTOKEN": "card", "JPKIAPGPSETOKEN": "phone"}
PIN_KINDS = ("auth", "sign", "text")
PIN_WORDS = ("pin", "password", "sign data", "collation")
HOLDER_KEYWORDS = {
    "certificate should match fixture", "sign certificate should carry holder", "verify collation number",
    "my number should be expected", "basic four should be expected", "basic four offsets should point at fields",
}


OK_PREFIX, PROBLEM_PREFIX = "preflight ok: ", "preflight problem: "


class PreflightError(RuntimeError):
    """A device that is not ready: one line naming it and the fix."""


@dataclass
class Needs:
    """What the selected tests of one device need from it."""

    kind: str | None = None  # "card" or "phone" when a card or phone suite is selected
    pins: set[str] = field(default_factory=set)
    holder: bool = False
    tests: int = 0


def kind_from_label(label: str) -> str | None:
    """``card`` or ``phone`` from the token label in EF 0006 (JPKI-FACTS), None for anything else."""
    return next((kind for prefix, kind in TOKEN_KINDS.items() if label.startswith(prefix)), None)


def identify(channel: CardChannel) -> tuple[str | None, str]:
    """(kind, token label) from what the card answers: SELECT the JPKI AP, READ BINARY EF 0006."""
    client = JpkiClient(channel)
    try:
        client.select_jpki()
        label = client.read_token_label()
    except CardStatusError as exc:
        return None, f"no JPKI token ({exc})"
    return kind_from_label(label), label


def _steps(body) -> Iterable:
    for step in body:
        if getattr(step, "type", "") in ("KEYWORD", "SETUP", "TEARDOWN") and getattr(step, "name", None):
            yield step
        inner = getattr(step, "body", None)
        if inner:
            yield from _steps(inner)


def _top_folder(source) -> str:
    """``card`` for robot/card/…: the suite folder says which kind of card the tests are written for."""
    if not source:
        return ""
    path = Path(str(source)).resolve()
    try:
        return path.relative_to(fixtures.suites_dir().resolve()).parts[0]
    except ValueError:
        return path.parent.name


def needs_of(suites: list[Path], include: list[str], exclude: list[str]) -> Needs:
    """Reads the selected tests (Robot's own parser and tag filter) for the kind, PINs and holder they use."""
    suite = parsed([str(s) for s in suites])
    suite.filter(included_tags=include or None, excluded_tags=exclude or None)
    needs = Needs()
    for test in suite.all_tests:
        needs.tests += 1
        top = _top_folder(test.source)
        if top in ("card", "phone"):
            needs.kind = top
        for step in _steps([test.setup, *test.body, test.teardown]):
            name = (step.name or "").lower()
            if name in HOLDER_KEYWORDS:
                needs.holder = True
            if any(word in name for word in PIN_WORDS):
                needs.pins.update(arg for arg in step.args if arg in PIN_KINDS)
    return needs


def _pin_variable(kind: str, lab_device: lab.LabDevice | None) -> str:
    if lab_device is not None and lab_device.pin_env.get(kind):
        return lab_device.pin_env[kind]
    return f"HIL_{kind.upper()}_PIN"


def check_device(name: str, needs: Needs, timeout: float = 5.0) -> str:
    """Opens ``name``, identifies its card and checks the needs; returns a one-line description."""
    try:
        uri, lab_device = lab.resolve(name)
        check_uri(uri)
        facts = facts_for_device(None, lab_device)  # PINs the inventory names: from those variables only
    except fixtures.FixturesError as exc:
        raise PreflightError(f"{name}: {exc} (fix the holder in the lab inventory)") from None
    try:
        reader = open_device(uri)
    except DeviceError as exc:
        raise PreflightError(f"{name}: cannot open it: {exc}") from None
    try:
        try:
            reader.wait_for_card(timeout)
            atr = reader.power_on()
        except NoCard as exc:  # the reader's own words say which step found nothing
            raise PreflightError(
                f"{name}: no card in the reader after {timeout:g} s (insert the card): {exc}") from None
        card = card_facts_of(reader)
        if isinstance(reader, RemoteReader):
            facts, lab_device = remote_facts(reader, lab_device), None  # the host's PINs, the host's names
        elif card is not None:
            facts = facts_for_device(card, lab_device)
        elif lab_device is None:
            facts = recorded_facts(reader) or facts  # a replay: device brings its recording's facts
        try:
            kind, label = identify(CardChannel(reader, ApduTrace()))
        except DeviceError as exc:
            raise PreflightError(f"{name}: the card does not answer a JPKI SELECT/READ: {exc}") from None
    finally:
        reader.close()
    if kind is None:
        raise PreflightError(f"{name}: token label {label!r} is neither a My Number card nor a phone applet")
    if needs.kind and kind != needs.kind:
        raise PreflightError(f"{name}: holds a {kind} (token {label}), but the {needs.kind} suites were selected "
                             f"(run the {kind} suites on it, or put a {needs.kind} in)")
    for pin in sorted(needs.pins):
        try:
            facts.pin(pin, name)
        except MissingSecret:
            if facts.sealed:
                raise PreflightError(f"{name}: the selected tests need the {pin} PIN, which its reader host does "
                                     "not have: set it where hil remote serve runs") from None
            raise PreflightError(f"{name}: the selected tests need the {pin} PIN: set "
                                 f"{_pin_variable(pin, lab_device)} (or use --ask-pins)") from None
    if needs.holder and facts.holder is None:
        raise PreflightError(f"{name}: the selected tests compare the card with its holder: name the holder "
                             f"(holder = \"...\") in the card table of its lab inventory entry")
    return f"{name}: {kind} ({label}), ATR {to_hex(atr)}"


def check_part(options) -> str:
    """The pre-flight of one run part (anything with ``device``, ``suites``, ``include``, ``exclude``)."""
    return check_device(options.device, needs_of(list(options.suites), list(options.include), list(options.exclude)))


def main(argv: list[str]) -> int:
    """``python -m harness.preflight PARTS_JSON``: the runner checks its parts in a process of their own, so
    whatever opening a device starts (pcscd, a bridge) ends with it. One ``ok`` line per part, or the first
    problem as one ``problem`` line and exit 2 (on stdout: anything else a backend prints is not ours)."""
    try:
        parts = json.loads(argv[0])
        for part in parts:
            needs = needs_of([Path(p) for p in part["suites"]], part["include"], part["exclude"])
            names = [d.name for d in pools.members(part["device"])] if pools.is_pool(part["device"]) \
                else [part["device"]]
            for name in names:
                print(f"{OK_PREFIX}{part['label']}: {check_device(name, needs)}", flush=True)
    except (PreflightError, DeviceError, lab.InventoryError, fixtures.FixturesError, ValueError, OSError) as exc:
        print(f"{PROBLEM_PREFIX}{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", flush=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
