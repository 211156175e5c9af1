"""The one door from the harness into a virtual device: its slot, link faults, card facts, removal, unplug.

Every way a virtual card is opened (in-process, behind pcscd + vpcd, on nfcpy's UDP link, as serial
firmware on a pty) registers a :class:`VirtualRig` for the reader it returns with :func:`attach`; keywords
and tools reach it with :func:`rig_of`, which is None for a real reader. Nothing else guesses at a
bridge's attributes, so a bridge can change its insides without breaking a keyword.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from devices.base import CardFacts, DeviceError, Reader, bench_of, register_bench

from .card import VirtualCard
from .profile import CardProfile, ProfileError, available_profiles, load_profile
from .slot import CardSlot, FaultPlan

__all__ = ["CARD_FAULTS", "FAULTS", "LINK_FAULTS", "CardServer", "FaultPlan", "FaultUnsupported", "FieldLink",
           "Firmware", "PortServer", "VirtualCard", "VirtualRig", "attach", "card_facts", "known_profile_facts",
           "profile_facts", "provisioning_options", "provisioning_state", "rig_of"]

# One fault vocabulary for every bridge. Card faults act on the slot, so every virtual device has them:
CARD_FAULTS = ("remove_card", "pull_card", "delay_card", "delay_signatures", "unplug")
# Link faults act on the frames between the card's side and the host's reader stack; each bridge with a link
# names them its own way: (the name on nfcpy's UDP link, the name in the serial firmware), None where it has none.
LINK_FAULTS: dict[str, tuple[str | None, str | None]] = {
    "lose_responses": ("drop_responses", "mute_responses"),  # the answer never reaches the host
    "lose_commands": ("ignore_commands", None),  # the host's frame never reaches the card
    "corrupt_responses": (None, "corrupt_responses"),  # the answer arrives with a wrong check value
    "corrupt_commands": (None, "corrupt_commands"),
    "truncate_responses": (None, "drop_response_bytes"),  # a byte of the answer is lost
    "truncate_commands": (None, "drop_command_bytes"),
    "delay_responses": (None, "stall_responses"),  # the answer is held back ``delay_seconds``
}
FAULTS = CARD_FAULTS + tuple(LINK_FAULTS)


class FaultUnsupported(DeviceError):
    """The virtual device has no such fault (its bridge lacks that link); one line naming what it has."""


# What the rig hands out of each bridge, as protocols: the bridges import the rig to register, so the rig
# names no bridge module (and pulls in neither nfcpy nor pyserial).
class FieldLink(Protocol):
    """The virtual PICC's side of nfcpy's UDP link (``devices.virtual.bridges.nfc.NfcUdpCard``)."""

    faults: Any  # frames to lose: ``drop_responses``, ``ignore_commands``

    @property
    def last_exchange(self) -> Any: ...  # the last APDU's blocks, chaining, WTX (an ``ExchangeRecord``)

    def snapshot(self) -> dict[str, int]: ...

    def reset_stats(self) -> None: ...

    def remove_from_field(self) -> None: ...

    def return_to_field(self, card: VirtualCard | None = None) -> None: ...


class Firmware(Protocol):
    """The virtual serial reader firmware (``devices.virtual.serial_firmware.ReaderFirmware``)."""

    stats: Any  # ``FirmwareStats``: ``as_dict()``

    def arm_faults(self, **plan: int | float | None) -> None: ...


class CardServer(Protocol):
    """The vpcd card server behind a ``via=pcsc`` reader (``devices.virtual.bridges.vpcd.VpcdCardServer``)."""

    port: int  # the vpcd slot's TCP port on 127.0.0.1

    @property
    def running(self) -> bool: ...

    @property
    def connected(self) -> bool: ...


class PortServer(Protocol):
    """The RFC 2217 / socket server in front of the firmware's pty; ``line`` holds what the client set."""

    line: Any


def card_facts(card: VirtualCard) -> CardFacts:
    """What ``card``'s profile says of it, as plain data the harness core reads."""
    return _profile_facts(card.profile)


def _profile_facts(profile: CardProfile) -> CardFacts:
    return CardFacts(kind=profile.kind, expendable=profile.expendable, holder=profile.holder,
                     holder_record=profile.holder_name, profile=profile.name,
                     pins={name: spec.value for name, spec in profile.pins.items()})


def provisioning_state(card: VirtualCard) -> str | None:
    """A provisionable phone's state (``empty``, ``keys_generated``…), None for any other card."""
    from .provisioning import state_of

    state = state_of(card.os)
    return None if state is None else state.value


def provisioning_options(card: VirtualCard) -> tuple[str, int] | None:
    """(certificate command, first PIN P1) a blank phone's profile takes, None for a provisioned one."""
    from .provisioning import load_options

    options = load_options(card.profile)
    return None if options is None else (options.certificate_command, options.first_pin_p1)


def profile_facts(name: str) -> CardFacts:
    """The facts of virtual profile ``name`` without opening it (its PINs, e.g. the card's PIN on a phone)."""
    return _profile_facts(load_profile(name))


def known_profile_facts() -> list[CardFacts]:
    """The facts of every virtual profile that loads (a broken one fails where it is opened)."""
    found = []
    for name in available_profiles():
        try:
            found.append(profile_facts(name))
        except ProfileError:
            continue
    return found


@dataclass(eq=False)
class VirtualRig:
    """A virtual device seen from the test bench: the slot its card sits in and what each bridge adds.

    ``link`` is the PICC behind nfcpy's UDP link, ``firmware`` the serial reader firmware and
    ``port_server`` its RFC 2217 / socket server, ``card_server`` vpcd's card server; each is None where the
    bridge has none.
    ``unplug`` takes the device away (its server stops, or the in-process reader closes);
    ``wait_removed`` waits until the host stack reports an empty slot (PC/SC polls for it)."""

    slot: CardSlot
    unplug: Callable[[], None]
    link: FieldLink | None = None
    firmware: Firmware | None = None
    port_server: PortServer | None = None
    card_server: CardServer | None = None
    wait_removed: Callable[[float], None] | None = None
    _model: VirtualCard | None = field(default=None, repr=False)  # the card last in the slot, to put back
    _removed: VirtualCard | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._model = self.slot.card

    # -- the card -------------------------------------------------------------------------------
    @property
    def card(self) -> VirtualCard | None:
        """The card in the slot now (None while it is out)."""
        card = self.slot.card
        if card is not None:
            self._model = card
        return card

    @property
    def present(self) -> bool:
        return self.slot.present

    def card_facts(self) -> CardFacts | None:
        """What the card's profile says of it: kind, expendable, holder, its test PINs."""
        card = self.card or self._model
        return None if card is None else card_facts(card)

    def remove(self, timeout: float | None = None) -> None:
        """Takes the card out (off nfcpy's field: it falls silent at once); with ``timeout``, waits (where the
        stack polls) until the host sees it gone."""
        card = self.slot.card
        if self.link is not None:
            self.link.remove_from_field()
        else:
            self.slot.remove()
        if card is not None:
            self._model = self._removed = card
        if timeout is not None and self.wait_removed is not None:
            self.wait_removed(timeout)

    def insert(self, fresh: bool = False) -> VirtualCard:
        """Puts the removed card back (``fresh``: a factory-fresh card of its profile), unpowered."""
        card = self._removed or self._model
        if card is None:
            raise DeviceError("no card to insert: the slot has never held one")
        if fresh:
            card = VirtualCard(card.profile)
        self._put(card)
        self._model, self._removed = card, None
        return card

    def _put(self, card: VirtualCard) -> None:
        if self.link is not None:
            self.link.return_to_field(card)  # back in the field, unpowered: the reader activates it anew
        else:
            self.slot.insert(card)

    def new_card(self, profile: str | None = None) -> VirtualCard:
        """A factory-fresh card of ``profile`` (default: the profile of the card last in the slot), not inserted."""
        if profile is not None:
            return VirtualCard.from_profile(profile)
        model = self.card or self._model
        if model is None:
            raise DeviceError("no card to copy: the slot has never held one")
        return VirtualCard(model.profile)

    def reinsert(self, card: VirtualCard | None) -> None:
        """Disarms the card faults and puts ``card`` (a card this rig handed out, with its state) in the slot,
        unless it is there already; None: leave the slot's card."""
        self.slot.arm(FaultPlan())
        if card is not None and self.slot.card is not card:
            self._put(card)
            self._model, self._removed = card, None

    def insert_fresh(self) -> VirtualCard:
        """Disarms every fault and inserts a factory-fresh card of the same profile (full retry counters)."""
        self.clear_faults()
        return self.insert(fresh=True)

    def restore(self) -> None:
        """Disarms every fault and puts a removed card back, so the next test finds the slot as it began."""
        self.clear_faults()
        if not self.slot.present:
            self.insert()

    def slow_signing(self, delay_ms: int) -> None:
        """Every signature of the card in the slot takes ``delay_ms`` (0: the profile's own speed)."""
        import dataclasses

        card = self.slot.card
        if card is None:
            raise DeviceError("no card in the slot to slow down")
        card.profile = dataclasses.replace(card.profile, sign_delay_ms=int(delay_ms))

    # -- faults ---------------------------------------------------------------------------------
    def arm(self, plan: FaultPlan) -> None:
        """Card faults, counted in APDUs that reach the card: removal during one, a stall of one."""
        self.slot.arm(plan)

    def supported_faults(self) -> tuple[str, ...]:
        """The names of :data:`FAULTS` this device can inject: the card faults, and its link's."""
        side = 0 if self.link is not None else 1 if self.firmware is not None else None
        link = () if side is None else tuple(name for name, names in LINK_FAULTS.items() if names[side])
        return CARD_FAULTS + link

    def require(self, fault: str, device: str = "this device") -> None:
        """Raises :class:`FaultUnsupported` (or, for a name outside :data:`FAULTS`, a plain error) unless
        ``device`` can inject ``fault``."""
        if fault not in FAULTS:
            raise DeviceError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if fault not in self.supported_faults():
            where = ("nfcpy's UDP link" if self.link is not None else "the serial firmware"
                     if self.firmware is not None else "no link the harness can disturb")
            raise FaultUnsupported(f"{device} cannot inject {fault}: it has {where}; its faults are "
                                   f"{', '.join(self.supported_faults())}")

    def arm_link(self, counts: Mapping[str, int], delay_seconds: float = 0.0, device: str = "this device") -> None:
        """Arms link faults by their :data:`LINK_FAULTS` names, each for the next ``count`` frames (replacing
        what was armed on the link); ``delay_seconds`` is how long ``delay_responses`` holds an answer."""
        for name in counts:
            if name not in LINK_FAULTS:
                raise DeviceError(f"unknown link fault {name!r}; known: {', '.join(LINK_FAULTS)}")
            self.require(name, device)
        if self.link is not None:
            self.link.faults.drop_responses = int(counts.get("lose_responses", 0))
            self.link.faults.ignore_commands = int(counts.get("lose_commands", 0))
        elif self.firmware is not None:
            plan: dict[str, int | float | None] = {LINK_FAULTS[name][1] or name: int(count)
                                                   for name, count in counts.items()}
            if delay_seconds:
                plan["stall_seconds"] = float(delay_seconds)
            self.firmware.arm_faults(**plan)

    def arm_serial(self, **plan: int | float | None) -> None:
        """Serial faults of the firmware for the coming frames (``SerialFaultPlan`` field names)."""
        self.require_firmware().arm_faults(**plan)

    def clear_faults(self) -> None:
        """Disarms the card's, the firmware's and the link's faults."""
        self.slot.arm(FaultPlan())
        if self.firmware is not None:
            self.firmware.arm_faults()
        if self.link is not None:
            self.link.faults.drop_responses = self.link.faults.ignore_commands = 0

    def require_firmware(self) -> Firmware:
        if self.firmware is None:
            raise DeviceError("serial faults need the virtual serial firmware (virtual:…?via=kiosk|stb|serial)")
        return self.firmware

    def require_link(self) -> FieldLink:
        if self.link is None:
            raise DeviceError("link faults need the virtual card behind nfcpy's UDP link (virtual:…?via=nfc)")
        return self.link


R = TypeVar("R", bound=Reader)


def attach(reader: R, rig: VirtualRig) -> R:
    """Registers ``rig`` as the virtual device behind ``reader``; returns the reader (for ``return attach(…)``).

    One registry for every bridge (``devices.base``): the core sees the rig as a narrow
    :class:`~devices.base.CardBench` (card facts, a fresh card), keywords through :func:`rig_of`."""
    register_bench(reader, rig)
    return reader


def rig_of(reader: Reader | None) -> VirtualRig | None:
    """The virtual device behind ``reader``, or None for a real reader (or none)."""
    bench = bench_of(reader)
    return bench if isinstance(bench, VirtualRig) else None
