"""Hostile input at the loaders and boundaries, in large counts (a script, not a test).

``python benchmarks/bench_fuzz_inputs.py [--files 5000] [--uris 20000] [--frames 20000] [--seed N]``

Prints, per loader and boundary, how many cases were accepted, refused with the typed one-line error,
refused with an untyped or multi-line one, or escaped uncaught, and the time taken; then the inventory
loader's time for 16,000 devices (it used to be quadratic). Exits non-zero if anything escaped or was
untyped. The nfcpy boundary needs loopback UDP and the serial one a pty: on a shared machine, run it where
neither collides with other jobs.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_support import (
    INVENTORY_SEEDS,
    PROTOCOL_SEEDS,
    Tally,
    file_cases,
    run_loader,
    run_uris,
    uri_cases,
)
from hostile_picc import run_frames
from hostile_serial import run_serial_frames

from devices.base import DeviceError
from devices.registry import check_uri
from devices.serial.protocol import ProtocolFileError, load_protocol
from harness.lab import InventoryError, load_inventory


def timed(run) -> tuple[Tally, float]:
    started = time.perf_counter()
    tally = run()
    return tally, time.perf_counter() - started


def large_inventory(workdir: Path, devices: int) -> float:
    text = "".join(
        f'[devices.reader-{n}]\nuri = "pcsc:Reader {n}"\ndescription = "desk {n}"\ncontactless = true\n'
        f'[devices.reader-{n}.card]\nkind = "card"\nexpendable = false\nholder = "card"\n'
        f'pin_env = {{ auth = "DESK{n}_AUTH_PIN" }}\n' for n in range(devices))
    path = workdir / "large.toml"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    loaded = load_inventory(path)
    elapsed = time.perf_counter() - started
    assert len(loaded.devices) == devices
    print(f"inventory of {devices:,} devices ({path.stat().st_size / 2**20:.1f} MiB): loaded in {elapsed:.2f} s")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000, help="hostile files per loader")
    parser.add_argument("--uris", type=int, default=20000, help="hostile device names")
    parser.add_argument("--frames", type=int, default=20000, help="hostile frames from the card side (nfcpy)")
    parser.add_argument("--serial-frames", type=int, default=20000,
                        help="hostile answers from a serial reader module on a pty (about 25 per second)")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        runs = [
            lambda: run_loader("inventory loader", load_inventory, InventoryError,
                               file_cases(INVENTORY_SEEDS, random.Random(args.seed), args.files), workdir),
            lambda: run_loader("protocol loader", load_protocol, ProtocolFileError,
                               file_cases(PROTOCOL_SEEDS, random.Random(args.seed + 1), args.files), workdir),
            lambda: run_uris(check_uri, DeviceError, uri_cases(random.Random(args.seed + 2), args.uris)),
            lambda: run_frames(args.frames, args.seed + 3),
            lambda: run_serial_frames(args.serial_frames, args.seed + 4),
        ]
        bad = 0
        for run in runs:
            tally, elapsed = timed(run)
            print(f"{tally.line()} [{elapsed:.1f} s]")
            if tally.kinds:
                print("  by kind: " + ", ".join(f"{kind} ×{n}" for kind, n in tally.kinds.most_common()))
            for sample in tally.samples:
                print(f"  {sample}")
            bad += tally.uncaught + tally.untyped
        large_inventory(workdir, 16_000)
    print(f"problems: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
