"""The device-abstraction layer: one :class:`Reader` interface, one backend per URI scheme."""

from __future__ import annotations

from .base import (
    BackendUnavailable,
    CardRemoved,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    NoCard,
    NoReader,
    ProtocolError,
    Reader,
    ReaderCapabilities,
    Terminal,
    UnknownDevice,
)
from .registry import known_schemes, open_uri, register_scheme

__all__ = [
    "BackendUnavailable",
    "CardRemoved",
    "DeviceBusy",
    "DeviceError",
    "DeviceGone",
    "DeviceTimeout",
    "NoCard",
    "NoReader",
    "ProtocolError",
    "Reader",
    "ReaderCapabilities",
    "Terminal",
    "UnknownDevice",
    "known_schemes",
    "open_device",
    "register_scheme",
]


def open_device(name_or_uri: str) -> Reader:
    """Open a device by URI (``virtual:card``, ``pcsc:ACS``…).

    Lab inventory names are resolved by :mod:`harness.lab` before they reach here.
    """
    return open_uri(name_or_uri.strip())
