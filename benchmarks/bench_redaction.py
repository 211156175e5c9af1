"""What masking a log message costs: the secret registry's scrub against its bare alternation pattern.

Run: ``.venv/bin/python benchmarks/bench_redaction.py [--rounds N] [OUTPUT_XML]``. The registry holds what a
run registers before any device opens (every virtual profile's PINs and holder data); the messages are every
``<msg>`` of an output.xml (by default one written here by the terminal suites in-process, so the corpus is a
real run's, in its order). Rounds alternate between the two ways; the registry's kept answers are dropped
before each of its rounds, so what it keeps is what one run's repeats give. Prints medians per message and
their ratio, and checks that both give the same text for every message. A second corpus is the same messages
of 200 characters or more, each with one registered value's spaced hex in its middle (a trace that shows a
PIN before it is masked: output.xml holds only masked texts), where scrub scans for the values present only.
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
    value = SECRETS.values()[0]
    form = value.encode("utf-8").hex(" ").upper()
    holding = [f"{text[:len(text) // 2]} {form} {text[len(text) // 2:]}" for text in messages if len(text) >= 200]
    print(f"{len(messages)} messages ({len(set(messages))} distinct), {len(holding)} long ones with a value "
          f"inserted, {len(needles)} needles, {args.rounds} rounds")
    for label, texts in (("messages", messages), ("holding a value", holding)):
        for text in texts:
            assert SECRETS.scrub(text) == pattern.sub(MASK, text), text[:80]
        alternation, scrub = timed(texts, pattern, args.rounds)
        masked = sum(1 for text in texts if SECRETS.scrub(text) != text)
        print(f"{label:16s} ({masked:3d} masked)  alternation only {alternation:8.1f} µs, scrub {scrub:8.1f} µs "
              f"a message (medians)   ×{scrub / alternation:.3f}")
    return 0


def timed(texts: list[str], pattern, rounds: int) -> tuple[float, float]:
    """Median µs a message: the bare alternation, and scrub (its kept answers dropped before each round)."""
    timings: dict[str, list[float]] = {"alternation": [], "scrub": []}
    ways = {"alternation": lambda text: pattern.sub(MASK, text), "scrub": SECRETS.scrub}
    for _ in range(rounds):
        for name, way in ways.items():
            SECRETS._recent.clear()
            start = time.perf_counter()
            for text in texts:
                way(text)
            timings[name].append((time.perf_counter() - start) / max(len(texts), 1) * 1e6)
    return statistics.median(timings["alternation"]), statistics.median(timings["scrub"])


if __name__ == "__main__":
    sys.exit(main())
