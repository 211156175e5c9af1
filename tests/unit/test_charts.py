"""The summary page's hand-drawn charts: valid SVG, marks where the figures put them, no number like a PIN."""

import re
import xml.etree.ElementTree as ET

import pytest

from harness.charts import MAX_ROWS, Box, Segment, box_plots, count_label, duration_label, stacked_bars, timeline

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(figure: str) -> ET.Element:
    return ET.fromstring(figure[figure.index("<svg"):figure.index("</svg>") + 6])


@pytest.mark.parametrize(("ms", "label"), [(0, "0 µs"), (0.0087, "8.7 µs"), (0.25, "0.25 ms"), (1, "1 ms"),
                                           (258.34, "258.3 ms"), (1000, "1 s"), (2580.3, "2.58 s"),
                                           (600_000, "10 min"), (1e12, "999 min")])
def test_durations_are_labelled_with_their_unit(ms, label):
    assert duration_label(ms) == label


def test_no_label_holds_a_run_of_four_digits():
    values = [i * 0.0371 for i in range(5000)] + [i * 7.3 for i in range(5000)] + [i * 1234.5 for i in range(2000)]
    assert not [v for v in values if re.search(r"\d{4}", duration_label(v) + count_label(v))]


def test_stacked_bars_draw_one_mark_per_nonzero_segment_with_its_figure():
    rows = [("card", [Segment("passed", 97, "#4a4"), Segment("failed", 2, "#c33"), Segment("not run", 0, "#aaa")]),
            ("phone", [Segment("passed", 30, "#4a4"), Segment("failed", 0, "#c33"), Segment("not run", 4, "#aaa")])]
    root = svg_of(stacked_bars("outcomes", rows, "tests"))
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles == ["card: 97 passed", "card: 2 failed", "phone: 30 passed", "phone: 4 not run"]
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    widths = [float(r.get("width")) for r in bars]
    assert widths[0] / widths[2] == pytest.approx(97 / 30, rel=0.01)  # one scale for every row


def test_box_plots_put_the_median_inside_the_box_on_a_log_axis():
    rows = [("READ BINARY (81)", Box(0.005, 0.008, 0.009, 0.012, 0.3)), ("PSO (14)", Box(5.0, 8.0, 9.3, 20.0, 40.0))]
    root = svg_of(box_plots("latency", rows, "ms"))
    groups = list(root.iter(f"{SVG}g"))
    assert len(groups) == 2
    for group in groups:
        box = group.find(f"{SVG}rect")
        median = next(line for line in group.iter(f"{SVG}line") if line.get("stroke-width") == "2")
        left, width = float(box.get("x")), float(box.get("width"))
        assert left <= float(median.get("x1")) <= left + width
    ticks = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "middle"]
    assert ticks == ["1 µs", "10 µs", "0.1 ms", "1 ms", "10 ms", "100 ms", "ms"]  # decades 10⁻³…10², the title


def test_a_timeline_keeps_its_rows_in_order_and_caps_them():
    rows = [(f"SELECT EF {i}", i * 0.5, 0.01) for i in range(MAX_ROWS + 15)]
    root = svg_of(timeline("steps", rows, "since the first APDU"))
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert labels == [f"SELECT EF {i}" for i in range(MAX_ROWS)]
    starts = [float(r.get("x")) for r in root.iter(f"{SVG}rect")]
    assert starts == sorted(starts)


def test_every_coordinate_stays_under_a_thousand_with_one_decimal():
    rows = [(f"row {i}", Box(0.01, 0.1, 1.0, 10.0, 5000.0)) for i in range(MAX_ROWS)]
    figure = box_plots("latency", rows, "ms")
    numbers = re.findall(r"=['\"](-?[\d.]+)['\"]", figure)
    assert numbers and all(float(n) < 1000 and len(n.partition(".")[2]) <= 1 for n in numbers)
    assert not re.search(r"\d{4}", figure.replace("http://www.w3.org/2000/svg", ""))  # but SVG's own namespace
