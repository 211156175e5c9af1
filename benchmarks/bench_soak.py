"""The soak's bounds (a script, not a test): ``python benchmarks/bench_soak.py [--counts 10000,100000,1000000]``.

For each count, runs the soak suite's READ BINARY test (``Repeat Exchange`` on the in-process virtual card)
as ``hil run`` runs Robot, and prints the Robot process's peak RSS (``wait4``), output.xml and
``traces/virtual-card.jsonl`` sizes, wall time, and the peak RSS of computing the run's figures
(``metrics.collect``, which reads the trace file a line at a time). ``--naive`` adds the same count sent as
one ``Send Raw APDU`` keyword per APDU (a FOR loop), the way a suite without the soak keyword would:
the growth the soak keyword avoids. The target: under 200 MB RSS and 50 MB output.xml at 1,000,000.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.runner import RunOptions, robot_command

REPO = Path(__file__).resolve().parents[1]
SOAK = REPO / "robot" / "soak" / "apdu_soak.robot"
NAIVE = """*** Settings ***
Resource            {resources}/card.resource
Suite Setup         Open Card Under Test
Suite Teardown      Close Device

*** Test Cases ***
One Keyword Per APDU
    Start APDU Trace
    Select JPKI AP
    Select EF    000A
    FOR    ${{i}}    IN RANGE    ${{SOAK_APDUS}}
        Send Raw APDU    00B0000004
    END
    Log APDU Trace
"""


def peak_rss_mb(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """(peak RSS MB of the process, wall seconds, exit code), the RSS from the kernel's own account."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, process.returncode


def run(suite: Path, count: int, outputdir: Path, include: list[str]) -> dict[str, float]:
    options = RunOptions(suites=[suite], outputdir=outputdir, device="virtual:card", include=include,
                         robot_args=["--variable", f"SOAK_APDUS:{count}"], console="none")
    rss, wall, code = peak_rss_mb(robot_command(options, outputdir))
    if code != 0:
        raise SystemExit(f"bench_soak: the run of {count} APDUs ended with exit {code} (see {outputdir})")
    figures_rss, figures_wall, _ = peak_rss_mb(
        [sys.executable, "-c", f"from pathlib import Path; from harness import metrics; "
                               f"metrics.collect(Path({str(outputdir)!r}))"])
    trace = outputdir / "traces" / "virtual-card.jsonl"
    return {"rss": rss, "wall": wall, "output": (outputdir / "output.xml").stat().st_size / 1e6,
            "trace": trace.stat().st_size / 1e6 if trace.exists() else 0.0,
            "figures_rss": figures_rss, "figures_wall": figures_wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10000,100000,1000000", help="APDU counts, comma-separated")
    parser.add_argument("--naive", default="10000", help="counts for one keyword per APDU ('' for none)")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs' folders here (default: a temporary one)")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",") if c]
    naive = [int(c) for c in args.naive.split(",") if c]
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(args.keep or scratch)
        suite = base / "naive.robot"
        suite.parent.mkdir(parents=True, exist_ok=True)
        suite.write_text(NAIVE.format(resources=REPO / "robot" / "resources"), encoding="utf-8")
        rows = [("Repeat Exchange", n, run(SOAK, n, base / f"soak-{n}", ["SOAK-READ-001"])) for n in counts]
        rows += [("one keyword per APDU", n, run(suite, n, base / f"naive-{n}", [])) for n in naive]
    print(f"{'mode':22} {'APDUs':>10} {'wall s':>8} {'peak RSS MB':>12} {'output.xml MB':>14} "
          f"{'B/APDU':>7} {'trace MB':>9} {'figures RSS MB':>15}")
    for mode, n, f in rows:
        print(f"{mode:22} {n:>10,} {f['wall']:>8.1f} {f['rss']:>12.1f} {f['output']:>14.3f} "
              f"{f['output'] * 1e6 / n:>7.1f} {f['trace']:>9.1f} {f['figures_rss']:>15.1f}")
    soak = {n: f for mode, n, f in rows if mode == "Repeat Exchange"}
    if len(soak) > 1:
        low, high = min(soak), max(soak)
        growth = (soak[high]["rss"] - soak[low]["rss"]) * 1024 / (high - low)
        print(f"RSS growth {low:,} → {high:,}: {growth * 1024:.2f} bytes per APDU "
              f"(one keyword per APDU: ~7.5 KB); output.xml ×{soak[high]['output'] / soak[low]['output']:.2f} "
              f"for ×{high / low:g} the APDUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
