"""The in-process virtual reader: ``virtual:card``, ``virtual:phone``, ``virtual:<profile>[?options]``.

Options emulate reader limits so host code can be tested against them:
``extended=0`` (short APDUs only), ``max_response=N`` (largest Le passed through),
``timeout=S`` (seconds before a silent card is reported as :class:`DeviceTimeout`).
Every option is checked against what the chosen ``via`` understands (:func:`virtual_options`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from importlib import import_module

from devices.base import (
    BackendUnavailable,
    DeviceError,
    DeviceGone,
    DeviceInfo,
    DeviceTimeout,
    NoCard,
    Reader,
    ReaderCapabilities,
    UnknownDevice,
)
from devices.uri import TERMINAL_OPTION, BadDeviceUri, DeviceUri, Option, parse_flag

from .card import VirtualCard
from .profile import CardProfile, ProfileError, available_profiles, load_profile, profile_path
from .rig import VirtualRig, attach
from .slot import CardSlot


def profile_with_options(profile: CardProfile, options: dict[str, str]) -> CardProfile:
    """URI options that change the card itself: ``expendable=0`` makes a virtual card behave, for the
    safety checks, like a lab's real card; ``sign_delay_ms=N`` makes signing slow (WTX, timeouts)."""
    changes: dict[str, object] = {}
    if "expendable" in options:
        changes["expendable"] = parse_flag(options["expendable"], "expendable")
    if "sign_delay_ms" in options:
        changes["sign_delay_ms"] = SIGN_DELAY.convert(options["sign_delay_ms"], "virtual")
    return replace(profile, **changes) if changes else profile


def parse_virtual_uri(uri: str) -> tuple[str, dict[str, str]]:
    parsed = DeviceUri.parse(uri if ":" in uri else f"virtual:{uri}")
    return parsed.body, dict(parsed.options)


SIGN_DELAY = Option("sign_delay_ms", "int", low=0, high=600_000)
TIMEOUT = Option("timeout", "float", low=0.001, high=3600)
# Options of the card itself, whatever stands in front of it.
CARD_OPTIONS = (Option("via", "text"), Option("expendable"), SIGN_DELAY, TERMINAL_OPTION)
IN_PROCESS_OPTIONS = (Option("extended"), Option("max_response", "int", low=1, high=65536), TIMEOUT)


def _bridge_options(via: str, uri: str) -> tuple[Option, ...]:
    """What each ``via`` bridge understands; anything else would be ignored there, so it is refused."""
    if via == "nfc":
        return IN_PROCESS_OPTIONS[:2]
    try:
        if via == "pcsc":
            from devices.pcsc.uri import READER_OPTION_ROWS
            return (Option("port", "int", low=1, high=65535), Option("t0"), Option("extended"),
                    Option("reader", "text"), TIMEOUT, *(r for r in READER_OPTION_ROWS if r.name != "extended"))
        from devices.serial.uri import HARNESS_OPTION_ROWS
        from devices.virtual.serial_firmware.bridge import PASSED_OPTIONS, TRANSPORTS
    except ImportError as exc:
        raise BackendUnavailable(f"{uri}: needs the missing package {exc.name}") from None
    passed = tuple(row for row in HARNESS_OPTION_ROWS if row.name in PASSED_OPTIONS)
    protocol = (Option("protocol", "text"),) if via == "serial" else ()
    return (*protocol, Option("transport", "choice", choices=TRANSPORTS), *passed)


def virtual_options(uri: str) -> tuple[str, dict[str, str], dict[str, object]]:
    """(profile name, options normalised for the bridges, typed values) of a ``virtual:`` URI.

    Checked in full before anything starts: an unknown option, one the chosen ``via`` would ignore,
    or a value of the wrong kind is a one-line :class:`BadDeviceUri`. Flags reach the bridges as
    ``1``/``0`` whatever spelling the URI used."""
    parsed = DeviceUri.parse(uri if ":" in uri else f"virtual:{uri}")
    via = parsed.options.get("via")
    if via is not None and via not in VIA_BRIDGES:
        raise UnknownDevice(f"{uri}: unknown via='{via}'; known: in-process (no via), {', '.join(VIA_BRIDGES)}")
    rows = (*CARD_OPTIONS, *(IN_PROCESS_OPTIONS if via is None else _bridge_options(via, uri)))
    values = parsed.typed(rows, f"for {'the in-process card' if via is None else 'via=' + via}")
    if values.get("transport", "pty") != "pty" and "exclusive" in values:
        raise BadDeviceUri(f"{uri}: option exclusive means nothing with transport={values['transport']} "
                           "(only a local pty is locked)")
    normalised = {name: ("1" if value else "0") if isinstance(value, bool) else parsed.options[name].strip()
                  for name, value in values.items()}
    return parsed.body, normalised, values


class VirtualReader(Reader):
    """A reader whose slot holds a :class:`VirtualCard`, answering in the calling thread."""

    answers_in_caller = True  # plain Python, no I/O: the channel needs no deadline thread for it

    def __init__(self, card: VirtualCard, uri: str = "virtual:card", *, extended: bool = True,
                 max_response: int = 65536, timeout: float | None = None) -> None:
        self.uri = uri
        self.slot = CardSlot(card)
        self.timeout = timeout
        self.closed = False
        # With a timeout, APDUs run on a worker so a stalled card cannot hang the caller.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="virtual-card") if timeout else None
        self._caps = ReaderCapabilities(
            extended_apdu=extended,
            max_command_data=65535 if extended else 255,
            max_response=max_response if extended else min(max_response, 256),
            contactless=False,
            details={"backend": "in-process", "profile": card.profile.name},
        )
        attach(self, VirtualRig(self.slot, unplug=self.close))

    @property
    def card(self) -> VirtualCard | None:
        return self.slot.card

    @property
    def capabilities(self) -> ReaderCapabilities:
        return self._caps

    def wait_for_card(self, timeout: float) -> None:
        if not self.slot.wait(True, timeout):
            raise NoCard(f"{self.uri}: no card inserted within {timeout:g} s")

    def power_on(self) -> bytes:
        return self.slot.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        if self.closed:
            raise DeviceGone(f"{self.uri}: the reader is closed (unplugged)")
        card = self.slot.card
        if card is not None and not card.powered:
            raise DeviceError(f"{self.uri}: transmit before power_on")
        if self._worker is None:
            return self.slot.exchange(apdu)
        future = self._worker.submit(self.slot.exchange, apdu)
        try:
            return future.result(self.timeout)
        except FutureTimeout:
            # The card stays busy with this APDU; a lab reader would need a power cycle now.
            self._worker.shutdown(wait=False)
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="virtual-card")
            raise DeviceTimeout(f"{self.uri}: no answer within {self.timeout:g} s") from None

    def power_off(self) -> None:
        self.slot.power_off()

    def release(self) -> None:
        self.closed = True
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)


# ``virtual:<profile>?via=<bridge>`` puts the virtual card behind a real stack in this
# process: the reader side is the real backend (pyscard, nfcpy, pyserial), the card side
# a bridge thread. Each opener takes (card, uri, options), opens the host side through the registry
# and returns that reader with its rig attached (``rig.attach``).
VIA_BRIDGES: dict[str, tuple[str, str]] = {
    "pcsc": ("devices.virtual.bridges.pcsc", "open_via_pcsc"),
    "nfc": ("devices.virtual.bridges.nfc", "open_via_nfc"),
    "kiosk": ("devices.virtual.serial_firmware", "open_via_serial"),
    "stb": ("devices.virtual.serial_firmware", "open_via_serial"),
    "serial": ("devices.virtual.serial_firmware", "open_via_serial"),
}


def _open_via(via: str, card: VirtualCard, uri: str, options: dict[str, str]) -> Reader:
    if via not in VIA_BRIDGES:
        raise UnknownDevice(f"{uri}: unknown via='{via}'; known: in-process (no via), {', '.join(VIA_BRIDGES)}")
    module_name, attr = VIA_BRIDGES[via]
    try:
        module = import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(f"{uri}: needs the missing package {exc.name}") from None
    return getattr(module, attr)(card, uri, options)


def open_virtual(uri: str) -> Reader:
    name, options, values = virtual_options(uri)
    if not name:
        raise UnknownDevice(f"'{uri}' names no profile; known: {', '.join(available_profiles())}")
    if not profile_path(name).exists():
        known = ", ".join(f"virtual:{p}" for p in available_profiles())
        raise UnknownDevice(f"unknown virtual device '{uri}'; known: {known}")
    try:
        card = VirtualCard(profile_with_options(load_profile(name), options))
    except ProfileError as exc:
        raise DeviceError(str(exc)) from None
    if "via" in options:
        bridge = {key: value for key, value in options.items() if key != TERMINAL_OPTION.name}
        return _open_via(options["via"], card, uri, bridge)
    return VirtualReader(card, uri, extended=bool(values.get("extended", True)),
                         max_response=int(values.get("max_response", 65536)),  # type: ignore[call-overload]
                         timeout=values.get("timeout"))  # type: ignore[arg-type]


def check_virtual_profile(uri: str) -> None:
    """For :func:`devices.registry.check_uri`: the profile ``uri`` names exists and loads; a broken one is
    one :class:`ProfileError` line naming the file, before any suite runs."""
    name, _ = parse_virtual_uri(uri)
    if not name or not profile_path(name).exists():
        known = ", ".join(f"virtual:{p}" for p in available_profiles())
        raise UnknownDevice(f"unknown virtual device '{uri}'; known: {known}")
    load_profile(name)


def discover() -> list[DeviceInfo]:
    """The virtual devices: one per card profile, always present."""
    found = []
    for name in available_profiles():
        try:
            card = VirtualCard.from_profile(name)
        except ProfileError as exc:
            found.append(DeviceInfo(f"virtual:{name}", name, problem=str(exc)))
            continue
        found.append(DeviceInfo(f"virtual:{name}", card.profile.name, "present", card.atr))
    return found
