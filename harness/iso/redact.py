"""The one place that renders card data for people: PINs and the holder's personal data are masked here.

Three rules, one module:

* **Secret commands.** PIN bytes travel only in VERIFY (INS 20) and CHANGE REFERENCE DATA (INS 24); the
  same holds for 照合番号A (the My Number, VERIFY to text-AP EF 0014) and 照合番号B (EF 0015).
  :func:`redact_apdu` keeps the header and Lc and shows ``****`` for the data.
* **Personal files.** What the card answers to READ BINARY of the text AP's EF 0001 (My Number) and
  0002 (basic four), of any 券面 (visual) AP EF, and of the JPKI sign certificate (its SubjectAltName
  carries name, address, birth date and sex) is personal data. :class:`ApduContext` follows SELECTs so
  a trace knows which applet and EF a response comes from; :func:`render_personal` shows the TLV
  structure and lengths instead of the values.
* **Known values.** PINs and holder data the harness knows (profiles, holder records, the environment,
  what it read from the card) are registered in :data:`SECRETS`; :func:`redact_text` masks them, and
  VERIFY/CHANGE frames in any hex dump, in free text: Robot's messages, and third-party log records
  (:mod:`harness.log_redaction`).

Imports only the APDU and TLV helpers, so every layer may use it.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.iso import tlv
from harness.iso.apdu import ResponseApdu, to_hex

SECRET_INS = frozenset({0x20, 0x24})
MASK = "****"
SHOW_HOLDER_DATA_ENV = "HIL_SHOW_HOLDER_DATA"  # set by ``hil run --show-holder-data``, for synthetic holders

# JPKI-FACTS §1: the applets whose files hold personal data
APPLET_NAMES = {
    bytes.fromhex("D392F000260100000001"): "jpki",
    bytes.fromhex("D3921000310001010408"): "text",
    bytes.fromhex("D3921000310001010402"): "visual",
}
# JPKI-FACTS §2, §5: (applet, EF) → what the file holds; every EF of the visual AP is 券面 data
PERSONAL_FILES = {("text", 0x0001): "My Number", ("text", 0x0002): "basic four",
                  ("jpki", 0x0001): "sign certificate (holder attributes)"}
# JPKI-FACTS §3, §5: what the data of a VERIFY / CHANGE to each reference-data EF is
REFERENCE_DATA = {("jpki", 0x0018): "auth PIN", ("jpki", 0x001B): "sign PIN", ("text", 0x0011): "text PIN",
                  ("text", 0x0014): "照合番号A", ("text", 0x0015): "照合番号B",
                  ("visual", 0x0013): "照合番号A", ("visual", 0x0012): "照合番号B"}
SHOWN_TAGS = frozenset({0xDF21})  # the basic four's offsets: structure, not data
CONTAINER_TAGS = frozenset({0xFF20, 0xFF40})  # basic four and 券面 data: their children's tags are shown


# -- secret commands -----------------------------------------------------------------------------------
def carries_secret(apdu: bytes) -> bool:
    """True when the command's data field is reference data (a PIN, a password or a 照合番号)."""
    return len(apdu) > 5 and apdu[1] in SECRET_INS and apdu[0] & 0x80 == 0


def redact_apdu(apdu: bytes) -> str:
    """Hex of a command APDU with the PIN data replaced by ``****`` (header and Lc kept)."""
    if not carries_secret(apdu):
        return to_hex(apdu)
    if apdu[4] == 0 and len(apdu) > 7:  # extended Lc
        return f"{to_hex(apdu[:7])} {MASK}"
    return f"{to_hex(apdu[:5])} {MASK}"


# -- personal files ------------------------------------------------------------------------------------
def _masked(count: int) -> str:
    return f"{MASK}({count} byte{'s' if count != 1 else ''})"


def _children(value: bytes) -> list[tlv.Tlv] | None:
    """The TLVs of a container's value, or None unless they cover it exactly (then nothing is guessed)."""
    try:
        items = list(tlv.iter_tlv(value, stop_at_padding=False))
    except tlv.TlvError:
        return None
    covered = sum(len(tlv.encode(item.tag, item.value)) for item in items)
    return items if covered == len(value) else None


def _header(item: tlv.Tlv) -> str:
    encoded = tlv.encode(item.tag, item.value)
    return to_hex(encoded[: len(encoded) - len(item.value)])


def _render_structure(data: bytes) -> str:
    """Tag and length of the file's TLV and of a container's children; values masked (offsets shown)."""
    try:
        tag, pos = tlv.read_tag(data, 0)
        length, pos = tlv.read_length(data, pos)
    except tlv.TlvError:
        return _masked(len(data))
    value, rest = data[pos: pos + length], data[pos + length:]
    parts = [to_hex(data[:pos])]
    children = _children(value) if tag in CONTAINER_TAGS and len(value) == length else None
    if children is not None:
        inner = [f"{_header(c)} {to_hex(c.value) if c.tag in SHOWN_TAGS else _masked(len(c.value))}"
                 for c in children]
        parts.append("{" + ", ".join(inner) + "}")
    elif value:
        parts.append(_masked(len(value)) if len(value) == length else f"{_masked(len(value))} of {length}")
    if rest:
        parts.append(to_hex(rest) if all(b in (0x00, 0xFF) for b in rest) else _masked(len(rest)))
    return " ".join(parts)


def render_personal(label: str, data: bytes, offset: int = 0) -> str:
    """What a trace shows of personal file data: its TLV structure and lengths, never a value."""
    if not data:
        return ""
    if offset:
        return f"[{label} at offset {offset}] {_masked(len(data))}"
    return f"[{label}] {_render_structure(data)}"


@dataclass
class ApduContext:
    """Which applet and EF the card has selected, as seen in the commands sent: decides what is personal."""

    applet: str | None = None
    ef: int | None = None
    pending: tuple[str, int] | None = None  # (label, offset) of the data the last command asked for

    def command(self, apdu: bytes) -> None:
        if len(apdu) < 4:
            return
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        data = apdu[5: 5 + apdu[4]] if len(apdu) > 5 else b""
        if ins == 0xC0:  # GET RESPONSE continues the previous command
            return
        self.pending = None
        if ins == 0xA4 and p1 == 0x04:
            self.applet, self.ef = APPLET_NAMES.get(bytes(data), "other"), None
        elif ins == 0xA4 and len(data) == 2:
            self.ef = int.from_bytes(data, "big")
        elif ins in (0xB0, 0xB1):
            offset = ((p1 & 0x7F) << 8) | p2
            if ins == 0xB0 and p1 & 0x80:  # short EF identifier: FID low bits (JPKI-FACTS §5 notes)
                self.ef, offset = p1 & 0x1F, p2
            label = self.personal_label()
            if label:
                self.pending = (label, offset if ins == 0xB0 else 1)

    def secret_note(self, apdu: bytes) -> str:
        """``照合番号A, 12 bytes``: what a masked VERIFY/CHANGE carried, for the trace's note column."""
        if not carries_secret(apdu):
            return ""
        p2 = apdu[3]
        ef = p2 & 0x1F if p2 & 0x80 and p2 & 0x1F else self.ef  # P2 = 80|SFI names the EF itself
        candidates = [label for (applet, fid), label in REFERENCE_DATA.items()
                      if applet == self.applet and (fid == ef or fid & 0x1F == ef)]
        length = len(apdu) - (7 if apdu[4] == 0 and len(apdu) > 7 else 5)
        return f"{candidates[0] if candidates else 'reference data'}, {length} bytes masked"

    def personal_label(self) -> str | None:
        if self.applet == "visual":
            return "券面 data"
        return PERSONAL_FILES.get((self.applet or "", self.ef or -1))

    def response(self, raw: bytes) -> str:
        """Hex of a response, the data of a personal file rendered by :func:`render_personal`."""
        if self.pending is None or len(raw) <= 2:
            return to_hex(raw)
        label, offset = self.pending
        return f"{render_personal(label, raw[:-2], offset)} {to_hex(raw[-2:])}"


@dataclass(frozen=True, repr=False)
class PersonalResponse(ResponseApdu):
    """A response carrying holder data: reads and compares like any response, prints its structure only.

    Robot logs what ``Read Binary`` or ``Send APDU`` return; for a personal file that is this repr.
    """

    label: str = field(default="personal data", compare=False)
    offset: int = field(default=0, compare=False)

    def __repr__(self) -> str:
        return f"ResponseApdu({render_personal(self.label, self.data, self.offset) or 'no data'}, SW {self.sw:04X})"

    __str__ = __repr__


def personal_response(response: ResponseApdu, context: ApduContext) -> ResponseApdu:
    """``response`` as a :class:`PersonalResponse` when the context says it answers a read of a personal file."""
    if context.pending is None or not response.data:
        return response
    label, offset = context.pending
    return PersonalResponse(response.data, response.sw1, response.sw2, response.elapsed, label, offset)


# -- what testers see instead of holder data ---------------------------------------------------------------
def my_number_check_digit_ok(number: str) -> bool:
    """The check digit of a 12-digit individual number (番号法施行令 第8条)."""
    if len(number) != 12 or not number.isdigit():
        return False
    digits = [int(c) for c in reversed(number[:11])]
    total = sum(p * (n + 1 if n <= 6 else n - 5) for n, p in enumerate(digits, 1))
    remainder = total % 11
    return int(number[11]) == (0 if remainder <= 1 else 11 - remainder)


def match_note(value: Any, expected: Any, holder: str | None) -> str:
    if holder is None:
        return "no holder record to compare"
    return f"matches holder '{holder}'" if value == expected else f"differs from holder '{holder}'"


def describe_my_number(number: str, expected: str | None = None, holder: str | None = None) -> str:
    """``12 digits, check digit valid, matches holder 'card'``: what a tester needs of a My Number."""
    shape = f"{len(number)} digits" if number.isdigit() else f"{len(number)} characters, not all digits"
    check = "check digit valid" if my_number_check_digit_ok(number) else "check digit WRONG"
    return f"{shape}, {check}, {match_note(number, expected, holder)}"


class HolderValue:
    """A holder datum read from a card: compares as its value, prints as a description.

    Robot logs keyword return values (``${number} = …``) with ``str()``; this object shows
    ``<My Number: 12 digits, check digit valid, matches holder 'card'>`` there, in messages and in
    reprs. :meth:`reveal` gives the value to code that must compare or decode it; ``revealed`` is set
    only for synthetic holders under ``--show-holder-data``.
    """

    __slots__ = ("_value", "label", "revealed", "summary")

    def __init__(self, value: Any, label: str, summary: str, revealed: bool = False) -> None:
        self._value = value
        self.label = label
        self.summary = summary
        self.revealed = revealed

    def reveal(self) -> Any:
        return self._value

    def __eq__(self, other: object) -> bool:
        return self._value == (other._value if isinstance(other, HolderValue) else other)

    def __hash__(self) -> int:
        return hash(self._value)

    def __str__(self) -> str:
        return str(self._value) if self.revealed else f"<{self.label}: {self.summary}>"

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def revealed_value(value: Any) -> Any:
    """The value inside a :class:`HolderValue` (anything else unchanged)."""
    return value.reveal() if isinstance(value, HolderValue) else value


# -- known values, in free text ----------------------------------------------------------------------------
def _base64_cores(data: bytes) -> list[str]:
    cores = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        core = encoded[-(-8 * shift // 6): (8 * (shift + len(data))) // 6]
        if len(core) >= 6:
            cores.append(core)
    return cores


def value_forms(value: str) -> list[str]:
    """The spellings of a value a log could carry: text, hex (spaced or not, either case), base64."""
    raw = value.encode("utf-8")
    forms = [raw.hex(), raw.hex().upper(), raw.hex(" "), raw.hex(" ").upper(), raw.hex(":"), raw.hex(":").upper()]
    forms += _base64_cores(raw)
    if not value.isascii():
        forms += [repr(raw)[2:-1], value.encode("unicode_escape").decode("ascii")]
    return forms


SHORT_SECRET = 6  # shorter values are secrets only as whole words: a 4-digit PIN also occurs inside timestamps and ids


def secret_regex(value: str) -> str:
    """The pattern that finds ``value`` as a secret: a short one only where no ASCII letter or digit touches it.

    The one rule for masking (:class:`SecretRegistry`) and for every leak check, so that what a check calls a
    leak is always something the masking would have hidden."""
    text = re.escape(value)
    return text if len(value) >= SHORT_SECRET else rf"(?<![0-9A-Za-z]){text}(?![0-9A-Za-z])"


def holds_secret(haystack: str | bytes, value: str) -> bool:
    """Whether ``value`` stands in ``haystack`` (text, or bytes as UTF-8) under :func:`secret_regex`'s rule."""
    pattern = secret_regex(value)
    if isinstance(haystack, bytes):
        return re.search(pattern.encode("utf-8"), haystack) is not None
    return re.search(pattern, haystack) is not None


RECENT_TEXTS = 512  # scrubbed texts a registry keeps,
RECENT_MAX_CHARS = 8192  # each at most this long (a 2 KB EF as spaced hex is ~6 K): ~4 M characters at most


@dataclass
class SecretRegistry:
    """The secret values known in this process; :meth:`scrub` masks each wherever it appears in text."""

    _values: dict[str, str] = field(default_factory=dict, repr=False)  # value → label
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)
    _needles: tuple[str, ...] = field(default=(), repr=False)  # every literal the pattern's alternatives hold
    _recent: dict[str, str] = field(default_factory=dict, repr=False)  # text → scrubbed, for these values
    _by_needle: dict[str, set[str]] = field(default_factory=dict, repr=False)  # literal → its alternatives
    _subsets: dict[tuple[str, ...], re.Pattern[str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, value: str, label: str) -> None:
        value = str(value)
        if len(value) < 2:  # a one-character datum (sex) cannot be told from other text
            return
        with self._lock:
            if value not in self._values:
                self._values[value] = label
                self._pattern = None
                self._recent = {}

    def discard(self, values: Iterable[str]) -> None:
        with self._lock:
            for value in values:
                self._values.pop(str(value), None)
            self._pattern = None
            self._recent = {}

    def __contains__(self, value: str) -> bool:
        return value in self._values

    def values(self) -> list[str]:
        """The values registered so far (for ``--anonymise``, which replaces them in recorded card data)."""
        with self._lock:
            return list(self._values)

    def _compiled(self) -> tuple[re.Pattern[str] | None, tuple[str, ...], dict[str, str]]:
        with self._lock:
            if self._pattern is None and self._values:
                alternatives: set[str] = set()
                by_needle: dict[str, set[str]] = {}
                for value in self._values:
                    for needle, alternative in [(value, secret_regex(value)),
                                                *((form, re.escape(form)) for form in value_forms(value))]:
                        alternatives.add(alternative)
                        by_needle.setdefault(needle, set()).add(alternative)
                self._pattern = _alternation(alternatives)
                self._needles = tuple(by_needle)
                self._by_needle = by_needle
                self._subsets = {}
            return self._pattern, self._needles, self._recent

    def _pattern_for(self, present: tuple[str, ...]) -> re.Pattern[str]:
        """The alternation of only the alternatives whose literal is in the text: one whose literal is absent
        cannot match there, so the result is the whole pattern's, without trying ~100 alternatives at every
        position of a long text (a certificate dump holding one PIN's digits by chance cost ~5 ms)."""
        with self._lock:
            pattern = self._subsets.get(present)
            if pattern is None:
                if len(self._subsets) >= RECENT_TEXTS:
                    self._subsets.clear()
                pattern = self._subsets[present] = _alternation(
                    set().union(*(self._by_needle[needle] for needle in present)))
            return pattern

    def scrub(self, text: str) -> str:
        """``text`` with every registered value masked.

        Each alternative of the pattern is one of the needles (bounds aside), so a text holding none of them
        is returned as it is: a substring test per needle is ×7 cheaper than the alternation's scan of a text
        that holds no secret, the usual case; a text holding some is scanned for those only. A run masks the
        same texts again and again (the same SELECT, the same certificate in every trace and log line), so
        recent answers are kept, for these values only.
        """
        pattern, needles, recent = self._compiled()
        if pattern is None:
            return text
        done = recent.get(text)
        if done is None:
            present = tuple(needle for needle in needles if needle in text)
            done = self._pattern_for(present).sub(MASK, text) if present else text
            if len(text) <= RECENT_MAX_CHARS:
                if len(recent) >= RECENT_TEXTS:
                    recent.clear()
                recent[text] = done
        return done


def _alternation(alternatives: set[str]) -> re.Pattern[str]:
    """One pattern of ``alternatives``, the longest first (where two match at one place, the longer masks)."""
    return re.compile("|".join(sorted(alternatives, key=lambda a: (-len(a), a))))


SECRETS = SecretRegistry()

HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{2}(?:[ :]?[0-9A-Fa-f]{2}){4,}(?![0-9A-Fa-f])")


def _secret_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges holding VERIFY/CHANGE data in a frame dump (the APDU may sit inside a PCB or framing).

    Only a byte after a VERIFY or CHANGE instruction byte can start a header, so those places are found with
    ``bytes.find`` (a certificate dump of 2 KB holds a few) and checked left to right, the next one after the
    data of a header found."""
    starts = sorted(i - 1 for ins in SECRET_INS for i in _positions(data, ins) if i >= 1)
    spans, resume = [], 0
    for i in starts:
        if i < resume or i + 5 >= len(data):
            continue
        cla, p1, lc = data[i], data[i + 2], data[i + 4]
        if cla & 0xF0 == 0 and p1 in (0x00, 0x01) and 0 < lc <= 64:
            resume = min(len(data), i + 5 + lc)
            spans.append((i + 5, resume))
    return spans


def _positions(data: bytes, byte: int) -> list[int]:
    found, at = [], data.find(byte)
    while at >= 0:
        found.append(at)
        at = data.find(byte, at + 1)
    return found


def _mask_hex_run(match: re.Match[str]) -> str:
    run = match.group(0)
    separator = " " if " " in run else (":" if ":" in run else "")
    data = bytes.fromhex(run.replace(" ", "").replace(":", ""))
    spans = _secret_spans(data)
    if not spans:
        return run
    lower = run.lower() == run and any(c in "abcdef" for c in run)
    out, pos = [], 0
    for start, end in spans:
        out += [f"{b:02x}" if lower else f"{b:02X}" for b in data[pos:start]] + [MASK]
        pos = end
    out += [f"{b:02x}" if lower else f"{b:02X}" for b in data[pos:]]
    return separator.join(out) if separator else "".join(out)


def mask_secret_frames(text: str) -> str:
    """Masks VERIFY and CHANGE REFERENCE DATA data in every hex dump in ``text``."""
    return HEX_RUN.sub(_mask_hex_run, text)


def redact_text(text: str) -> str:
    """Free text with secret frames and every known PIN or holder datum masked."""
    if not text:
        return text
    return SECRETS.scrub(mask_secret_frames(text))
