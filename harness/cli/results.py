"""``hil matrix`` and ``hil trend``: figures rebuilt from the outputs of runs already made."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hil matrix`` and ``hil trend``."""
    matrix = sub.add_parser("matrix", help="rebuild the requirement matrix (a column per plan part) from Robot outputs")
    matrix.add_argument("outputs", nargs="+", help="output.xml files (merged, rerun, any)")
    matrix.add_argument("--outputdir", default=".", help="where matrix.csv and matrix.html go")
    matrix.set_defaults(func=cmd_matrix)


    trend = sub.add_parser("trend", help="pass rate and APDU latency per device across runs (trend.html)")
    trend.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output folders of hil run, oldest first")
    trend.add_argument("--out", default="results/trend.html", help="the page to write")
    trend.set_defaults(func=cmd_trend)


def cmd_matrix(args: argparse.Namespace) -> int:
    from harness import matrix

    rows = []
    out = Path(args.outputdir)
    for number, output in enumerate(args.outputs, 1):
        path = Path(output)
        if not path.is_file():
            raise UsageError(f"no output file {path}")
        try:
            rows += matrix.outcomes(path, number=number, linked_from=out)
        except Exception as exc:  # Robot's DataError names the unreadable file
            raise UsageError(f"{path}: not a readable Robot output: {str(exc).splitlines()[0]}") from None
    out.mkdir(parents=True, exist_ok=True)
    for written in matrix.write(rows, out):
        print(f"Matrix: {written.resolve()}")
    return 0


def cmd_trend(args: argparse.Namespace) -> int:
    from harness.iso.redact import redact_text
    from harness.summary import render_trend, trend_series

    series = trend_series([Path(d) for d in args.run_dirs])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(redact_text(render_trend(series)), encoding="utf-8")
    for device, points in series.items():
        shown = ", ".join(f"{run}: {rate}% / {median} ms" for run, rate, median in points)
        print(f"{device}: {shown}")
    print(f"Trend: {out.resolve()}")
    return 0
