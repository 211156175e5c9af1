"""A virtual My Number card or phone applet: a profile, the card OS it populates, and its power state."""

from __future__ import annotations

from .applets import build_applets
from .cardos import CardOS, PinObject
from .profile import CardProfile, load_profile


class VirtualCard:
    """Answers APDUs like the real card. Volatile state is lost on every power-on."""

    def __init__(self, profile: CardProfile) -> None:
        self.profile = profile
        self.os = CardOS(build_applets(profile))
        self.powered = False

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
        return self.os.process(apdu)

    def response_delay(self, apdu: bytes) -> float:
        """Seconds this card takes over ``apdu`` (signing can be slow: the profile's ``sign_delay_ms``)."""
        if self.profile.sign_delay_ms and apdu[:2] == b"\x80\x2a":
            return self.profile.sign_delay_ms / 1000
        return 0.0

    def pin(self, name: str) -> PinObject:
        """The PIN object named in the profile (``auth``, ``sign``, ``text``), for tests and tooling."""
        applet = "text" if name in ("text", "number_a", "number_b") else "jpki"
        return self.os.pin(applet, name)
