"""Serial device names and their options (``serial:``, ``rfc2217://``, ``socket://``), checked without opening.

Apart from :mod:`.reader`, so that a bridge or a URI check reads the option grammar without the reader class.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from devices.uri import TERMINAL_OPTION, BadDeviceUri, DeviceUri, Option

from .protocol import PARITIES, Timing

SECONDS = {"low": 0.001, "high": 600}
HARNESS_OPTION_ROWS = (
    Option("protocol", "text"),
    Option("baudrate", "int", low=50, high=4_000_000),
    Option("bytesize", "choice", choices=("5", "6", "7", "8")),
    Option("parity", "choice", choices=tuple(p.lower() for p in PARITIES)),
    Option("stopbits", "choice", choices=("1", "1.5", "2")),
    Option("exclusive"),
    *(Option(name, "float", **SECONDS) for name in Timing.__dataclass_fields__ if name != "retries"),
    Option("retries", "int", low=0, high=10),
    TERMINAL_OPTION,
)
# The pause before reconnecting to the same RFC 2217 server (devices/serial/rfc2217_port.py); harness-side.
RFC2217_OPTION_ROWS = (Option("reconnect_grace", "float", low=0, high=10),)
HARNESS_OPTIONS = frozenset(row.name for row in (*HARNESS_OPTION_ROWS, *RFC2217_OPTION_ROWS))
# What pyserial's own URL handlers take (serial/urlhandler/protocol_*.py); a tty takes none.
PYSERIAL_OPTIONS: dict[str, tuple[Option, ...]] = {
    "tty": (),
    "rfc2217": (Option("ign_set_control", "bare"), Option("poll_modem", "bare"),
                Option("timeout", "float", low=0.001, high=600),
                Option("logging", "choice", choices=("debug", "info", "warning", "error"))),
    "socket": (Option("logging", "choice", choices=("debug", "info", "warning", "error")),),
}


def parse_serial_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``(transport, pyserial url, harness options)`` for a ``serial:``, ``rfc2217://`` or ``socket://`` URI.

    Every option is checked here, harness and pyserial ones alike: a typo is an error, not a default."""
    parsed = DeviceUri.parse(uri)
    base = uri.partition("?")[0]
    scheme = parsed.scheme
    if scheme == "serial":
        transport = "tty"
    elif scheme in ("rfc2217", "socket"):
        transport = scheme
    else:
        raise BadDeviceUri(f"'{uri}' is not a serial device URI (serial:, rfc2217://, socket://)")
    passed_rows = PYSERIAL_OPTIONS[transport] + (RFC2217_OPTION_ROWS if transport == "rfc2217" else ())
    parsed.typed((*HARNESS_OPTION_ROWS, *passed_rows), f"for {scheme}")
    if transport != "tty" and "exclusive" in parsed.options:
        raise BadDeviceUri(f"{uri}: option exclusive means nothing for {scheme}:// (only a local tty is locked)")
    ours = {key: value for key, value in parsed.options.items() if key in HARNESS_OPTIONS}
    passed = [key if value == "" else f"{key}={value}" for key, value in parsed.options.items()
              if key not in HARNESS_OPTIONS]
    if transport == "tty":
        path = base[len("serial:") :]
        path = path[2:] if path.startswith("///") else path
        if not path:
            raise BadDeviceUri(f"'{uri}' names no port; e.g. serial:/dev/ttyUSB0?protocol=kiosk")
        return "tty", path, ours
    try:
        parts = urlsplit(base)
        host, port = parts.hostname, parts.port
    except ValueError:  # a malformed [IPv6] literal or port
        host = port = None
    if not host or port is None:
        raise BadDeviceUri(f"'{uri}' needs host and port, e.g. {scheme}://127.0.0.1:4000?protocol=kiosk")
    return scheme, base + ("?" + "&".join(passed) if passed else ""), ours
