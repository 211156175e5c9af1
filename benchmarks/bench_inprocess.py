"""Figures for the in-process virtual card (a script, not a test): run ``python benchmarks/bench_inprocess.py``.

Prints the median APDU round trip through the whole host path (CardChannel → VirtualReader → card OS),
the APDU count and time of a certificate read with extended and with short APDUs, and, with
``--suites``, the wall time of the card and phone suites.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devices import open_device
from harness.channel import CardChannel
from harness.jpki import JpkiClient

REPO = Path(__file__).resolve().parents[1]


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def apdu_round_trip(rounds: int) -> float:
    reader = open_device("virtual:card")
    reader.power_on()
    channel = CardChannel(reader)
    select = bytes.fromhex("00A4040C0AD392F000260100000001")
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        channel.transmit(select)
        samples.append(time.perf_counter() - start)
        channel.trace.clear()
    return median_us(samples)


def certificate_read(uri: str, rounds: int) -> tuple[int, float, int]:
    reader = open_device(uri)
    reader.power_on()
    channel = CardChannel(reader)
    client = JpkiClient(channel)
    client.select_jpki()
    samples, count, size = [], 0, 0
    for _ in range(rounds):
        before = channel.apdu_count
        start = time.perf_counter()
        size = len(client.read_certificate("auth"))
        samples.append(time.perf_counter() - start)
        count = channel.apdu_count - before
        channel.trace.clear()
    return count, median_us(samples), size


def suite_wall_time() -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.cli", "run", "card", "phone", "--outputdir", out],
                       cwd=REPO, check=False, capture_output=True, timeout=900)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--suites", action="store_true", help="also time the card and phone suites")
    args = parser.parse_args()
    print(f"in-process APDU round trip (SELECT, median of {args.rounds}): {apdu_round_trip(args.rounds):.1f} µs")
    for label, uri in (("extended APDUs", "virtual:card"), ("short APDUs", "virtual:card?extended=0")):
        count, us, size = certificate_read(uri, max(10, args.rounds // 20))
        print(f"auth certificate read, {label}: {size} bytes in {count} APDUs, median {us:.0f} µs")
    if args.suites:
        print(f"card + phone suites wall time: {suite_wall_time():.1f} s")


if __name__ == "__main__":
    main()
