"""Parallel runs on a device pool (a script, not a test): ``python benchmarks/bench_pool.py [--sizes 1,2,4]``.

For N virtual devices in one pool, the wall time of ``hil run card --device pool:bench --processes N``
(pabot workers, each leasing its own device through PabotLib's value sets) and the speed-up against N = 1.
On a machine with fewer cores than N the workers compete for them: the figure says what this machine gives.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def inventory(folder: Path, size: int) -> Path:
    path = folder / f"pool-{size}.toml"
    path.write_text("".join(f'[devices.bench-{n}]\nuri = "virtual:card?timeout={30 + n}"\npool = "bench"\n'
                            f'[devices.bench-{n}.card]\nexpendable = true\nholder = "card"\n\n'
                            for n in range(size)), encoding="utf-8")
    return path


def wall_time(folder: Path, size: int) -> float:
    command = [sys.executable, "-m", "harness.cli", "run", "card", "--device", "pool:bench", "--processes",
               str(size), "--inventory", str(inventory(folder, size)), "--outputdir", str(folder / f"out-{size}"),
               "--console", "quiet"]
    env = dict(os.environ, HIL_LOCK_DIR=str(folder / "locks"))
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_pool: N={size} failed (exit {proc.returncode}): {proc.stdout.strip().splitlines()[-1:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,2,4", help="pool sizes to time (comma-separated)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        times = {size: wall_time(Path(tmp), size) for size in sizes}
    base = times[sizes[0]]
    print(f"card suite on a pool of N virtual devices ({os.cpu_count()} cores)")
    for size, seconds in times.items():
        print(f"N={size}: {seconds:.1f} s wall, speed-up {base / seconds:.2f}x against N={sizes[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
