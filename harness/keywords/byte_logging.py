"""Byte values in Robot's log as length and hex, not as Latin-1 mojibake.

Robot writes a keyword's ``bytes`` return value (``${der} = …``) by mapping each byte to the code point of
the same number, and ``Return:``/``Arguments:`` at TRACE level as Python reprs (``b'0\\x82…'``). The library's
listener passes each message through :func:`readable_bytes` first, so the log shows
``${der} = <1571 bytes: 30 82 06 1F …>``; the redaction runs after it, on the hex.
"""

from __future__ import annotations

import ast
import re

from robot.utils.text import MAX_ASSIGN_LENGTH

SHOWN_BYTES = 32
ASSIGNMENT = re.compile(r"^(\$\{[^}]+\}) = (.+)$", re.S)
BYTES_REPR = re.compile(r"""\bb(?:'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*")""", re.S)  # linear: no overlap
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def describe(data: bytes, cut: bool = False) -> str:
    """``<1571 bytes: 30 82 06 1F …>`` (``cut``: Robot kept only the first bytes, so the length is a minimum)."""
    shown = data[:SHOWN_BYTES].hex(" ").upper()
    more = " …" if len(data) > SHOWN_BYTES or cut else ""
    count = f"more than {len(data)}" if cut else str(len(data))
    return f"<{count} byte{'s' if count != '1' else ''}: {shown}{more}>"


def _from_repr(match: re.Match[str]) -> str:
    try:
        value = ast.literal_eval(match.group(0))
    except (ValueError, SyntaxError):
        return match.group(0)
    return describe(value) if isinstance(value, bytes) else match.group(0)


def readable_bytes(message: str) -> str:
    """``message`` with byte values shown as length and hex (an assignment, a ``b'…'`` repr)."""
    assignment = ASSIGNMENT.match(message)
    if assignment:
        value = assignment.group(2)
        # bytes as Robot shows them: only code points below 256, and control characters no text holds
        if CONTROL.search(value) and all(ord(c) < 256 for c in value):
            cut = len(value) == MAX_ASSIGN_LENGTH + 3 and value.endswith("...")  # Robot cuts long values
            data = value[:MAX_ASSIGN_LENGTH] if cut else value
            return f"{assignment.group(1)} = {describe(data.encode('latin-1'), cut)}"
    if "b'" in message or 'b"' in message:
        return BYTES_REPR.sub(_from_repr, message)
    return message
