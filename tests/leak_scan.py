"""Looks for PINs and holder data in every file a run wrote, in every encoding a report could carry them.

Used by ``test_report_scan.py``. Robot's log.html and report.html keep their model as JavaScript:
``window.output["strings"]`` entries are either ``*``-prefixed plain text or base64 of zlib-compressed
UTF-8, so those are decoded before searching. A value is searched as ASCII/UTF-8, as hex (spaced and
unspaced, upper and lower case), as base64 at each of the three byte alignments, as JSON ``\\uXXXX``
escapes and as a Python bytes repr.
"""

from __future__ import annotations

import base64
import json
import re
import tomllib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devices.virtual.applets import number_b
from devices.virtual.profile import PKI_DIR, PROFILES_DIR, load_holder, load_profile
from harness import fixtures
from harness.iso.redact import SHORT_SECRET, secret_regex
from harness.safety import new_pin_like, wrong_pin_like

STRINGS_BLOCK = re.compile(r'window\.output\["strings"\]\s*=\s*window\.output\["strings"\]\.concat\((\[.*?\])\);',
                           re.S)
JS_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x([0-9A-Fa-f]{2})")  # JavaScript's \x3c is not JSON


@dataclass(frozen=True)
class Secret:
    label: str  # e.g. "card: auth PIN"
    value: str


@dataclass(frozen=True)
class Finding:
    path: Path
    part: str  # "file" or "log model string #N"
    secret: Secret
    encoding: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path} ({self.part}): {self.secret.label} as {self.encoding}: …{self.excerpt}…"


def profile_secrets() -> list[Secret]:
    """Every PIN, 照合番号 and holder datum of the card profiles and the holder records."""
    found: dict[str, Secret] = {}

    def add(label: str, value: str) -> None:
        if len(value.encode("utf-8")) >= 4 and value not in found:
            found[value] = Secret(label, value)

    for path in sorted(PROFILES_DIR.glob("*.toml")):
        profile = load_profile(str(path))
        for kind, spec in profile.pins.items():
            add(f"{profile.name}: {kind} PIN", spec.value)
            add(f"{profile.name}: wrong {kind} PIN the suites send", wrong_pin_like(spec.value))
            add(f"{profile.name}: new {kind} PIN the suites change to", new_pin_like(spec.value))
    holders = tomllib.loads((PKI_DIR / "holders.toml").read_text("utf-8"))
    suites = sorted(p for p in fixtures.suites_dir().rglob("*") if p.suffix in (".robot", ".resource"))
    suite_text = "".join(p.read_text("utf-8") for p in suites)
    for name in holders:
        holder = load_holder(name)
        add(f"holder {name}: My Number (照合番号A)", holder.my_number)
        add(f"holder {name}: 照合番号B", number_b(holder))
        add(f"holder {name}: name", holder.name)
        for part in holder.name.split("\u3000"):
            if part not in suite_text:  # 失効 (the revoked holder's family name) is also the suites' word "revoked"
                add(f"holder {name}: part of the name", part)
        add(f"holder {name}: address", holder.address)
        add(f"holder {name}: birth date", holder.birth_date)
    return list(found.values())


def _base64_cores(data: bytes) -> Iterator[tuple[str, str]]:
    """The base64 characters that depend only on ``data``, at each alignment of its first byte."""
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode("ascii")
        start = -(-8 * shift // 6)
        end = (8 * (shift + len(data))) // 6
        core = encoded[start:end]
        if len(core) >= 4:
            yield f"base64 (alignment {shift})", core


# A hex byte that is an ASCII letter or digit. A short value's hex found between two of these is part of a
# longer ASCII word (a random certificate CN such as ``JPKIPHONE9A3F7570355…``), the byte-level twin of the
# text form's word bounds; a PIN leaked in an APDU still stands beside a length byte or a status word.
_ALNUM_BYTE = r"(?:3[0-9]|4[1-9A-Fa-f]|5[0-9Aa]|6[1-9A-Fa-f]|7[0-9Aa])"


def encodings(value: str) -> list[tuple[str, str, str]]:
    """(encoding name, needle, bounds) for one secret value: bounds "" none, "word" text, "byte" hex bytes."""
    raw = value.encode("utf-8")
    short = len(value) < SHORT_SECRET  # the masking's own rule (harness.iso.redact)
    forms = [("text", value, "word" if short else "")]
    hexed = raw.hex()
    bytewise = "byte" if short else ""
    forms += [("hex", hexed, bytewise), ("HEX", hexed.upper(), bytewise),
              ("spaced hex", " ".join(f"{b:02x}" for b in raw), bytewise),
              ("spaced HEX", " ".join(f"{b:02X}" for b in raw), bytewise)]
    forms += [(name, core, "") for name, core in _base64_cores(raw)]
    if not value.isascii():
        forms.append(("JSON escapes", json.dumps(value)[1:-1], ""))
        forms.append(("bytes repr", repr(raw)[2:-1], ""))
    return forms


def _compile(secrets: list[Secret]) -> list[tuple[Secret, str, str, re.Pattern[str]]]:
    """(secret, encoding, needle, pattern): the needle rules a text out fast, the pattern adds the bounds."""
    compiled = []
    for secret in secrets:
        for name, needle, bounds in encodings(secret.value):
            pattern = secret_regex(needle) if bounds == "word" else re.escape(needle)
            if bounds == "byte":
                gap = " " if " " in needle else ""
                pattern = rf"(?<!{_ALNUM_BYTE}{gap}){pattern}(?!{gap}{_ALNUM_BYTE})"
            compiled.append((secret, name, needle, re.compile(pattern)))
    return compiled


def log_model_strings(text: str) -> list[str]:
    """The decoded ``window.output["strings"]`` of a Robot log.html or report.html."""
    decoded = []
    for block in STRINGS_BLOCK.findall(text):
        for item in json.loads(JS_HEX_ESCAPE.sub(r"\1\\u00\2", block)):
            if item.startswith("*"):
                decoded.append(item[1:])
            else:
                decoded.append(zlib.decompress(base64.b64decode(item)).decode("utf-8"))
    return decoded


def readable_parts(path: Path, raw: bytes | None = None) -> Iterator[tuple[str, str]]:
    text = (path.read_bytes() if raw is None else raw).decode("utf-8", errors="replace")
    if path.suffix != ".html":
        yield "file", text
        return
    # the model's compressed strings are zlib output in base64, noise to search: they are searched decoded
    yield "file", STRINGS_BLOCK.sub("", text)
    for index, string in enumerate(log_model_strings(text)):
        yield f"log model string #{index}", string


# A figure the log model sets on its own (``window.output["generated"] = 7035;``: ms from the run's start
# to the log's writing, ``baseMillis``): Robot's numbers, which a 4-digit PIN can equal by chance.
MODEL_FIGURE = re.compile(r'window\.output\["\w+"\] = (\d+);')


def _json_number(text: str, match: re.Match[str]) -> bool:
    """An unquoted number in the log model (``[1,2580,2]``: an elapsed time, an index), not a string.

    Every text of the model is a quoted string, and the decoded strings are scanned on their own.
    """
    if not match.group(0).isdigit():
        return False
    before = text[match.start() - 1: match.start()]
    after = text[match.end(): match.end() + 1]
    if before in ("[", ",") and after in (",", "]"):
        return True
    line_start = text.rfind("\n", 0, match.start()) + 1
    figure = MODEL_FIGURE.match(text, line_start)
    return figure is not None and figure.span(1) == match.span()


NUMBER_CHARS = set("0123456789.eE+-")


def _json_figure(text: str, match: re.Match[str]) -> bool:
    """A bare number in a JSON file (``"ms": 2580.1``): a figure the harness measured, not text.

    Every text a trace, recording or metrics file holds (card data, names, markers) is a quoted string,
    and strings are still searched; only the unquoted numbers of JSON are figures.
    """
    start, end = match.start(), match.end()
    while start > 0 and text[start - 1] in NUMBER_CHARS:
        start -= 1
    while end < len(text) and text[end] in NUMBER_CHARS:
        end += 1
    try:
        float(text[start:end])
    except ValueError:
        return False
    before = text[:start].rstrip(" ")[-1:]
    after = text[end:].lstrip(" ")[:1]
    return before in (":", ",", "[") and after in (",", "}", "]", "\n", "")


def scan_text(text: str, secrets: list[Secret]) -> list[tuple[Secret, str]]:
    """(secret, encoding) of every secret found in one text (a console log, say)."""
    return [(secret, encoding) for secret, encoding, needle, pattern in _compile(secrets)
            if needle in text and pattern.search(text)]


def scan(directory: Path, secrets: list[Secret]) -> tuple[list[Finding], int, int]:
    """(findings, files scanned, log-model strings decoded) for every file under ``directory`` (or that file)."""
    patterns = _compile(secrets)
    encoded = {needle: needle.encode("utf-8") for _, _, needle, _ in patterns}  # a needle can serve two secrets
    findings, files, strings = [], 0, 0
    paths = [directory] if directory.is_file() else sorted(p for p in directory.rglob("*") if p.is_file())
    for path in paths:
        files += 1
        raw = path.read_bytes()
        parts = list(readable_parts(path, raw))
        strings += sum(part != "file" for part, _ in parts)
        # Each needle is looked for once in the file's bytes (a needle in a part's text is in them too, as UTF-8:
        # twice as fast as in a str holding Japanese) and once in the decoded model strings joined (a log has
        # thousands; no needle holds a NUL, so none spans two), then in the parts of a file that holds it.
        decoded = "\0".join(text for part, text in parts if part != "file")
        held = {needle for needle, as_bytes in encoded.items() if as_bytes in raw or (decoded and needle in decoded)}
        present = [entry for entry in patterns if entry[2] in held]
        for part, text in parts if present else ():
            model = path.suffix == ".html" and part == "file"
            figures = path.suffix in (".json", ".jsonl")
            for secret, encoding, needle, pattern in present:
                if needle not in text:
                    continue
                match = next((m for m in pattern.finditer(text) if not (model and _json_number(text, m))
                              and not (figures and _json_figure(text, m))), None)
                if match:
                    excerpt = text[max(0, match.start() - 40): match.end() + 40].replace("\n", " ")
                    findings.append(Finding(path, part, secret, encoding, excerpt))
    return findings, files, strings
