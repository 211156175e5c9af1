"""``hil record --interactive``: a small REPL of the suites' keywords and raw APDUs against one device.

A lab engineer explores a real card by hand and keeps what it answered as a recording, like a suite run
(:mod:`harness.recording`): PINs as markers, the holder's data masked, shown or anonymised. Each line is a
keyword of the library with Robot's separators (``Select Applet    jpki``) or an APDU in hex. PINs go only
through the keywords that take a PIN's name and pass the PIN guard (``Verify PIN    auth``; no keyword takes
a PIN's value): a raw VERIFY or CHANGE REFERENCE DATA with data is refused, as in a suite. Nothing typed is
written to the recording but the exchanges themselves.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from harness.iso.apdu import ResponseApdu, sw_hex, to_hex
from harness.iso.redact import PersonalResponse, redact_text
from harness.keywords.trace_files import RECORD_ANONYMISE_ENV, RECORD_FILE_ENV
from harness.tracefile import CURRENT, read_trace

HEX_LINE = re.compile(r"^(?:[0-9A-Fa-f]{2}\s*){4,}$")
SEPARATOR = re.compile(r"\s{2,}|\t")
SESSION = "interactive session"
QUIT = {"quit", "exit"}
WITHHELD = {"opendevice", "closedevice"}  # the session is one device, opened and closed by hil


def normalise(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "")


@dataclass
class Session:
    """The library with one device open, and the keywords it offers by normalised name."""

    library: Any
    keywords: dict[str, str]

    @classmethod
    def open(cls, device: str) -> Session:
        from harness.keywords import JPKILibrary

        library = JPKILibrary()
        keywords = {normalise(n): n for n in library.get_keyword_names() if normalise(n) not in WITHHELD}
        atr = library.run_keyword("open_device", [device], {})
        session = cls(library, keywords)
        print(f"Opened {device}: ATR {atr}")
        return session

    def close(self) -> None:
        self.library.run_keyword("close_device", [], {})

    def run(self, line: str) -> str:
        """The answer to one line, masked like every report; raises on a refusal or a card error."""
        if HEX_LINE.match(line):
            return show(self.library.run_keyword("send_apdu", [line], {}))
        name, *args = SEPARATOR.split(line)
        found = self.keywords.get(normalise(name))
        if found is None:
            raise LookupError(f"no keyword '{name}' (help lists them)")
        types = self.library.get_keyword_types(found) or {}
        names = [a if isinstance(a, str) else a[0] for a in self.library.get_keyword_arguments(found)]
        return show(self.library.run_keyword(found, _convert(args, names, types), {}))

    def help(self, word: str = "") -> str:
        """The keywords offered (those whose name holds ``word``), as a suite writes them."""
        shown = sorted(titled(n) for key, n in self.keywords.items() if normalise(word) in key)
        return "keywords: " + (", ".join(shown) or "none") + "; or an APDU in hex; quit"


def titled(name: str) -> str:
    """``verify_pin`` → ``Verify Pin`` (names given as ``Read ATR`` stay as they are)."""
    return " ".join(w.capitalize() for w in name.split("_")) if "_" in name else name


def _convert(args: list[str], names: list[str], types: dict[str, Any]) -> list[Any]:
    from robot.running.arguments.typeinfo import TypeInfo

    converted: list[Any] = []
    for index, value in enumerate(args):
        hint = types.get(names[index].lstrip("*")) if index < len(names) else None
        converted.append(TypeInfo.from_type_hint(hint).convert(value) if hint not in (None, str) else value)
    return converted


def show(result: Any) -> str:
    if result is None:
        return "ok"
    if isinstance(result, PersonalResponse):
        text = repr(result)
    elif isinstance(result, ResponseApdu):
        text = f"{to_hex(result.data)} {sw_hex(result.sw)} ({result.sw_name})".strip()
    elif isinstance(result, bytes):
        text = f"{len(result)} bytes: {to_hex(result)}"
    else:
        text = str(result)
    return redact_text(text)


def repl(session: Session, lines: Iterable[str], out: TextIO, prompt: bool) -> int:
    """Runs each line; returns how many were refused or failed (each said in one line)."""
    problems = 0
    if prompt:
        out.write("hil> ")
        out.flush()
    for raw in lines:
        line = raw.strip()
        if line.lower() in QUIT:
            break
        if line and not line.startswith("#"):
            try:
                asked = line.split(maxsplit=1)
                answer = session.help(*asked[1:]) if asked[0].lower() == "help" else session.run(line)
                out.write(answer + "\n")
            except Exception as exc:  # a refusal, a card error, a typo: one line, the session goes on
                problems += 1
                message = str(exc).splitlines()[0] if str(exc) else ""
                out.write(redact_text(f"refused: {type(exc).__name__}: {message}") + "\n")
        if prompt:
            out.write("hil> ")
        out.flush()
    return problems


def record_interactive(device: str, out: Path, anonymise: bool, lines: Iterable[str] | None = None) -> int:
    """Opens ``device``, runs the REPL on ``lines`` (stdin), keeps every exchange in ``out``."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # one session, never appended to an older one
    saved = {name: os.environ.get(name) for name in (RECORD_FILE_ENV, RECORD_ANONYMISE_ENV)}
    os.environ[RECORD_FILE_ENV] = str(out)
    os.environ[RECORD_ANONYMISE_ENV] = "1" if anonymise else "0"
    CURRENT.begin(SESSION, [])
    try:
        session = Session.open(device)
        try:
            problems = repl(session, sys.stdin if lines is None else lines, sys.stdout, sys.stdin.isatty())
        finally:
            session.close()
    finally:
        CURRENT.end()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    records = read_trace(out)
    exchanges = sum(1 for r in records if r["type"] == "exchange")
    holder = next((r.get("holder_data") for r in records if r["type"] == "header"), "masked")
    print(f"Recording: {out} ({exchanges} exchanges; holder data {holder}; {problems} lines refused)")
    return 0
