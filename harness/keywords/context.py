"""State shared by the keyword classes of one library instance: the open device and its trace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from devices.base import DeviceError, Reader
from harness.channel import CardChannel
from harness.credentials import DeviceFacts
from harness.jpki import JpkiClient
from harness.lab import LabDevice
from harness.pin_guard import PinGuard
from harness.remote.guard import RemotePinGuard, remote_reader_of
from harness.trace import ApduTrace

T = TypeVar("T")


@dataclass
class LibraryContext:
    device_name: str = ""
    reader: Reader | None = None
    channel: CardChannel | None = None
    atr: bytes = b""
    trace: ApduTrace = field(default_factory=ApduTrace)
    facts: DeviceFacts = field(default_factory=DeviceFacts)
    lab_device: LabDevice | None = None  # the inventory's entry for the open device, None for a bare URI
    changed_pins: dict[str, str] = field(default_factory=dict, repr=False)  # PINs a test changed
    extensions: dict[str, Any] = field(default_factory=dict)  # per-concern state of keyword classes

    def extension(self, key: str, factory: Callable[[], T]) -> T:
        """The state a keyword class keeps under ``key`` on this context, made by ``factory`` on first use."""
        if key not in self.extensions:
            self.extensions[key] = factory()
        return self.extensions[key]

    def pin(self, kind: str) -> str:
        """The PIN in force for ``kind``: one a test changed, else the device's configured one."""
        return self.changed_pins.get(kind) or self.facts.pin(kind, self.device_name)

    def guard(self, channel: CardChannel | None = None) -> PinGuard:
        """The guarded client of the open card: the only way a keyword sends a PIN.

        What it learns (refused PINs, unknown states, trusted values) is kept per device name for the run."""
        channel = channel or self.require_channel()
        remote = remote_reader_of(channel)
        if remote is not None:  # the guard and the PINs sit on the reader host
            return RemotePinGuard(channel, remote, self.device_name)  # type: ignore[return-value]
        facts = self.facts
        return PinGuard(JpkiClient(channel), expendable=facts.expendable,
                        reserve=facts.pin_reserve, device=self.device_name, configured=self.pin)

    def require_reader(self) -> Reader:
        if self.reader is None:
            raise DeviceError("no device is open: call 'Open Device' first")
        return self.reader

    def require_channel(self) -> CardChannel:
        if self.channel is None:
            raise DeviceError("no device is open: call 'Open Device' first")
        return self.channel


class LibraryComponent:
    """Base of the keyword classes: they share one :class:`LibraryContext`."""

    def __init__(self, ctx: LibraryContext) -> None:
        self.ctx = ctx
