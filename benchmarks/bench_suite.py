"""The harness's costs side by side in one run (a script that prints figures, not a test).

Run where pcscd may be started (root; e.g. inside ``/work/wt/isolated`` on the shared machine):

    .venv/bin/python benchmarks/bench_suite.py [--rounds 10] [--opens 12] [--keyword-apdus 500]
        [--main-job [--plan fixtures/lab/virtual-plan.toml] [--baseline main]] [--test-command [--shards 1,3]]

Prints medians and ratios:

- APDU overhead: raw pyscard ``SCardTransmit`` vs ``PcscReader.transmit`` vs ``CardChannel.transmit``
  (the channel's deadline worker included), interleaved batches on one virtual card behind vpcd;
- PC/SC open and close: ``virtual:card?via=pcsc`` with parked card servers (now) and with every close
  taking the card out (how it was: a presence poll at each end), and a ``pcsc:`` reader with and
  without its pooled context; the card itself is built outside the timed part;
- card construction: ``VirtualCard(profile)`` and ``load_profile`` + ``VirtualCard``;
- keyword overhead per APDU: Robot's ``Send APDU`` in a loop against the in-process card, against
  ``CardChannel.transmit`` on the same card;
- with ``--main-job``: the plan's wall and CPU time and its Open/Close Device medians, and with
  ``--baseline REF`` the same for the code of git REF, in the same run;
- with ``--test-command``: the test command's pytest (``tests/run_shards.py``) wall and CPU for each shard
  count of ``--shards`` (long: minutes each), and with ``--baseline REF`` the baseline tree's pytest.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smartcard import scard  # noqa: E402

from devices import open_device  # noqa: E402
from devices.pcsc.reader import PcscReader  # noqa: E402
from devices.virtual.bridges.pcsc import open_via_pcsc  # noqa: E402
from devices.virtual.bridges.vpcd_sessions import PARKED  # noqa: E402
from devices.virtual.card import VirtualCard  # noqa: E402
from devices.virtual.pcscd import ensure_pcscd  # noqa: E402
from devices.virtual.profile import load_profile  # noqa: E402
from harness.channel import CardChannel  # noqa: E402

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
BATCH = 200
clock = time.perf_counter


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def row(label: str, value: str, note: str = "") -> None:
    print(f"  {label:<46} {value:>14}  {note}")


def ratio(a: float, b: float) -> str:
    if not b:
        return "-"
    value = a / b
    return f"×{value:.2f}" if value >= 0.1 else f"×{value:.4f} (1/{1 / value:.0f})"


# -- APDU overhead -------------------------------------------------------------------------------
def apdu_overhead(rounds: int) -> None:
    reader = open_device("virtual:card?via=pcsc")
    assert isinstance(reader, PcscReader)
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    hcard = 0
    try:
        reader.power_on()
        hr, hcard, protocol = scard.SCardConnect(context, reader.name, scard.SCARD_SHARE_SHARED,
                                                 scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
        apdu = list(SELECT_JPKI)
        channel = CardChannel(reader)
        direct = CardChannel(reader)

        def without_worker() -> object:
            reader.answers_in_caller = True  # type: ignore[attr-defined]  # the channel calls it directly
            try:
                return direct.transmit(SELECT_JPKI)
            finally:
                del reader.answers_in_caller  # type: ignore[attr-defined]

        paths: dict[str, Callable[[], object]] = {
            "raw SCardTransmit": lambda: scard.SCardTransmit(hcard, protocol, apdu),
            "PcscReader.transmit": lambda: reader.transmit(SELECT_JPKI),
            "CardChannel.transmit, no deadline (trace only)": without_worker,
            "CardChannel.transmit (trace + deadline worker)": lambda: channel.transmit(SELECT_JPKI),
        }
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):  # interleaved batches: drift hits every path alike
            for name, send in paths.items():
                for _ in range(BATCH):
                    start = clock()
                    send()
                    samples[name].append(clock() - start)
                channel.trace.clear()
                direct.trace.clear()
        raw = statistics.median(samples["raw SCardTransmit"])
        print(f"APDU round trip through pcscd + vpcd ({rounds} × {BATCH} SELECTs per path):")
        for name, values in samples.items():
            value = statistics.median(values)
            row(name, f"{value * 1e6:9.1f} µs", ratio(value, raw) + " raw")
        channel.close()
    finally:
        if hcard:
            scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        scard.SCardReleaseContext(context)
        reader.close()


# -- PC/SC open and close ------------------------------------------------------------------------
def bridge_open_close(opens: int, parked: bool) -> tuple[float, float]:
    PARKED.clear()
    PARKED.enabled = parked
    profile = load_profile("card")
    opened, closed = [], []
    try:
        for _ in range(opens):
            card = VirtualCard(profile)  # outside the timing: that is card construction
            start = clock()
            reader = open_via_pcsc(card, "virtual:card?via=pcsc", {"via": "pcsc"})
            reader.wait_for_card(5)
            reader.power_on()
            opened.append(clock() - start)
            assert reader.transmit(SELECT_JPKI) == b"\x90\x00"
            start = clock()
            reader.power_off()
            reader.close()
            closed.append(clock() - start)
    finally:
        PARKED.enabled = True
        PARKED.clear()
    return median_ms(opened), median_ms(closed)


def reader_open_close(opens: int) -> dict[bool, tuple[float, float]]:
    """``pcsc:<name>`` open/close with and without the pooled context, interleaved; by ``pooled``."""
    reader = open_device("virtual:card?via=pcsc")  # a card in a vpcd reader, read through pcsc:<name>
    assert isinstance(reader, PcscReader)
    times: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
    try:
        for _ in range(opens):
            for pooled in (False, True):
                start = clock()
                other = PcscReader(reader.name, pooled=pooled)
                other.wait_for_card(5)
                other.power_on()
                times[pooled][0].append(clock() - start)
                start = clock()
                other.power_off()
                other.close()
                times[pooled][1].append(clock() - start)
    finally:
        reader.close()
    return {pooled: (median_ms(opened), median_ms(closed)) for pooled, (opened, closed) in times.items()}


def open_close(opens: int) -> None:
    print(f"PC/SC open (open + wait for card + power on) and close (power off + close), medians of {opens}:")
    before = bridge_open_close(opens, parked=False)
    after = bridge_open_close(opens, parked=True)
    row("virtual:card?via=pcsc open, card out at close", f"{before[0]:9.2f} ms")
    row("virtual:card?via=pcsc open, parked server", f"{after[0]:9.2f} ms", ratio(after[0], before[0]))
    row("virtual:card?via=pcsc close, card out", f"{before[1]:9.2f} ms")
    row("virtual:card?via=pcsc close, parked server", f"{after[1]:9.2f} ms", ratio(after[1], before[1]))
    by_mode = reader_open_close(opens * 4)
    fresh, pooled = by_mode[False], by_mode[True]
    row("pcsc:<reader> open, new context", f"{fresh[0]:9.2f} ms")
    row("pcsc:<reader> open, pooled context", f"{pooled[0]:9.2f} ms", ratio(pooled[0], fresh[0]))
    row("pcsc:<reader> close, context released", f"{fresh[1]:9.2f} ms")
    row("pcsc:<reader> close, context pooled", f"{pooled[1]:9.2f} ms", ratio(pooled[1], fresh[1]))


# -- card construction ---------------------------------------------------------------------------
def card_construction(count: int) -> None:
    profile = load_profile("card")
    built, loaded = [], []
    for _ in range(count):
        start = clock()
        VirtualCard(profile)
        built.append(clock() - start)
        start = clock()
        VirtualCard(load_profile("card"))
        loaded.append(clock() - start)
    print(f"Card construction, medians of {count}:")
    row("VirtualCard(profile)", f"{median_ms(built):9.2f} ms")
    row("VirtualCard(load_profile('card'))", f"{median_ms(loaded):9.2f} ms")


# -- keyword overhead ----------------------------------------------------------------------------
SUITE = """*** Settings ***
Library    harness.keywords.JPKILibrary

*** Test Cases ***
Send APDU In A Loop
    Open Device    virtual:card
    FOR    ${{i}}    IN RANGE    {count}
        Send APDU    00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01
    END
    Close Device
"""


def keyword_elapsed(output: Path) -> list[float]:
    from robot.api import ExecutionResult, ResultVisitor

    class Collect(ResultVisitor):
        def __init__(self) -> None:
            self.seconds: list[float] = []

        def start_keyword(self, keyword) -> None:  # type: ignore[no-untyped-def]
            if keyword.name.lower() == "send apdu":
                self.seconds.append(keyword.elapsed_time.total_seconds())

    collect = Collect()
    ExecutionResult(str(output)).visit(collect)
    return collect.seconds


def keyword_overhead(count: int) -> None:
    reader = open_device("virtual:card")
    reader.power_on()
    channel = CardChannel(reader)
    direct = []
    for _ in range(count):
        start = clock()
        channel.transmit(SELECT_JPKI)
        direct.append(clock() - start)
    channel.trace.clear()
    reader.close()
    work = Path(tempfile.mkdtemp(prefix="hil-bench-"))
    try:
        (work / "loop.robot").write_text(SUITE.format(count=count))
        started = clock()
        subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(work), "--log", "NONE",  # traces too
                        "--report", "NONE", "--console", "none", str(work / "loop.robot")],
                       cwd=REPO, check=True, env=_env(REPO))
        wall = clock() - started
        per_keyword = keyword_elapsed(work / "output.xml")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    apdu, keyword = statistics.median(direct), statistics.median(per_keyword)
    print(f"Keyword overhead, in-process card, {count} SELECTs:")
    row("CardChannel.transmit", f"{apdu * 1e6:9.1f} µs")
    row("Robot 'Send APDU' keyword (its elapsed time)", f"{keyword * 1e6:9.1f} µs", ratio(keyword, apdu) + " APDU")
    row("robot process wall / APDU", f"{wall / count * 1e6:9.1f} µs", "(start-up included)")


# -- the main job --------------------------------------------------------------------------------
def _env(root: Path) -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(root)}


def run_plan(root: Path, plan: Path, label: str) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix="hil-bench-plan-"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = clock()
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--plan", str(plan), "--outputdir",
                           str(out)], cwd=root, env=_env(root), capture_output=True, text=True, check=False)
    wall = clock() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = [line for line in proc.stdout.splitlines() if "passed" in line][-1:] or ["no summary"]
    figures = {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}
    from robot.api import ExecutionResult, ResultVisitor

    class Collect(ResultVisitor):
        def __init__(self) -> None:
            self.times: dict[str, list[float]] = {"Open Device": [], "Close Device": []}

        def start_keyword(self, keyword) -> None:  # type: ignore[no-untyped-def]
            if keyword.name in self.times:
                self.times[keyword.name].append(keyword.elapsed_time.total_seconds())

    if (out / "output.xml").exists():
        collect = Collect()
        ExecutionResult(str(out / "output.xml")).visit(collect)
        for name, values in collect.times.items():
            figures[name] = median_ms(values) if values else float("nan")
            figures[name + " total"] = sum(values)
    print(f"  {label}: {summary[0].strip()} (exit {proc.returncode})")
    shutil.rmtree(out, ignore_errors=True)
    return figures


def main_job(plan: Path, baseline: str | None) -> None:
    print(f"Main job: hil run --plan {plan.relative_to(REPO) if plan.is_relative_to(REPO) else plan}")
    results = {"this tree": run_plan(REPO, plan, "this tree")}
    if baseline:
        tree = Path(tempfile.mkdtemp(prefix="hil-bench-baseline-"))
        try:
            archive = subprocess.run(["git", "archive", baseline], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            if (REPO / "fixtures" / "pki").exists() and not (tree / "fixtures" / "pki").exists():
                shutil.copytree(REPO / "fixtures" / "pki", tree / "fixtures" / "pki")
            baseline_plan = tree / plan.relative_to(REPO)
            if not baseline_plan.exists():  # a plan the baseline does not have: run the same file
                baseline_plan.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(plan, baseline_plan)
            results[baseline] = run_plan(tree, baseline_plan, baseline)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
    now = results["this tree"]
    for key, unit in (("wall", "s"), ("cpu", "s"), ("Open Device", "ms"), ("Close Device", "ms"),
                      ("Open Device total", "s"), ("Close Device total", "s")):
        if key not in now:
            continue
        line = f"{now[key]:9.2f} {unit}"
        note = ""
        if baseline and key in results[baseline]:
            note = f"{baseline}: {results[baseline][key]:.2f} {unit}, {ratio(now[key], results[baseline][key])}"
        row(f"{key} (median)" if unit == "ms" else key, line, note)


# -- the test command --------------------------------------------------------------------------------
def run_pytest(root: Path, shards: int | None, label: str) -> dict[str, float]:
    """The test command's pytest in ``root``: sharded when the tree has the runner, else one plain pytest."""
    import os

    runner = root / "tests" / "run_shards.py"
    command = [sys.executable, str(runner)] if runner.exists() else [sys.executable, "-m", "pytest"]
    # this tree runs as installed (.venv's editable install): PYTHONPATH would make the wheel tests see the
    # checkout; a baseline tree needs it, and its wheel tests then fail (their lines are printed)
    env = {**(_env(root) if root != REPO else os.environ), "HIL_TEST_SHARDS": str(shards or 1),
           "HIL_TEST_LOGS": tempfile.mkdtemp(prefix="hil-bench-")}
    env.pop("HIL_TEST_SHARD", None)
    os.environ.pop("HIL_TEST_SHARD", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = clock()
    proc = subprocess.run([*command, "-q", "-p", "no:cacheprovider"], cwd=root, env=env, capture_output=True,
                          text=True, check=False)
    wall = clock() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    last = proc.stdout.strip().splitlines()[-1:] or ["no summary"]
    print(f"  {label}: {last[0].strip()} (exit {proc.returncode})")
    for line in proc.stdout.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            print(f"    {line[:160]}")
    shutil.rmtree(env["HIL_TEST_LOGS"], ignore_errors=True)
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def test_command(shard_counts: list[int], baseline: str | None) -> None:
    print("Test command (pytest part; set-up and lint excluded)")
    results = {f"{n} shard{'s' if n > 1 else ''}": run_pytest(REPO, n, f"{n} shards") for n in shard_counts}
    if baseline:
        tree = Path(tempfile.mkdtemp(prefix="hil-bench-baseline-"))
        try:
            archive = subprocess.run(["git", "archive", baseline], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            results[baseline] = run_pytest(tree, None, baseline)
        finally:
            shutil.rmtree(tree, ignore_errors=True)
    first = next(iter(results.values()))
    for label, figures in results.items():
        row(f"test command, {label}", f"{figures['wall']:9.1f} s wall {figures['cpu']:7.1f} s CPU",
            "" if figures is first else f"wall {ratio(figures['wall'], first['wall'])}, "
                                        f"CPU {ratio(figures['cpu'], first['cpu'])} of the first")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help=f"batches of {BATCH} APDUs per path (default 10)")
    parser.add_argument("--opens", type=int, default=12, help="opens and closes per mode (default 12)")
    parser.add_argument("--cards", type=int, default=10, help="cards built for the construction figure")
    parser.add_argument("--keyword-apdus", type=int, default=500, help="Send APDU keywords in the loop")
    parser.add_argument("--main-job", action="store_true", help="also run the plan (long: about a minute)")
    parser.add_argument("--plan", type=Path, default=REPO / "fixtures" / "lab" / "virtual-plan.toml")
    parser.add_argument("--baseline", help="git ref whose code runs the same plan in this run, e.g. main")
    parser.add_argument("--test-command", action="store_true", help="also time the test command's pytest (long)")
    parser.add_argument("--shards", default="5,7", help="shard counts for --test-command (default 5,7)")
    args = parser.parse_args()
    ensure_pcscd()
    apdu_overhead(args.rounds)
    open_close(args.opens)
    card_construction(args.cards)
    keyword_overhead(args.keyword_apdus)
    if args.main_job:
        main_job(args.plan.resolve(), args.baseline)
    if args.test_command:
        test_command([int(n) for n in args.shards.split(",")], args.baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
