"""Virtual card construction time (a script, not a test): ``python benchmarks/bench_card_build.py``.

Every requirement of the suites builds a fresh card; parsing and checking two RSA-2048 PEM keys was
most of that (issue #13). Prints the median time of ``VirtualCard(load_profile(name))`` warm (keys,
profile and derived AP files shared per process, as the harness runs) and cold (every cache cleared
before each build, which is what every build cost before the caches).
"""

from __future__ import annotations

import argparse
import statistics
import time

from devices.virtual import pkifiles, profile, text_ap, visual_ap
from devices.virtual.card import VirtualCard


def clear_caches() -> None:
    for cached in (pkifiles._key, pkifiles._read, profile._cached, text_ap._text_files, visual_ap._visual_files):
        cached.cache_clear()


def median_ms(name: str, rounds: int, cold: bool) -> float:
    samples = []
    VirtualCard(profile.load_profile(name))
    for _ in range(rounds):
        if cold:
            clear_caches()
        start = time.perf_counter()
        VirtualCard(profile.load_profile(name))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    for name in ("card", "phone"):
        warm = median_ms(name, args.rounds, cold=False)
        cold = median_ms(name, max(5, args.rounds // 5), cold=True)
        print(f"VirtualCard({name}): warm {warm:.2f} ms, cold {cold:.1f} ms (×{cold / warm:.0f})")


if __name__ == "__main__":
    main()
