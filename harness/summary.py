"""``summary.html`` and ``hil trend``: the figures of runs as pictures a person reads at a glance.

One self-contained page (no network, no script): per device the tests passed, failed and not run, APDU
latency by command (box plots), READ BINARY throughput and sign time, and the timeline of the slowest
test. The run's page draws its charts itself (``harness.charts``: inline SVG, cheap enough for every run);
``hil trend`` plots with matplotlib (the optional extra ``plots``), and without it shows the tables and says
how to install it.
"""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

from harness import charts, metrics
from harness.iso.redact import redact_text

INSTALL_HINT = "pip install 'jpki-hil[plots]'"
MAX_ROWS = charts.MAX_ROWS
LONG_DECIMALS = re.compile(r"(\d\.\d)\d+")
STYLE = """body{font-family:sans-serif;margin:1.5em;max-width:72em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #bbb;padding:.2em .6em;text-align:right}th{background:#eee}td:first-child{text-align:left}
.failed{color:#b00}.passed{color:#070}.notrun{color:#777}figure{margin:1em 0}.hint{background:#ffd;padding:.5em}"""


def _pyplot() -> Any | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    plt.rcParams["svg.fonttype"] = "none"  # text as text (no glyph outlines full of numbers)
    plt.rcParams["svg.hashsalt"] = "jpki-hil"  # the same ids from run to run
    return plt


def _svg(plt: Any, figure: Any, title: str) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    svg = buffer.getvalue()
    svg = LONG_DECIMALS.sub(r"\1", svg[svg.index("<svg"):])  # no prologue inside HTML; 0.1 pt is enough
    return f"<figure aria-label='{html.escape(title)}'>{svg}<figcaption>{html.escape(title)}</figcaption></figure>"


def latency_plot(device: str, records: dict[str, Any]) -> str:
    names = sorted(records, key=lambda n: -records[n]["count"])[:MAX_ROWS]
    rows = [(f"{n} ({records[n]['count']})", charts.Box(records[n]["min"], records[n]["q1"], records[n]["median"],
                                                        records[n]["q3"], records[n]["max"])) for n in names]
    return charts.box_plots(f"APDU latency by command on {device}", rows,
                            "box: quartiles and median; whiskers: min and max")


def outcomes_plot(devices: dict[str, Any]) -> str:
    colours = (("passed", "#4a4"), ("failed", "#c33"), ("not run", "#aaa"))
    rows = [(name, [charts.Segment(key, figures["tests"][key], colour) for key, colour in colours])
            for name, figures in devices.items()]
    return charts.stacked_bars("Tests passed, failed and not run per device", rows, "tests")


def timeline_plot(slowest: dict[str, Any]) -> str:
    steps = slowest["exchanges"][:MAX_ROWS]
    total = slowest.get("exchange_count", len(slowest["exchanges"]))  # a soak's timeline keeps its first ones
    shown = "" if len(steps) == total else f", first {len(steps)} of {total:,}"
    rows = [(s["name"], s["at_ms"], max(s["ms"], 0.01)) for s in steps]
    return charts.timeline(f"Timeline of the slowest test: {slowest['test']} ({slowest['seconds']} s{shown})", rows,
                           "since the test's first APDU")


def _table(devices: dict[str, Any]) -> str:
    rows = ["<tr><th>device</th><th>passed</th><th>failed</th><th>not run</th><th>APDUs</th><th>median ms</th>"
            "<th>READ BINARY bytes/s</th><th>sign ms (median)</th></tr>"]
    for device, figures in devices.items():
        tests, sign = figures["tests"], figures.get("sign_ms") or {}
        rate = figures.get("read_binary_bytes_per_s")
        rows.append(f"<tr><td>{html.escape(device)}</td><td class='passed'>{tests['passed']}</td>"
                    f"<td class='failed'>{tests['failed']}</td><td class='notrun'>{tests['not run']}</td>"
                    f"<td>{figures['apdus']}</td><td>{figures.get('median_ms') or '–'}</td>"
                    f"<td>{rate if rate is not None else '–'}</td><td>{sign.get('median', '–')}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


def render(figures: dict[str, Any]) -> str:
    """The summary page of one run."""
    devices = figures["devices"]
    parts = [_table(devices)]
    if devices:
        parts.append(outcomes_plot(devices))
        for device, device_figures in devices.items():
            if device_figures["latency_ms"]:
                parts.append(latency_plot(device, device_figures["latency_ms"]))
        if figures.get("slowest_test", {}).get("exchanges"):
            parts.append(timeline_plot(figures["slowest_test"]))
    return page("JPKI HIL run summary", "".join(parts))


def write_summary(run_dir: Path) -> tuple[Path, Path]:
    """metrics.json and summary.html into ``run_dir``."""
    figures = metrics.collect(run_dir)
    metrics_path = metrics.write(figures, run_dir)
    summary_path = run_dir / "summary.html"
    summary_path.write_text(redact_text(render(figures)), encoding="utf-8")
    return metrics_path, summary_path


# -- hil trend ----------------------------------------------------------------------------------------
def trend_series(run_dirs: list[Path]) -> dict[str, list[tuple[str, float | None, float | None]]]:
    """Device → [(run, pass rate %, median ms)] in the order given."""
    series: dict[str, list[tuple[str, float | None, float | None]]] = {}
    for run_dir in run_dirs:
        figures = metrics.load(run_dir)
        for device, device_figures in figures["devices"].items():
            tests = device_figures["tests"]
            total = sum(tests.values())
            rate = round(100 * tests["passed"] / total, 1) if total else None
            series.setdefault(device, []).append((run_dir.name, rate, device_figures.get("median_ms")))
    return series


def render_trend(series: dict[str, list[tuple[str, float | None, float | None]]]) -> str:
    rows = ["<tr><th>device</th><th>run</th><th>pass rate %</th><th>median ms</th></tr>"]
    for device, points in series.items():
        rows += [f"<tr><td>{html.escape(device)}</td><td>{html.escape(run)}</td><td>{rate if rate is not None else '–'}"
                 f"</td><td>{median if median is not None else '–'}</td></tr>" for run, rate, median in points]
    parts = ["<table>" + "".join(rows) + "</table>"]
    plt = _pyplot()
    if plt is None:
        parts.append(f"<p class='hint'>Plots need matplotlib: <code>{INSTALL_HINT}</code>, then run again.</p>")
    else:
        for index, label in ((1, "pass rate %"), (2, "median APDU ms")):
            figure, axes = plt.subplots(figsize=(8, 3))
            for device, points in series.items():
                axes.plot([p[0] for p in points], [p[index] for p in points], marker="o", label=device)
            axes.set_ylabel(label)
            axes.legend(fontsize="small")
            parts.append(_svg(plt, figure, f"{label} per device across runs"))
    return page("JPKI HIL trend", "".join(parts))
