"""A virtual My Number card or phone applet: a profile, the card OS it populates, and its power state."""

from __future__ import annotations

from collections.abc import Callable

from .applets import build_applets
from .cardos import CardOS, PinObject
from .profile import CardProfile, load_profile
from .provisioning import provisioning_os

PIN_APPLETS = {"text": "text", "number_a": "text", "number_b": "text", "visual_a": "visual",
               "visual_b": "visual", "juki": "juki", "common_juki": "common"}
BITS_PER_BYTE_ON_AIR = 10  # ISO/IEC 14443-3 Type B: start bit, 8 data bits, stop bit (EGT ignored)


class VirtualCard:
    """Answers APDUs like the real card. Volatile state is lost on every power-on."""

    def __init__(self, profile: CardProfile) -> None:
        self.profile = profile
        self.os = provisioning_os(profile) or CardOS(build_applets(profile), profile.options)  # blank phone
        self.powered = False
        self.observers: list[Callable[[VirtualCard], None]] = []  # told after every APDU (state reports)

    @classmethod
    def from_profile(cls, name_or_path: str) -> VirtualCard:
        return cls(load_profile(name_or_path))

    @property
    def atr(self) -> bytes:
        return self.profile.atr

    def power_on(self) -> bytes:
        self.os.reset()
        self.powered = True
        return self.profile.atr

    def power_off(self) -> None:
        self.os.reset()
        self.powered = False

    def process(self, apdu: bytes) -> bytes:
        """One APDU in, one response out, at once; a card that is not powered still answers (readers gate that)."""
        response = self.os.process(apdu)
        for observer in self.observers:
            observer(self)
        return response

    def response_delay(self, apdu: bytes) -> float:
        """Seconds this card takes over ``apdu``.

        ``sign_delay_ms`` (profile ``[timing]`` or URI) makes signing slow; ``realistic = true`` models a
        real chip: signing takes ``realistic_sign_ms`` and a READ BINARY costs 10 bit times per byte it
        returns at ``air_kbps`` (106-424 kbit/s contactless, JPKI-FACTS §7).
        """
        timing = self.profile.timing
        signing = apdu[:2] == b"\x80\x2a"
        if self.profile.sign_delay_ms and signing:
            return self.profile.sign_delay_ms / 1000
        if not timing.realistic:
            return 0.0
        if signing:
            return timing.realistic_sign_ms / 1000
        if apdu[1:2] == b"\xb0":
            return self.os.expected_read_length(apdu) * BITS_PER_BYTE_ON_AIR / (timing.air_kbps * 1000)
        return 0.0

    def pins(self) -> dict[str, PinObject]:
        """Every PIN object of the card (``auth``, ``sign``, ``text``, ``number_a``…) by name."""
        found: dict[str, PinObject] = {}
        for applet in self.os.applets.values():
            for name, pin in applet.pins().items():
                found.setdefault(name, pin)
        return found

    def pin(self, name: str) -> PinObject:
        """The PIN object named in the profile (``auth``, ``sign``, ``text``, ``juki``…), for tests and tooling."""
        return self.os.pin(PIN_APPLETS.get(name, "jpki"), name if name != "common_juki" else "juki")
