"""A plan's parts in series against side by side (a script, not a test).

``python benchmarks/bench_parallel_plan.py [--plan fixtures/lab/virtual-plan.toml] [--processes 2] [--repeat 1]``

Runs ``hil run --plan F`` and ``hil run --plan F --processes N`` in turn, ``--repeat`` times each, and prints
the median wall time and CPU time (user + system of hil and everything it started) of each, their ratios,
and whether the parallel run's report is the serial one's: the same tests with the same statuses in the
same order in output.xml, and the same matrix.csv. The main job's plan takes minutes per run.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from robot.api import ExecutionResult

REPO = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(plan: Path, out: Path, processes: int) -> tuple[float, float, str]:
    """Wall and CPU seconds of one run, and its closing line."""
    command = [sys.executable, "-m", "harness.cli", "run", "--plan", str(plan), "--outputdir", str(out),
               "--console", "quiet", "--processes", str(processes)]
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    closing = next((line for line in reversed(proc.stdout.splitlines()) if " passed, " in line
                    and not line.startswith("==")), "")
    if proc.returncode not in (0, 1, 3) or not closing:
        sys.exit(f"bench_parallel_plan: --processes {processes} stopped (exit {proc.returncode}): "
                 f"{(proc.stdout + proc.stderr).strip().splitlines()[-3:]}")
    return wall, cpu, closing


def content(out: Path) -> tuple[list[tuple[str, str]], str]:
    """What must not change between a serial and a parallel run: the tests in order, and the matrix."""
    tests = [(t.longname, t.status) for t in ExecutionResult(str(out / "output.xml")).suite.all_tests]
    return tests, (out / "matrix.csv").read_text(encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", default=str(REPO / "fixtures" / "lab" / "virtual-plan.toml"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    plan = Path(args.plan).resolve()
    figures: dict[int, list[tuple[float, float]]] = {1: [], args.processes: []}
    closing: dict[int, str] = {}
    same = True
    with tempfile.TemporaryDirectory(prefix="bench-parallel-plan-") as tmp:
        for round_ in range(args.repeat):
            contents = {}
            for processes in figures:
                out = Path(tmp) / f"out-{processes}-{round_}"
                wall, cpu, closing[processes] = run(plan, out, processes)
                figures[processes].append((wall, cpu))
                contents[processes] = content(out)
                print(f"round {round_ + 1}, --processes {processes}: {wall:.1f} s wall, {cpu:.1f} s CPU; "
                      f"{closing[processes]}", flush=True)
            same = same and contents[1] == contents[args.processes]
    walls = {p: statistics.median(w for w, _ in runs) for p, runs in figures.items()}
    cpus = {p: statistics.median(c for _, c in runs) for p, runs in figures.items()}
    n = args.processes
    print(f"{plan.name}, {os.cpu_count()} cores, median of {args.repeat}")
    for processes in figures:
        print(f"--processes {processes}: {walls[processes]:.1f} s wall, {cpus[processes]:.1f} s CPU")
    print(f"wall ratio (N={n} / serial): {walls[n] / walls[1]:.2f}  (speed-up {walls[1] / walls[n]:.2f}x)")
    print(f"CPU ratio (N={n} / serial): {cpus[n] / cpus[1]:.2f}")
    print(f"report identical to the serial run's (tests, statuses, order; matrix.csv): {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
