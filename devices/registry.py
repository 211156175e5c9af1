"""Device names → backends. Backends register a URI scheme; labs add theirs through entry points.

Entry point group ``hil.devices``: ``scheme = "package.module:opener"`` where the
opener takes the full URI and returns a :class:`~devices.base.Reader`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points

from .base import BackendUnavailable, DeviceError, DeviceInfo, Reader, UnknownDevice
from .uri import BadDeviceUri, DeviceUri

Opener = Callable[[str], Reader]

# Built in so that a source checkout works without being pip-installed; the
# module is imported only when its scheme is used (optional extras stay optional).
BUILTIN_SCHEMES: dict[str, tuple[str, str]] = {
    "virtual": ("devices.virtual.reader", "open_virtual"),
    "pcsc": ("devices.pcsc.reader", "open_pcsc"),
    "nfc": ("devices.nfc.reader", "open_nfc"),
    "serial": ("devices.serial.reader", "open_serial"),
    "rfc2217": ("devices.serial.reader", "open_serial"),
    "socket": ("devices.serial.reader", "open_serial"),
    "remote": ("devices.remote", "open_remote"),
}
# Modules that can list the devices they see: each has ``discover() -> list[DeviceInfo]``.
DISCOVERY_MODULES: dict[str, str] = {
    "virtual": "devices.virtual.reader",
    "pcsc": "devices.pcsc.names",
    "nfc": "devices.nfc.usb",
    "serial": "devices.serial.reader",
}

_openers: dict[str, Opener] = {}


def register_scheme(scheme: str, opener: Opener) -> None:
    """Register (or replace) the opener for ``scheme``."""
    _openers[scheme] = opener


@functools.cache
def _entry_point_schemes() -> frozenset[str]:
    """Schemes installed packages add; read once (scanning every distribution takes milliseconds)."""
    with contextlib.suppress(Exception):
        return frozenset(ep.name for ep in entry_points(group="hil.devices"))
    return frozenset()


def known_schemes() -> list[str]:
    return sorted(set(BUILTIN_SCHEMES) | set(_openers) | _entry_point_schemes())


def _resolve(scheme: str) -> Opener:
    if scheme in _openers:
        return _openers[scheme]
    if scheme in BUILTIN_SCHEMES:
        module_name, attr = BUILTIN_SCHEMES[scheme]
        try:
            module = import_module(module_name)
        except ImportError as exc:
            raise BackendUnavailable(
                f"backend '{scheme}' needs a missing package ({exc.name}); "
                f"install it with: pip install 'jpki-hil[{scheme}]'"
            ) from exc
        opener = getattr(module, attr)
        _openers[scheme] = opener
        return opener
    for ep in entry_points(group="hil.devices"):
        if ep.name == scheme:
            opener = ep.load()
            _openers[scheme] = opener
            return opener
    raise UnknownDevice(f"unknown device scheme '{scheme}'; known schemes: {', '.join(known_schemes())}")


def scheme_of(uri: str) -> str:
    if ":" not in uri:
        return ""
    return uri.split(":", 1)[0]


# The option grammar of each built-in scheme, checked by check_uri() without opening anything.
OPTION_CHECKERS: dict[str, tuple[str, str]] = {
    "virtual": ("devices.virtual.reader", "virtual_options"),
    "pcsc": ("devices.pcsc.uri", "check_pcsc_uri"),
    "nfc": ("devices.nfc.uri", "parse_nfc_uri"),
    "serial": ("devices.serial.uri", "parse_serial_uri"),
    "rfc2217": ("devices.serial.uri", "parse_serial_uri"),
    "socket": ("devices.serial.uri", "parse_serial_uri"),
    "remote": ("devices.remote", "check_remote_uri"),
}


def _check_protocol_file(uri: str, protocol: str) -> None:
    """A serial module's protocol file is part of its name: a broken one is refused before the run."""
    try:
        from .serial.protocol import ProtocolFileError, load_protocol
    except ImportError:
        return  # pyserial is missing: opening the device says so
    try:
        load_protocol(protocol)
    except ProtocolFileError as exc:
        raise BadDeviceUri(f"{uri}: {exc}") from None


def check_uri(uri: str) -> None:
    """Cheap validation before a long run: the grammar, the scheme, every option and its value and, for
    virtual devices, the profile. Nothing is opened, so a lab reader is not touched."""
    parsed = DeviceUri.parse(uri) if ":" in uri else DeviceUri(uri, "", uri)
    scheme = parsed.scheme
    if not scheme:
        raise UnknownDevice(
            f"{uri!r} is neither a device URI (scheme:…) nor a name in the lab inventory; "
            f"known schemes: {', '.join(known_schemes())}"
        )
    if scheme not in known_schemes():
        raise UnknownDevice(f"unknown device scheme '{scheme}' in '{uri}'; known schemes: {', '.join(known_schemes())}")
    if scheme in OPTION_CHECKERS and scheme not in _openers:
        module_name, attr = OPTION_CHECKERS[scheme]
        try:
            checker = getattr(import_module(module_name), attr)
        except ImportError:
            checker = None  # the backend's package is missing: opening it says so in one line
        if checker is not None:
            checker(uri)
    if "protocol" in parsed.options and scheme in ("serial", "rfc2217", "socket", "virtual"):
        _check_protocol_file(uri, parsed.options["protocol"])
    if scheme == "virtual":  # by name, as the opener: the virtual devices open backends through this module
        import_module("devices.virtual.reader").check_virtual_profile(uri)


def open_uri(uri: str) -> Reader:
    scheme = scheme_of(uri)
    if not scheme:
        raise UnknownDevice(
            f"{uri!r} is neither a device URI (scheme:…) nor a name in the lab inventory; "
            f"known schemes: {', '.join(known_schemes())}"
        )
    return _resolve(scheme)(uri)


def discover() -> dict[str, list[DeviceInfo] | str]:
    """Every backend's devices, or the one-line reason the backend cannot look."""
    found: dict[str, list[DeviceInfo] | str] = {}
    for scheme, module_name in DISCOVERY_MODULES.items():
        try:
            module = import_module(module_name)
            found[scheme] = list(module.discover())
        except ImportError as exc:
            found[scheme] = f"not installed ({exc.name}); pip install 'jpki-hil[{scheme}]'"
        except DeviceError as exc:
            found[scheme] = str(exc)
    return found
