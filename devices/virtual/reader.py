"""The in-process virtual reader: ``virtual:card``, ``virtual:phone``, ``virtual:<profile>[?options]``.

Options emulate reader limits so host code can be tested against them:
``extended=0`` (short APDUs only), ``max_response=N`` (largest Le passed through),
``timeout=S`` (seconds before a silent card is reported as :class:`DeviceTimeout`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from importlib import import_module
from urllib.parse import parse_qs

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

from .card import VirtualCard
from .profile import CardProfile, ProfileError, available_profiles, load_profile, profile_path
from .slot import CardSlot


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    if key not in options:
        return default
    return options[key].lower() not in ("0", "no", "false", "off")


def profile_with_options(profile: CardProfile, options: dict[str, str]) -> CardProfile:
    """URI options that change the card itself: ``expendable=0`` makes a virtual card behave, for the
    safety checks, like a lab's real card; ``sign_delay_ms=N`` makes signing slow (WTX, timeouts)."""
    changes: dict[str, object] = {}
    if "expendable" in options:
        changes["expendable"] = _flag(options, "expendable", True)
    if "sign_delay_ms" in options:
        changes["sign_delay_ms"] = int(options["sign_delay_ms"])
    return replace(profile, **changes) if changes else profile


def parse_virtual_uri(uri: str) -> tuple[str, dict[str, str]]:
    body = uri.split(":", 1)[1] if ":" in uri else uri
    name, _, query = body.partition("?")
    options = {key: values[-1] for key, values in parse_qs(query, keep_blank_values=True).items()}
    return name, options


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

    def close(self) -> None:
        self.closed = True
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)


# ``virtual:<profile>?via=<bridge>`` puts the virtual card behind a real stack in this
# process: the reader side is the real backend (pyscard, nfcpy, pyserial), the card side
# a bridge thread. Each opener takes (card, uri, options) and returns a Reader with ``.slot``.
VIA_BRIDGES: dict[str, tuple[str, str]] = {
    "pcsc": ("devices.virtual.vpcd", "open_via_pcsc"),
    "nfc": ("devices.virtual.nfc_udp", "open_via_nfc"),
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
    name, options = parse_virtual_uri(uri)
    if not name:
        raise UnknownDevice(f"'{uri}' names no profile; known: {', '.join(available_profiles())}")
    if not profile_path(name).exists():
        known = ", ".join(f"virtual:{p}" for p in available_profiles())
        raise UnknownDevice(f"unknown virtual device '{uri}'; known: {known}")
    try:
        card = VirtualCard(profile_with_options(load_profile(name), options))
        extended = _flag(options, "extended", True)
        max_response = int(options.get("max_response", "65536"))
        timeout = float(options["timeout"]) if "timeout" in options else None
    except ProfileError as exc:
        raise DeviceError(str(exc)) from None
    except ValueError:
        raise DeviceError(f"{uri}: max_response, sign_delay_ms and timeout must be numbers") from None
    if "via" in options:
        return _open_via(options["via"], card, uri, options)
    return VirtualReader(card, uri, extended=extended, max_response=max_response, timeout=timeout)


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
