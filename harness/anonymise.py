"""``hil record --anonymise``: the holder's data in a recording replaced by made-up values of the same shape.

A recording a lab commits must not carry a person. What the card answers to a read of a personal file
(:data:`harness.iso.redact.PERSONAL_FILES`, every 券面 EF) is rewritten so that every length and the TLV
structure stay as the card gave them (a replay parses it as the card's) while every value is the
anonymous holder's: the My Number ``000000000000`` (valid check digit), the name 匿名　花子, …

Two ways, by what the bytes are:

* the start of a file that parses as TLV (the text AP's My Number and basic four, the 券面 data): each
  leaf is replaced by the anonymous value of its tag, fitted to its length (the offsets DF21 stay);
* anything else (a certificate read in chunks, a continuation): every known personal value (the holder
  record's and those registered while reading) is replaced where it occurs, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.iso import tlv

ANONYMOUS = {"my_number": "000000000000", "name": "匿名\u3000花子", "address": "匿名県匿名市一丁目一番",
             "birth_date": "19000101", "sex": "9"}
TAG_FIELDS = {0xFF10: "my_number", 0xDF22: "name", 0xDF23: "address", 0xDF24: "birth_date", 0xDF25: "sex"}
KEPT_TAGS = frozenset({0xDF21})  # the basic four's offsets: structure
CONTAINERS = frozenset({0xFF20, 0xFF40})


def fitted(text: str, size: int) -> bytes:
    """``text`` as UTF-8 of exactly ``size`` bytes: repeated or cut at a character, padded with spaces."""
    out = b""
    if text:
        while len(out) < size:
            for char in text:
                encoded = char.encode("utf-8")
                if len(out) + len(encoded) > size:
                    break
                out += encoded
            else:
                continue
            break
    return out + b" " * (size - len(out))


def _digits(size: int) -> bytes:
    return b"0" * size


def anonymous_value(field: str, original: bytes) -> bytes:
    """The anonymous holder's ``field`` with the length of ``original`` (digits stay digits)."""
    if original.isdigit():
        value = ANONYMOUS[field] if ANONYMOUS[field].isdigit() else ""
        return (value.encode("ascii") + _digits(len(original)))[: len(original)]
    return fitted(ANONYMOUS[field], len(original))


@dataclass
class Anonymiser:
    """Rewrites personal file data; ``known`` are the personal values (text) to find inside other bytes,
    ``source`` gives more of them at each call (the values registered while the run reads the card)."""

    known: tuple[str, ...] = ()
    source: Callable[[], Iterable[str]] | None = None

    def with_known(self, values: Iterable[str]) -> Anonymiser:
        return Anonymiser(tuple({*self.known, *values}), self.source)

    def _values(self) -> list[str]:
        values = {*self.known, *(self.source() if self.source else ())}
        return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)

    def _leaves(self, data: bytes) -> bytes | None:
        """The TLVs of ``data`` with each leaf anonymised, or None unless they cover it exactly."""
        try:
            items = list(tlv.iter_tlv(data, stop_at_padding=False))
        except tlv.TlvError:
            return None
        out = b""
        for item in items:
            if item.tag in CONTAINERS:
                inner = self._leaves(item.value)
                if inner is None:
                    return None
                out += tlv.encode(item.tag, inner)
            elif item.tag in KEPT_TAGS:
                out += tlv.encode(item.tag, item.value)
            else:
                field = TAG_FIELDS.get(item.tag)
                value = anonymous_value(field, item.value) if field else bytes(len(item.value))
                out += tlv.encode(item.tag, value)
        return out if len(out) == len(data) else None

    def _substituted(self, data: bytes) -> bytes:
        out = data
        for value in self._values():
            raw = value.encode("utf-8")
            if raw in out:
                field = ("my_number" if len(value) == 12 else "birth_date") if value.isdigit() else (
                    "name" if len(value) <= 10 else "address")
                out = out.replace(raw, anonymous_value(field, raw))
        return out

    def anonymise(self, data: bytes, offset: int = 0) -> bytes:
        """``data`` (a personal file's bytes read at ``offset``, without the SW) with the holder replaced."""
        body, padding = data, b""
        if offset == 0:
            stripped = data.rstrip(b"\xff")
            body, padding = stripped, data[len(stripped):]
            leaves = self._leaves(body) if body else None
            if leaves is not None:
                return leaves + padding
        return self._substituted(data)
