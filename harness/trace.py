"""The APDU trace: every exchange of a test with direction, bytes (PINs and holder data masked), SW name and time.

The trace follows the SELECTs it records (:class:`~harness.iso.redact.ApduContext`), so it knows when a
response carries the holder's data (the My Number, the basic four, 券面 data, the sign certificate)
and shows its TLV structure and lengths instead.

The table is bounded: past ``head_rows + tail_rows`` rows only the first ``head_rows`` and the last
``tail_rows`` are kept and shown, with one line saying how many rows (and which status words) were left
out between them. A test that sends a million APDUs through ordinary keywords keeps ~150 rows in memory
and writes ~100 to the log; every exchange still goes to ``traces/<device>.jsonl``
(:mod:`harness.tracefile`), which streams to disk.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field

from harness.iso.apdu import status_name, to_hex
from harness.iso.apdu_names import command_name
from harness.iso.redact import ApduContext, redact_apdu


@dataclass(frozen=True)
class TraceEntry:
    direction: str  # "C-APDU" (host → card) or "R-APDU" (card → host)
    hex: str  # already redacted
    sw: int | None = None
    elapsed_ms: float | None = None
    note: str = ""
    name: str = ""  # the command's name (SELECT AID, VERIFY, …) on C-APDU entries

    @property
    def sw_name(self) -> str:
        return "" if self.sw is None else f"{self.sw:04X} {status_name(self.sw)}"


@dataclass
class ApduTrace:
    """Collects the exchanges of one test. Not thread-safe: one trace per channel."""

    entries: list[TraceEntry] = field(default_factory=list)  # the first head_rows, then the latest ones
    max_hex_chars: int = 96  # long responses are shortened in the table, with their length
    context: ApduContext = field(default_factory=ApduContext)
    show_holder_data: bool = False  # only for synthetic holders, under --show-holder-data
    head_rows: int = 50  # rows kept from the start of the test
    tail_rows: int = 50  # rows kept from its end
    elided: int = 0  # rows dropped between the head and the tail
    elided_sw: Counter[str] = field(default_factory=Counter)  # their status words ("9000", or "no answer")

    def _append(self, entry: TraceEntry) -> None:
        """Adds a row; once the middle holds ``tail_rows`` surplus rows they go at once (amortised O(1)), so
        at most ``head_rows + 2 * tail_rows`` rows stay, and the latest rows stay a plain list's tail."""
        self.entries.append(entry)
        if len(self.entries) > self.head_rows + 2 * self.tail_rows:
            self._elide(len(self.entries) - self.tail_rows)

    def _elide(self, stop: int) -> None:
        middle = self.entries[self.head_rows:stop]
        if not middle:
            return
        self.elided += len(middle)
        self.elided_sw.update(e.sw_name.split(" ", 1)[0] or "no answer" for e in middle if e.direction == "R-APDU")
        del self.entries[self.head_rows:stop]

    @property
    def rows(self) -> int:
        """Rows the test produced, those elided included."""
        return len(self.entries) + self.elided

    def command(self, apdu: bytes, note: str = "") -> None:
        self.context.command(apdu)
        note = note or self.context.secret_note(apdu)
        self._append(TraceEntry("C-APDU", redact_apdu(apdu), note=note, name=command_name(apdu, self.context.applet)))

    def render_response(self, raw: bytes) -> str:
        """Hex of a response to the last command; holder data masked unless lifted for a synthetic holder."""
        return to_hex(raw) if self.show_holder_data else self.context.response(raw)

    def response(self, raw: bytes, elapsed_ms: float) -> None:
        sw = int.from_bytes(raw[-2:], "big") if len(raw) >= 2 else None
        self._append(TraceEntry("R-APDU", self.render_response(raw), sw, elapsed_ms))

    def reader_exchange(self, command: bytes, response: bytes) -> tuple[TraceEntry, TraceEntry]:
        """Entries for what the reader sent on its own (GET RESPONSE, a re-sent command) and its answer."""
        sw = int.from_bytes(response[-2:], "big") if len(response) >= 2 else None
        return (TraceEntry("C-APDU", redact_apdu(command), note="sent by the reader",
                           name=command_name(command, self.context.applet)),
                TraceEntry("R-APDU", self.render_response(response), sw, note="to the reader"))

    def failure(self, message: str, elapsed_ms: float) -> None:
        self._append(TraceEntry("R-APDU", "", None, elapsed_ms, note=message))

    def clear(self) -> None:
        """Forgets the entries; the selection context stays, as it does on the card."""
        self.entries.clear()
        self.elided = 0
        self.elided_sw.clear()

    def _short(self, text: str) -> str:
        if len(text) <= self.max_hex_chars:
            return text
        count = (len(text) + 1) // 3
        return f"{text[: self.max_hex_chars]}… ({count} bytes)"

    def _bytes_cell(self, entry: TraceEntry) -> str:
        """The bytes, shortened; a long one opens (``<details>``) to show all of them."""
        note = f" {entry.note}" if entry.note else ""
        if len(entry.hex) <= self.max_hex_chars:
            return f"<code>{html.escape(entry.hex + note)}</code>"
        return (f"<details><summary><code>{html.escape(self._short(entry.hex) + note)}</code></summary>"
                f"<code style='word-break:break-all'>{html.escape(entry.hex)}</code></details>")

    def elision_note(self) -> str:
        """The line standing for the rows left out, with their status words: ``… 999,900 rows elided (…)``."""
        if not self.elided:
            return ""
        counts = ", ".join(f"{sw} ×{n:,}" for sw, n in self.elided_sw.most_common())
        return (f"… {self.elided:,} rows elided (first {self.head_rows} and last {self.tail_rows} kept; "
                f"every exchange is in traces/<device>.jsonl){'; status words: ' + counts if counts else ''}")

    def _shown(self) -> list[tuple[int, TraceEntry] | None]:
        """The rows the log shows, with their numbers in the whole test; None marks the elided ones."""
        if len(self.entries) > self.head_rows + self.tail_rows:
            self._elide(len(self.entries) - self.tail_rows)
        head = list(enumerate(self.entries[:self.head_rows], 1))
        if not self.elided:
            return [*head, *enumerate(self.entries[self.head_rows:], self.head_rows + 1)]
        first_tail = self.head_rows + self.elided + 1
        return [*head, None, *enumerate(self.entries[self.head_rows:], first_tail)]

    def as_text(self) -> str:
        lines = []
        for row in self._shown():
            if row is None:
                lines.append(self.elision_note())
                continue
            e = row[1]
            timing = "" if e.elapsed_ms is None else f" [{e.elapsed_ms:.2f} ms]"
            lines.append(f"{e.direction} {e.hex} {e.sw_name}{timing} {e.note}".rstrip())
        return "\n".join(lines)

    def as_html(self) -> str:
        rows = [
            "<tr><th>#</th><th>direction</th><th>command</th><th>bytes</th><th>status word</th><th>ms</th></tr>"
        ]
        for row in self._shown():
            if row is None:
                rows.append(f"<tr><td colspan='6'><i>{html.escape(self.elision_note())}</i></td></tr>")
                continue
            index, e = row
            timing = "" if e.elapsed_ms is None else f"{e.elapsed_ms:.2f}"
            rows.append(
                f"<tr><td>{index}</td><td>{e.direction}</td><td>{html.escape(e.name)}</td><td>{self._bytes_cell(e)}</td>"
                f"<td>{html.escape(e.sw_name)}</td><td style='text-align:right'>{timing}</td></tr>"
            )
        return "<table class='apdu-trace' border='1' style='border-collapse:collapse'>" + "".join(rows) + "</table>"
