"""Statistics of a long run of exchanges in constant memory: what a soak keeps instead of one row per APDU.

A night-long soak sends a million APDUs; one log row or one list element each would grow without a cap
(Robot keeps every keyword it ran, ~7.5 KB of memory and ~900 bytes of output.xml each). A
:class:`SoakStats` keeps, whatever the count: exchanges and failures per status word, a latency
histogram with logarithmic buckets (percentiles from it, within one bucket's width, ~4.9 %), the exact
minimum, maximum and mean, the first and last ``keep`` exchanges and the first ``keep`` failures.
"""

from __future__ import annotations

import html
import math
from collections import Counter, deque
from dataclasses import dataclass, field

# Latency buckets: 48 per decade from 1 µs (each ~4.9 % wide) up to 100 s; slower ones go in the last.
BUCKETS_PER_DECADE = 48
LOWEST_MS = 0.001
BUCKET_COUNT = BUCKETS_PER_DECADE * 8 + 1


@dataclass(frozen=True)
class Exchange:
    """One exchange as the soak reports it: its number, the command (redacted), the answer and the verdict."""

    index: int
    command: str
    response: str
    sw: str  # "9000", or "" when no answer came
    ms: float
    problem: str = ""  # empty when the answer was the one expected


def bucket_of(ms: float) -> int:
    if ms <= LOWEST_MS:
        return 0
    return min(BUCKET_COUNT - 1, 1 + int(math.log10(ms / LOWEST_MS) * BUCKETS_PER_DECADE))


def bucket_upper_ms(bucket: int) -> float:
    """The upper edge of a bucket: a percentile read from the histogram is at most this."""
    return LOWEST_MS * 10 ** (bucket / BUCKETS_PER_DECADE)


@dataclass
class SoakStats:
    """Counts, latency histogram and a bounded sample of one soak's exchanges."""

    keep: int = 10  # first and last exchanges kept, and first failures
    count: int = 0
    failures: int = 0
    by_sw: Counter[str] = field(default_factory=Counter)
    failures_by_sw: Counter[str] = field(default_factory=Counter)
    histogram: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)
    total_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0
    first: list[Exchange] = field(default_factory=list)
    last: deque[Exchange] = field(default_factory=deque)
    first_failures: list[Exchange] = field(default_factory=list)

    def add(self, exchange: Exchange) -> None:
        self.count += 1
        self.by_sw[exchange.sw or "no answer"] += 1
        self.histogram[bucket_of(exchange.ms)] += 1
        self.total_ms += exchange.ms
        self.min_ms = min(self.min_ms, exchange.ms)
        self.max_ms = max(self.max_ms, exchange.ms)
        if exchange.problem:
            self.failures += 1
            self.failures_by_sw[exchange.sw or "no answer"] += 1
            if len(self.first_failures) < self.keep:
                self.first_failures.append(exchange)
        if len(self.first) < self.keep:
            self.first.append(exchange)
            return
        self.last.append(exchange)
        if len(self.last) > self.keep:
            self.last.popleft()

    def percentile_ms(self, share: float) -> float:
        """The latency below which ``share`` of the exchanges fell (a bucket's upper edge, capped at the max)."""
        if not self.count:
            return 0.0
        wanted = max(1, math.ceil(share * self.count))
        seen = 0
        for bucket, n in enumerate(self.histogram):
            seen += n
            if seen >= wanted:
                return min(self.max_ms, max(self.min_ms, bucket_upper_ms(bucket)))
        return self.max_ms

    def summary(self) -> dict[str, object]:
        """The figures as plain values (what the keyword returns and logs)."""
        return {"count": self.count, "failures": self.failures, "by_sw": dict(self.by_sw.most_common()),
                "failures_by_sw": dict(self.failures_by_sw.most_common()),
                "min_ms": round(self.min_ms if self.count else 0.0, 3),
                "mean_ms": round(self.total_ms / self.count, 3) if self.count else 0.0,
                "p50_ms": round(self.percentile_ms(0.5), 3), "p90_ms": round(self.percentile_ms(0.9), 3),
                "p99_ms": round(self.percentile_ms(0.99), 3), "p999_ms": round(self.percentile_ms(0.999), 3),
                "max_ms": round(self.max_ms, 3)}

    def line(self) -> str:
        figures = self.summary()
        sws = ", ".join(f"{sw} ×{n:,}" for sw, n in self.by_sw.most_common())
        return (f"{self.count:,} exchanges, {self.failures:,} unexpected; status words {sws or 'none'}; "
                f"ms min {figures['min_ms']} p50 {figures['p50_ms']} p90 {figures['p90_ms']} "
                f"p99 {figures['p99_ms']} p99.9 {figures['p999_ms']} max {figures['max_ms']}")

    def as_html(self) -> str:
        """The sample as one bounded table: first ``keep``, a line for the rest, last ``keep``, then failures."""
        head = "<tr><th>#</th><th>command</th><th>response</th><th>SW</th><th>ms</th><th>verdict</th></tr>"
        rows = [head, *map(_row, self.first)]
        between = self.count - len(self.first) - len(self.last)
        if between > 0:
            rows.append(f"<tr><td colspan='6'><i>… {between:,} exchanges between (counted above)</i></td></tr>")
        rows += map(_row, self.last)
        table = "<table class='soak' border='1' style='border-collapse:collapse'>" + "".join(rows) + "</table>"
        if not self.first_failures:
            return table
        shown = "".join(map(_row, self.first_failures))
        more = self.failures - len(self.first_failures)
        tail = f"<tr><td colspan='6'><i>… {more:,} more</i></td></tr>" if more > 0 else ""
        return (f"{table}<p>first unexpected answers</p><table class='soak-failures' border='1' "
                f"style='border-collapse:collapse'>{head}{shown}{tail}</table>")


def _row(e: Exchange) -> str:
    verdict = html.escape(e.problem) if e.problem else "ok"
    return (f"<tr><td>{e.index}</td><td><code>{html.escape(e.command)}</code></td>"
            f"<td><code>{html.escape(e.response)}</code></td><td>{html.escape(e.sw)}</td>"
            f"<td style='text-align:right'>{e.ms:.3f}</td><td>{verdict}</td></tr>")


@dataclass(frozen=True)
class Step:
    """One command of a soak script and what its answer must be."""

    command: bytes
    expected_sw: int
    expected_response: bytes | None = None  # the whole answer (data and SW), when given


MAX_TIMES = 100_000_000  # a loop that sends traffic is bounded (a million APDUs take about a minute in-process)


def parse_step(text: str, default_sw: str = "9000") -> Step:
    """``00B0000010`` (answer ``default_sw``), ``00B0000010 -> 6982`` (that SW) or ``… -> <data and SW>``."""
    command_text, _, expected = (part.strip() for part in text.partition("->"))
    command = _hex(command_text, "command")
    if len(command) < 4:
        raise ValueError(f"soak step {text!r}: a command is at least the 4-byte header")
    wanted = _hex(expected or default_sw, "expected answer")
    if len(wanted) < 2:
        raise ValueError(f"soak step {text!r}: the expected answer needs a status word (4 hex digits)")
    sw = int.from_bytes(wanted[-2:], "big")
    return Step(command, sw, wanted if len(wanted) > 2 else None)


def check_times(times: object) -> int:
    try:
        count = int(str(times))
    except ValueError:
        raise ValueError(f"times must be a whole number, got {times!r}") from None
    if not 1 <= count <= MAX_TIMES:
        raise ValueError(f"times must be between 1 and {MAX_TIMES:,}, got {count:,}")
    return count


def verdict(step: Step, answer: bytes, first_answer: bytes | None) -> str:
    """Why ``answer`` is not the one expected (empty when it is); ``first_answer`` for ``same_answer``."""
    sw = int.from_bytes(answer[-2:], "big") if len(answer) >= 2 else None
    if sw != step.expected_sw:
        got = "no status word" if sw is None else f"{sw:04X}"
        return f"expected SW {step.expected_sw:04X}, got {got}"
    if step.expected_response is not None and answer != step.expected_response:
        return f"expected {len(step.expected_response) - 2} data bytes as given, got {len(answer) - 2} others"
    if first_answer is not None and answer != first_answer:
        return "the answer differs from the first answer to this command"
    return ""


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError:
        raise ValueError(f"the {what} {text!r} is not hex") from None
