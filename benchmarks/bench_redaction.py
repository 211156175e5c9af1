"""What masking a log message costs: the secret registry's scrub against its bare alternation pattern.

Run: ``.venv/bin/python benchmarks/bench_redaction.py [--rounds N] [OUTPUT_XML]``. The registry holds what a
run registers before any device opens (every virtual profile's PINs and holder data); the messages are every
``<msg>`` of an output.xml (by default one written here by the terminal suites in-process, so the corpus is a
real run's, in its order). Rounds alternate between the two ways; the registry's kept answers are dropped
before each of its rounds, so what it keeps is what one run's repeats give. Prints medians per message and
their ratio, and checks that both give the same text for every message.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.iso.redact import MASK, SECRETS
from harness.keywords.privacy import register_known_profiles

REPO = Path(__file__).resolve().parents[1]


def corpus(output_xml: Path) -> list[str]:
    return [msg.text or "" for msg in ElementTree.parse(output_xml).iter("msg")]


def write_corpus(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "harness.cli", "run", "terminals", "--outputdir", str(folder)],
                   cwd=folder, capture_output=True, check=True, timeout=600)
    return folder / "output.xml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of each way (default 9)")
    parser.add_argument("output_xml", nargs="?", type=Path, help="messages to mask (default: a fresh run's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        messages = corpus(args.output_xml or write_corpus(Path(scratch)))
    register_known_profiles()
    pattern, needles, _ = SECRETS._compiled()
    assert pattern is not None
    for text in messages:
        assert SECRETS.scrub(text) == pattern.sub(MASK, text), text[:80]
    timings: dict[str, list[float]] = {"alternation": [], "scrub": []}
    ways = {"alternation": lambda text: pattern.sub(MASK, text), "scrub": SECRETS.scrub}
    for _ in range(args.rounds):
        for name, way in ways.items():
            SECRETS._recent.clear()
            start = time.perf_counter()
            for text in messages:
                way(text)
            timings[name].append((time.perf_counter() - start) / len(messages) * 1e6)
    alternation, scrub = (statistics.median(timings[k]) for k in ("alternation", "scrub"))
    masked = sum(1 for text in messages if SECRETS.scrub(text) != text)
    distinct = len(set(messages))
    print(f"{len(messages)} messages ({distinct} distinct, {masked} hold a secret), {len(needles)} needles, "
          f"{args.rounds} rounds")
    print(f"alternation only   {alternation:8.1f} µs a message (median)")
    print(f"scrub              {scrub:8.1f} µs a message (median)   ×{scrub / alternation:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
