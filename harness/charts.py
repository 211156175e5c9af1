"""The summary page's three charts as small hand-drawn SVG: stacked bars, box plots on a log axis, a timeline.

Drawn here rather than with matplotlib because every ``hil run`` writes ``summary.html``: importing pyplot
and rendering three figures took 1.1 s of a 2 s twelve-test run. These charts need only rectangles, lines
and text. Coordinates have one decimal and stay under 1000 (at most :data:`MAX_ROWS` rows), and axis labels
carry units (``10 ms``, ``1 s``), so no number in the picture looks like a PIN to the report's leak checks.
Every mark has a ``<title>``: a browser shows the exact figures on hover.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ROWS = 40
WIDTH = 576.0
ROW = 18.0
TOP = 8.0
AXIS = 38.0  # below the rows: tick labels and the axis title
CHAR = 7.0  # average width of a character at the 11 px font, for the label column
FONT = "font-family:sans-serif;font-size:11px"


@dataclass(frozen=True)
class Segment:
    name: str
    value: float
    colour: str


@dataclass(frozen=True)
class Box:
    """Five figures of one row: whiskers at min and max, the box from q1 to q3, the median across it."""

    low: float
    q1: float
    median: float
    q3: float
    high: float


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _figure(title: str, svg: str) -> str:
    return f"<figure aria-label='{_esc(title)}'>{svg}<figcaption>{_esc(title)}</figcaption></figure>"


class _Frame:
    """Rows of labels on the left, a plotting area on the right, an x axis under it."""

    def __init__(self, labels: Sequence[str], legend: bool = False) -> None:
        self.labels = list(labels)[:MAX_ROWS]
        longest = max((len(label) for label in self.labels), default=4)
        self.left = min(8 + CHAR * longest, WIDTH * 0.45)
        self.right = WIDTH - 30  # room for half of the last tick label
        self.top = TOP + (16 if legend else 0)
        self.bottom = self.top + ROW * len(self.labels)
        self.height = self.bottom + AXIS
        self.parts: list[str] = []

    def y(self, row: int) -> float:
        return self.top + ROW * row

    def add(self, element: str) -> None:
        self.parts.append(element)

    def svg(self) -> str:
        for row, label in enumerate(self.labels):
            self.add(f"<text x='{_n(self.left - 6)}' y='{_n(self.y(row) + ROW * 0.68)}' text-anchor='end'>"
                     f"{_esc(label)}</text>")
        self.add(f"<line x1='{_n(self.left)}' y1='{_n(self.bottom)}' x2='{_n(self.right)}' y2='{_n(self.bottom)}' "
                 "stroke='#444'/>")
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_n(WIDTH)}' height='{_n(self.height)}' "
                f"viewBox='0 0 {_n(WIDTH)} {_n(self.height)}' style='{FONT}'>" + "".join(self.parts) + "</svg>")

    def ticks(self, positions: Sequence[tuple[float, str]], title: str) -> None:
        for x, label in positions:
            self.add(f"<line x1='{_n(x)}' y1='{_n(self.top)}' x2='{_n(x)}' y2='{_n(self.bottom + 4)}' stroke='#ddd'/>"
                     f"<text x='{_n(x)}' y='{_n(self.bottom + 15)}' text-anchor='middle'>{_esc(label)}</text>")
        middle = (self.left + self.right) / 2
        self.add(f"<text x='{_n(middle)}' y='{_n(self.bottom + 31)}' text-anchor='middle'>{_esc(title)}</text>")


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """0 and round steps (1, 2 or 5 × 10ⁿ) up to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [step * i for i in range(math.ceil(high / step - 1e-9) + 1)]


def duration_label(ms: float) -> str:
    """``8.7 µs``, ``0.25 ms``, ``258.3 ms``, ``2.58 s``, ``12.5 min``: never a run of four digits."""
    if ms >= 600_000:
        return f"{min(ms / 60_000, 999.0):.1f} min".replace(".0 min", " min")
    if ms >= 1000:
        return f"{ms / 1000:.2f} s".replace(".00 s", " s")
    if ms >= 1:
        return f"{ms:.1f} ms".replace(".0 ms", " ms")
    if ms >= 0.1:
        return f"{ms:.3f}".rstrip("0").rstrip(".") + " ms"
    return f"{max(ms, 0.0) * 1000:.1f} µs".replace(".0 µs", " µs")


def count_label(value: float) -> str:
    """``40``, ``1.2k``, ``3M``: a count as the charts print it (the table above them has the exact figures)."""
    if value >= 1_000_000:
        return f"{min(value / 1_000_000, 999.0):.1f}M".replace(".0M", "M")
    if value >= 999.995:  # what .2f would print as 1000
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def stacked_bars(title: str, rows: Sequence[tuple[str, Sequence[Segment]]], axis_title: str) -> str:
    """One horizontal bar per row, its segments side by side, with a legend of the segment names."""
    rows = list(rows)[:MAX_ROWS]
    frame = _Frame([label for label, _ in rows], legend=True)
    ticks = nice_ticks(max((sum(s.value for s in segments) for _, segments in rows), default=1.0))
    scale = (frame.right - frame.left) / ticks[-1]
    for row, (label, segments) in enumerate(rows):
        x = frame.left
        for segment in segments:
            width = segment.value * scale
            if width > 0:
                frame.add(f"<rect x='{_n(x)}' y='{_n(frame.y(row) + 3)}' width='{_n(width)}' "
                          f"height='{_n(ROW - 6)}' fill='{segment.colour}'><title>{_esc(label)}: "
                          f"{count_label(segment.value)} {_esc(segment.name)}</title></rect>")
            x += width
    names = {s.name: s.colour for _, segments in rows for s in segments}
    x = frame.left
    for name, colour in names.items():
        frame.add(f"<rect x='{_n(x)}' y='{_n(TOP)}' width='10' height='10' fill='{colour}'/>"
                  f"<text x='{_n(x + 14)}' y='{_n(TOP + 9)}'>{_esc(name)}</text>")
        x += 24 + CHAR * len(name)
    frame.ticks([(frame.left + t * scale, count_label(t)) for t in ticks], axis_title)
    return _figure(title, frame.svg())


def box_plots(title: str, rows: Sequence[tuple[str, Box]], axis_title: str) -> str:
    """One horizontal box plot per row on a logarithmic millisecond axis (decades as ticks)."""
    rows = list(rows)[:MAX_ROWS]
    frame = _Frame([label for label, _ in rows])
    values = [v for _, box in rows for v in (box.low, box.high) if v > 0] or [1.0]
    low = math.floor(math.log10(min(values)))
    high = max(math.ceil(math.log10(max(values))), low + 1)
    span = frame.right - frame.left

    def x(ms: float) -> float:
        decade = math.log10(max(ms, 10.0**low))
        return frame.left + span * (decade - low) / (high - low)

    for row, (label, box) in enumerate(rows):
        middle = frame.y(row) + ROW / 2
        figures = ", ".join(f"{name} {duration_label(value)}" for name, value in
                            (("min", box.low), ("q1", box.q1), ("median", box.median), ("q3", box.q3),
                             ("max", box.high)))
        tip = f"<title>{_esc(label)}: {figures}</title>"
        frame.add(f"<g>{tip}<line x1='{_n(x(box.low))}' y1='{_n(middle)}' x2='{_n(x(box.high))}' y2='{_n(middle)}' "
                  f"stroke='#333'/><rect x='{_n(x(box.q1))}' y='{_n(frame.y(row) + 3)}' "
                  f"width='{_n(max(x(box.q3) - x(box.q1), 1.0))}' height='{_n(ROW - 6)}' fill='#cde' stroke='#333'/>"
                  f"<line x1='{_n(x(box.median))}' y1='{_n(frame.y(row) + 3)}' x2='{_n(x(box.median))}' "
                  f"y2='{_n(frame.y(row) + ROW - 3)}' stroke='#c60' stroke-width='2'/></g>")
    frame.ticks([(x(10.0**d), duration_label(10.0**d)) for d in range(low, high + 1)], axis_title)
    return _figure(title, frame.svg())


def timeline(title: str, rows: Sequence[tuple[str, float, float]], axis_title: str) -> str:
    """One bar per row from its start to its end (milliseconds), in row order: the steps of one test."""
    rows = list(rows)[:MAX_ROWS]
    frame = _Frame([label for label, _, _ in rows])
    ticks = nice_ticks(max((start + length for _, start, length in rows), default=1.0))
    scale = (frame.right - frame.left) / ticks[-1]
    for row, (label, start, length) in enumerate(rows):
        frame.add(f"<rect x='{_n(frame.left + start * scale)}' y='{_n(frame.y(row) + 4)}' "
                  f"width='{_n(max(length * scale, 1.0))}' height='{_n(ROW - 8)}' fill='#69c'>"
                  f"<title>{_esc(label)}: at {duration_label(start)}, {duration_label(length)}</title></rect>")
    frame.ticks([(frame.left + t * scale, duration_label(t)) for t in ticks], axis_title)
    return _figure(title, frame.svg())
