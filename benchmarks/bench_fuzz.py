"""A bounded fuzz run of the virtual card (a script, not a test): ``python benchmarks/bench_fuzz.py [--apdus N]``.

Sends N random and mutated APDUs (default 100 000) to a virtual card, power-cycling it now and then, and
prints the throughput, the status words seen, and any APDU that made the card report an internal error
(6F00) or break its invariants. Exits non-zero if it found one.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time

from devices.virtual.card import VirtualCard
from harness.iso.apdu import CommandApdu

SEEDS = [
    "00A4040C0AD392F000260100000001", "00A4020C02000A", "00B0000004", "00B00000000000", "00200080",
    "0020008004" + "31323334", "802A008033" + "00" * 51 + "00", "0024018004" + "31313131", "0084000008",
]

SELECTS = ["00A4040C0AD392F000260100000001", "00A4040C0AD3921000310001010408", "00A4040C0AD3921000310001010402"]
FIDS = ["0001", "0002", "0005", "0006", "000A", "000B", "0011", "0014", "0015", "0017", "0018", "001A", "001B"]


def mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.4 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.6 and data:
            del data[rng.randrange(len(data)) :]
        elif choice < 0.8:
            data += rng.randbytes(rng.randint(1, 8))
        else:
            data[0:0] = rng.randbytes(1)
    return bytes(data)


def random_apdu(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.5:
        return mutate(rng, bytes.fromhex(rng.choice(SEEDS)))
    if roll < 0.8:
        return CommandApdu(rng.choice((0x00, 0x80)), rng.randrange(256), rng.randrange(256), rng.randrange(256),
                           rng.randbytes(rng.randint(0, 40)), rng.choice((None, rng.randint(1, 300)))).to_bytes()
    return rng.randbytes(rng.randint(0, 64))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--apdus", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--profile", default="card")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    card = VirtualCard.from_profile(args.profile)
    card.power_on()
    seen: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    start = time.perf_counter()
    for index in range(args.apdus):
        if index % 8 == 0:  # reach the deeper states: an applet and an EF selected
            card.process(bytes.fromhex(rng.choice(SELECTS)))
            card.process(bytes.fromhex("00A4020C02" + rng.choice(FIDS)))
        raw = random_apdu(rng)
        answer = card.process(raw)
        sw = answer[-2:].hex().upper() if len(answer) >= 2 else "none"
        seen[sw[:2] + "xx" if sw.startswith(("63", "61", "6C")) else sw] += 1
        if len(answer) < 2 or sw == "6F00":
            problems.append(f"APDU {index}: {raw.hex()} → {answer.hex() or 'nothing'}")
        for name in card.profile.pins:
            pin = card.pin(name)
            if not 0 <= pin.tries_left <= pin.max_tries:
                problems.append(f"APDU {index}: {name} counter out of range ({pin.tries_left})")
        if index % 1000 == 999:
            card.power_on()
    elapsed = time.perf_counter() - start
    print(f"fuzzed {args.apdus} APDUs in {elapsed:.1f} s ({args.apdus / elapsed:,.0f} APDU/s), seed {args.seed}")
    print("status words: " + ", ".join(f"{sw} ×{n}" for sw, n in seen.most_common()))
    blocked = [name for name in card.profile.pins if card.pin(name).blocked]
    print(f"PINs blocked by the fuzzing (expected: random VERIFYs): {', '.join(blocked) or 'none'}")
    print(f"problems: {len(problems)}")
    for line in problems[:20]:
        print("  " + line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
