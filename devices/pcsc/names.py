"""Which PC/SC reader a name means, and the name a lab should write in its inventory.

pcscd names a reader ``<friendly name> NN SS``: NN is an index pcscd hands out in plug order (the
same model plugged second is ``01``), SS the slot of a multi-slot reader (vpcd's two slots are
``Virtual PCD 00 00`` and ``Virtual PCD 00 01``). CCID readers that report a USB serial number carry
it inside the friendly name (``… (0123456789) 00 00``). So an inventory must not depend on NN.

``pcsc:<name>`` is resolved in this order (case-insensitive; the first rule that matches decides):

1. the exact full name: ``pcsc:Virtual PCD 00 01``;
2. a glob when the name holds ``*`` (any run of characters) or ``?`` (one character, written ``%3F``
   because ``?`` starts the URI options); ``[`` stays literal, as pcscd puts it in names:
   ``pcsc:Virtual PCD * 01``, ``pcsc:ACS ACR1252*PICC*``;
3. the name without its ``NN SS`` suffix: ``pcsc:ACS ACR122U PICC Interface``;
4. a part of the name: ``pcsc:ACR122``.

Rules 2-4 must pick exactly one reader: two is a one-line error naming both, none a one-line error
listing the readers present. :func:`stable_name` gives the shortest of these forms that picks a
reader without its plug-order index, which ``hil devices`` prints for the inventory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from devices.base import DeviceInfo, NoReader

from .scard import describe_state, establish_context, list_readers, reader_states, release_context

_SUFFIX = re.compile(r"^(?P<base>.*\S) (?P<index>[0-9A-Fa-f]{2}) (?P<slot>[0-9A-Fa-f]{2})$")


@dataclass(frozen=True)
class ReaderName:
    """A pcscd reader name taken apart: friendly name, plug-order index, slot (the last two may be empty)."""

    full: str
    base: str
    index: str = ""
    slot: str = ""

    @classmethod
    def parse(cls, name: str) -> ReaderName:
        match = _SUFFIX.match(name)
        if match is None:
            return cls(name, name)
        return cls(name, match["base"], match["index"], match["slot"])


def glob_pattern(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` as in a shell; everything else, ``[`` included, literal; case-insensitive."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _quoted(names: list[str]) -> str:
    return "; ".join(f"'{name}'" for name in names)


def matching_readers(pattern: str, readers: list[str]) -> list[str]:
    """The readers ``pattern`` means by the first rule of the module doc that matches any."""
    wanted = pattern.lower()
    exact = [r for r in readers if r.lower() == wanted]
    if exact:
        return exact[:1]
    if is_glob(pattern):
        regex = glob_pattern(pattern)
        return [r for r in readers if regex.fullmatch(r)]
    by_base = [r for r in readers if ReaderName.parse(r).base.lower() == wanted]
    if by_base:
        return by_base
    return [r for r in readers if wanted in r.lower()]


def select_reader(pattern: str, readers: list[str]) -> str:
    """The one reader ``pattern`` names (module doc); ``""`` is the first reader pcscd lists."""
    if not readers:
        raise NoReader("no PC/SC reader is connected (pcscd lists none)")
    if not pattern:
        return readers[0]
    matches = matching_readers(pattern, readers)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoReader(f"no PC/SC reader matches '{pattern}'; readers present: {_quoted(readers)}")
    raise NoReader(f"'{pattern}' matches {len(matches)} PC/SC readers: {_quoted(matches)}; "
                   "name one by its full name or a pattern that fits only it")


def stable_name(reader: str, readers: list[str]) -> str:
    """The name to put in an inventory: without the plug-order index when that still picks only ``reader``.

    The friendly name alone if no other reader present shares it, else ``<friendly name> * SS``
    (the slot kept), else the full name (two identical readers: only the index tells them apart).
    """
    name = ReaderName.parse(reader)
    if not name.index:
        return reader
    for candidate in (name.base, f"{name.base} * {name.slot}"):
        if matching_readers(candidate, readers) == [reader]:
            return candidate
    return reader


def discover() -> list[DeviceInfo]:
    """Every reader pcscd sees, with card state, ATR and stable name; BackendUnavailable without pcscd."""
    context = establish_context()
    try:
        readers = list_readers(context)
        found = []
        for name, state, atr in reader_states(context, readers):
            card_state, problem = describe_state(state)
            found.append(DeviceInfo(f"pcsc:{name}", f"PC/SC reader {name}", card_state,
                                    atr if card_state == "present" else b"", problem,
                                    stable_uri=f"pcsc:{stable_name(name, readers)}"))
        return found
    finally:
        release_context(context)
