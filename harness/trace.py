"""The APDU trace: every exchange of a test with direction, bytes (PINs masked), SW name and time."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from harness.apdu import status_name, to_hex
from harness.safety import redact_apdu


@dataclass(frozen=True)
class TraceEntry:
    direction: str  # "C-APDU" (host → card) or "R-APDU" (card → host)
    hex: str  # already redacted
    sw: int | None = None
    elapsed_ms: float | None = None
    note: str = ""

    @property
    def sw_name(self) -> str:
        return "" if self.sw is None else f"{self.sw:04X} {status_name(self.sw)}"


@dataclass
class ApduTrace:
    """Collects the exchanges of one test. Not thread-safe: one trace per channel."""

    entries: list[TraceEntry] = field(default_factory=list)
    max_hex_chars: int = 96  # long responses are shortened in the table, with their length

    def command(self, apdu: bytes, note: str = "") -> None:
        self.entries.append(TraceEntry("C-APDU", redact_apdu(apdu), note=note))

    def response(self, raw: bytes, elapsed_ms: float) -> None:
        sw = int.from_bytes(raw[-2:], "big") if len(raw) >= 2 else None
        self.entries.append(TraceEntry("R-APDU", to_hex(raw), sw, elapsed_ms))

    def failure(self, message: str, elapsed_ms: float) -> None:
        self.entries.append(TraceEntry("R-APDU", "", None, elapsed_ms, note=message))

    def clear(self) -> None:
        self.entries.clear()

    def _short(self, text: str) -> str:
        if len(text) <= self.max_hex_chars:
            return text
        count = (len(text) + 1) // 3
        return f"{text[: self.max_hex_chars]}… ({count} bytes)"

    def as_text(self) -> str:
        lines = []
        for e in self.entries:
            timing = "" if e.elapsed_ms is None else f" [{e.elapsed_ms:.2f} ms]"
            lines.append(f"{e.direction} {e.hex} {e.sw_name}{timing} {e.note}".rstrip())
        return "\n".join(lines)

    def as_html(self) -> str:
        rows = [
            "<tr><th>#</th><th>direction</th><th>bytes</th><th>status word</th><th>ms</th></tr>"
        ]
        for index, e in enumerate(self.entries, 1):
            timing = "" if e.elapsed_ms is None else f"{e.elapsed_ms:.2f}"
            shown = html.escape(self._short(e.hex) + (f" {e.note}" if e.note else ""))
            rows.append(
                f"<tr><td>{index}</td><td>{e.direction}</td><td><code>{shown}</code></td>"
                f"<td>{html.escape(e.sw_name)}</td><td style='text-align:right'>{timing}</td></tr>"
            )
        return "<table class='apdu-trace' border='1' style='border-collapse:collapse'>" + "".join(rows) + "</table>"
