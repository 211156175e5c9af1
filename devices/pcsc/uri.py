"""``pcsc:`` device names and their options, checked without opening anything (see :mod:`.reader`).

Apart from the reader, so that a bridge or a URI check reads the option grammar without the reader class.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

from devices.uri import TERMINAL_OPTION, DeviceUri, Option, options_named


def parse_pcsc_uri(uri: str) -> tuple[str, dict[str, str]]:
    """``pcsc:Virtual%20PCD?get_response=0`` → (``"Virtual PCD"``, ``{"get_response": "0"}``)."""
    parsed = DeviceUri.parse(uri if ":" in uri else f"pcsc:{uri}")
    return unquote(parsed.body).strip(), dict(parsed.options)


READER_OPTION_ROWS = (
    Option("get_response"),
    Option("resend_6c"),
    Option("extended", "auto_flag"),
    Option("reset", "choice", choices=("cold", "warm", "none")),
    Option("share", "choice", choices=("shared", "exclusive")),
)
READER_OPTIONS = tuple(row.name for row in READER_OPTION_ROWS)
URI_OPTIONS = (*READER_OPTION_ROWS, TERMINAL_OPTION)


def reader_options(options: Mapping[str, str], uri: str, *, strict: bool = True) -> dict[str, object]:
    """Constructor keywords of :class:`PcscReader` from URI options; ``strict`` rejects unknown keys."""
    rows = options_named(READER_OPTION_ROWS)
    parsed = DeviceUri(uri, "pcsc", "", {k: v for k, v in options.items() if strict or k in rows})
    values = parsed.typed(rows)
    kwargs: dict[str, object] = {key: values[key] for key in ("get_response", "resend_6c") if key in values}
    if values.get("extended") is not None:
        kwargs["extended"] = values["extended"]
    kwargs["reset"] = values.get("reset", "cold")
    kwargs["exclusive"] = values.get("share", "shared") == "exclusive"
    return kwargs


def check_pcsc_uri(uri: str) -> tuple[str, dict[str, object]]:
    """(reader pattern, :class:`PcscReader` keywords) of a ``pcsc:`` URI; refuses unknown options."""
    pattern, options = parse_pcsc_uri(uri)
    DeviceUri.parse(uri).typed(URI_OPTIONS)
    return pattern, reader_options({k: v for k, v in options.items() if k != TERMINAL_OPTION.name}, uri)
