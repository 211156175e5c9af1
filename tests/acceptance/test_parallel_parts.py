"""``hil run --plan F --processes N``: parts side by side, what one part needs alone queues, the report in plan order.

The needs are checked directly; every other test is a real ``hil run`` driving Robot on the virtual devices
(in-process cards, pcscd + vpcd, pabot's PabotLib server leasing pool members).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult
from robot_results import opened_devices

from harness.parallel_parts import VPCD, needs_of
from harness.runner import Guards, RunOptions

ROOT = Path(__file__).resolve().parents[2]
ROBOT = ROOT / "robot"
SLOW_CARD = "virtual:card?sign_delay_ms=700"
MEMBER = """[devices.{name}]
uri = "{uri}"
pool = "{pool}"
[devices.{name}.card]
expendable = true
holder = "card"
"""


def _inventory(tmp_path: Path, pool: str, uri: str = "virtual:card") -> Path:
    path = tmp_path / "lab.toml"
    path.write_text("\n".join(MEMBER.format(name=f"ci-{n}", uri=uri, pool=pool) for n in (1, 2)), encoding="utf-8")
    return path


def _plan(tmp_path: Path, parts: list[tuple[str, str, str]]) -> Path:
    """A plan of (name, suite, device) parts."""
    path = tmp_path / "plan.toml"
    path.write_text('name = "parallel"\n' + "".join(
        f'[[run]]\nname = "{name}"\nsuites = ["{suite}"]\ndevice = "{device}"\n' for name, suite, device in parts),
        encoding="utf-8")
    return path


def _run(plan: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*hil_command(), "run", "--plan", str(plan), "--outputdir", str(out),
                           "--console", "quiet", *extra], capture_output=True, text=True, timeout=900, cwd=ROOT,
                          check=False, env={**os.environ, **(env or {})})


def _start(plan: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    # its own process group, as a shell gives a command: Ctrl-C is a SIGINT to that group
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--plan", str(plan), "--outputdir", str(out),
                             "--console", "quiet", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, start_new_session=True)


def _outcomes(output: Path) -> list[tuple[str, str]]:
    return [(t.longname, t.status) for t in ExecutionResult(str(output)).suite.all_tests]


def _parts(out: Path) -> list[Path]:
    return sorted(p for p in (out / "parts").iterdir() if p.is_dir())


def _span(output: Path) -> tuple[object, object]:
    suite = ExecutionResult(str(output)).suite
    return suite.start_time, suite.end_time


def _assert_apart(spans: list[tuple[object, object]], context: object = None) -> None:
    ordered = sorted(spans)
    assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(ordered)), (ordered, context)


def _member(output: Path) -> str:
    """The one pool member a part drove (every ``Opened NAME:`` of its suites names the same)."""
    opened = opened_devices(ExecutionResult(str(output)).suite)
    assert len(opened) == 1, (output, opened)
    return opened.pop()


def _started_before_finished(stdout: str, started: int, finished: int) -> bool:
    """Whether the console says part ``started`` began before part ``finished`` ended (the scheduler's order):
    ``== 2/4: name`` as a part starts, ``== 1/4 name: N passed, …`` as one ends."""
    words = [line.split(maxsplit=2) for line in stdout.splitlines() if line.startswith("== ")]
    start = next(i for i, w in enumerate(words) if w[1].startswith(f"{started}/") and w[1].endswith(":"))
    end = next(i for i, w in enumerate(words) if w[1].startswith(f"{finished}/") and not w[1].endswith(":"))
    return start < end


def _closing(stdout: str) -> list[str]:
    """The run's closing lines: the PINs it blocked and the ``N passed, …`` line."""
    return [line for line in stdout.splitlines() if line.startswith("PINs blocked") or line[:1].isdigit()]


def _live(marker: str) -> list[str]:
    """Live processes whose command line or environment names ``marker`` (this run's output folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            text = command + (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in text and state != "Z":
            found.append(f"{entry.name}: {command.replace(bytes(1), b' ').decode(errors='replace')[:160]}")
    return found


def _wait_gone(marker: str, seconds: float = 5.0) -> list[str]:
    deadline = time.monotonic() + seconds
    while (left := _live(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded poll of /proc: there is no event for "process gone" of a non-child
    return left


def _wait_finished(journals: list[Path], timeout: float = 180) -> None:
    """Until each journal holds a finished test: the parts' own records are the event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(j.exists() and '"event": "end"' in j.read_text(encoding="utf-8") for j in journals):
            return
        time.sleep(0.05)  # bounded poll of files other processes append to
    raise AssertionError(f"not every part finished a test within {timeout:g} s: {journals}")


# -- what a part needs alone -------------------------------------------------------------------------------------

def test_parts_queue_on_one_device_on_vpcd_and_on_a_full_pool_and_nothing_else():
    guards = Guards(readers={"ci-1": "virtual:card", "ci-2": "virtual:card", "bench": "pcsc:ACS ACR39U 00 00"},
                    pools={"pool:cards": ["ci-1", "ci-2"]})
    card = [ROBOT / "card" / "selection.robot"]
    parts = [RunOptions(card, Path("."), "pool:cards"),                            # 0 a unit of the pool
             RunOptions(card, Path("."), "pool:cards"),                            # 1
             RunOptions(card, Path("."), "pool:cards"),                            # 2
             RunOptions(card, Path("."), "ci-1"),                                  # 3 a member named directly
             RunOptions(card, Path("."), "virtual:card?via=pcsc"),                 # 4 vpcd's slots
             RunOptions(card, Path("."), "virtual:phone?via=pcsc&t0=1"),           # 5
             RunOptions(card, Path("."), "virtual:card?via=nfc"),                  # 6 a UDP port of its own
             RunOptions(card, Path("."), "virtual:card?via=nfc"),                  # 7 the same device string
             RunOptions(card, Path("."), "bench"),                                 # 8 a real reader
             RunOptions([ROBOT / "transport" / "pcsc_transport.robot"], Path("."), None),  # 9 opens via=pcsc itself
             RunOptions([ROBOT / "transport"], Path("."), None),                   # 10 recorded_answers: every bridge
             RunOptions([ROBOT / "transport" / "serial_framing.robot"], Path("."), None),  # 11 ptys, port 0
             RunOptions([ROBOT / "ceremony"], Path("."), None)]                    # 12 HTTP on port 0
    needs = needs_of(parts, guards)
    assert needs.capacity == {"pool:cards": 2}
    assert needs.parts == [{"pool:cards": 1}, {"pool:cards": 1}, {"pool:cards": 1},
                           {"device:ci-1": 1, "pool:cards": 2}, {VPCD: 1}, {VPCD: 1},
                           {"device:virtual:card?via=nfc": 1}, {"device:virtual:card?via=nfc": 1},
                           {"pcsc:ACS ACR39U 00 00": 1}, {VPCD: 1}, {VPCD: 1}, {}, {}]

    def startable(running: list[int]) -> list[int]:
        held: dict[str, int] = {}
        for index in running:
            for need, units in needs.parts[index].items():
                held[need] = held.get(need, 0) + units
        return [i for i in range(len(parts)) if i not in running and needs.fits(i, held)]

    assert startable([0, 1]) == [4, 5, 6, 7, 8, 9, 10, 11, 12]  # the pool is full: no third lease, no ci-1
    assert startable([0]) == [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert startable([3]) == [4, 5, 6, 7, 8, 9, 10, 11, 12]     # ci-1 alone: the pool waits
    assert startable([4, 6]) == [0, 1, 2, 3, 8, 11, 12]         # vpcd taken, that nfc device taken


# -- whole plans ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_plan_on_a_pool_of_two_gives_the_serial_report_and_never_shares_a_member(tmp_path):
    inventory = _inventory(tmp_path, "cards")
    plan = _plan(tmp_path, [("signing", "card/signing.robot", "pool:cards"),
                            ("certificates", "card/token_and_certificates.robot", "pool:cards"),
                            ("selection", "card/selection.robot", "pool:cards"),
                            ("errors", "card/iso_errors.robot", "pool:cards")])
    parallel = _run(plan, tmp_path / "parallel", "--processes", "2", "--inventory", str(inventory))
    assert parallel.returncode == 0, parallel.stdout[-3000:] + parallel.stderr[-3000:]
    serial = _run(plan, tmp_path / "serial", "--inventory", str(inventory))
    assert serial.returncode == 0, serial.stdout[-3000:] + serial.stderr[-3000:]

    assert _outcomes(tmp_path / "parallel" / "output.xml") == _outcomes(tmp_path / "serial" / "output.xml")
    assert (tmp_path / "parallel" / "matrix.csv").read_text(encoding="utf-8") == \
        (tmp_path / "serial" / "matrix.csv").read_text(encoding="utf-8")
    assert _closing(parallel.stdout) == _closing(serial.stdout) != []
    assert _started_before_finished(parallel.stdout, 2, 1)  # the second part began beside the first

    used = [(_member(part / "output.xml"), *_span(part / "output.xml"), part.name)
            for part in _parts(tmp_path / "parallel")]
    assert {member for member, _, _, _ in used} <= {"ci-1", "ci-2"}, used
    for member in ("ci-1", "ci-2"):
        _assert_apart([(start, end) for m, start, end, _ in used if m == member], used)
    assert {_member(part / "output.xml") for part in _parts(tmp_path / "serial")} == {"ci-1"}
    assert "tags = pool-cards" in (tmp_path / "parallel" / "pool-value-sets.ini").read_text(encoding="utf-8")


VPCD_PLAN = [("card behind pcscd", "card/selection.robot", "virtual:card?via=pcsc"),
             ("phone behind pcscd", "phone", "virtual:phone?via=pcsc"),
             ("card behind pcscd again", "card/selection.robot", "virtual:card?via=pcsc"),
             ("in-process card", "card/iso_errors.robot", "virtual:card"),
             ("in-process card again", "card/selection.robot", "virtual:card")]


def _vpcd_ports(output: Path) -> set[str]:
    """The vpcd ports the part's readers were on (``vpcd_port`` in the details ``Open Device`` logs)."""
    return set(re.findall(r"'vpcd_port': '(\d+)'", output.read_text(encoding="utf-8")))


def _assert_plan_order_report(out: Path, proc: subprocess.CompletedProcess[str]) -> None:
    parts = _parts(out)
    merged = _outcomes(out / "output.xml")  # in plan order, whatever order the parts ended in
    assert merged == [(f"parallel.{name}", status) for part in parts for name, status in _outcomes(part / "output.xml")]
    assert _closing(proc.stdout)[-1] == f"{len(merged)} passed, 0 failed, 0 skipped, 0 not run"


@pytest.mark.slow
def test_parts_on_one_device_or_on_the_shared_vpcd_never_overlap_while_others_run_beside_them(tmp_path):
    plan = _plan(tmp_path, VPCD_PLAN)
    out = tmp_path / "out"
    proc = _run(plan, out, "--processes", "2", env={"HIL_PRIVATE_PCSCD": "0"})  # the machine's pcscd for all
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    parts = _parts(out)
    _assert_apart([_span(parts[i] / "output.xml") for i in (0, 1, 2)])  # vpcd's slots: one part at a time
    _assert_apart([_span(parts[i] / "output.xml") for i in (3, 4)])     # one device string
    assert _started_before_finished(proc.stdout, 4, 1)  # the in-process card did not wait for pcscd's parts
    assert set().union(*(_vpcd_ports(parts[i] / "output.xml") for i in (0, 1, 2))) <= {"35963", "35964"}
    _assert_plan_order_report(out, proc)


@pytest.mark.slow
def test_parts_behind_vpcd_each_get_a_pcscd_of_their_own_and_run_side_by_side(tmp_path):
    plan = _plan(tmp_path, VPCD_PLAN)
    out = tmp_path / "out"
    proc = _run(plan, out, "--processes", "3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "run one at a time" not in proc.stderr, proc.stderr
    parts = _parts(out)
    # the scheduler started the second and third vpcd parts before the first had ended
    assert _started_before_finished(proc.stdout, 2, 1) and _started_before_finished(proc.stdout, 3, 1)
    ports = [_vpcd_ports(parts[i] / "output.xml") for i in (0, 1, 2)]
    assert all(len(p) == 1 for p in ports), ports  # one private pcscd per part, its vpcd on one port
    assert not set().union(*ports) & {"35963", "35964"}, ports  # never the machine's vpcd slots
    assert len(set().union(*ports)) == 3, ports
    _assert_apart([_span(parts[i] / "output.xml") for i in (3, 4)])  # one device string still waits
    _assert_plan_order_report(out, proc)
    assert _wait_gone(str(out.resolve())) == []  # each part's pcscd ended with its part


@pytest.mark.slow
def test_ctrl_c_stops_every_part_and_pabotlib_and_reports_what_ran(tmp_path):
    inventory = _inventory(tmp_path, "slow", uri=SLOW_CARD)
    plan = _plan(tmp_path, [("slow behind pcscd", "card/signing.robot", f"{SLOW_CARD}&via=pcsc"),
                            ("slow on the pool", "card/signing.robot", "pool:slow"),
                            ("never started", "card/selection.robot", "pool:slow")])
    out = tmp_path / "out"
    proc = _start(plan, out, "--processes", "2", "--inventory", str(inventory))
    try:
        _wait_finished([out / "parts" / "01-slow-behind-pcscd" / "journal.jsonl",
                        out / "parts" / "02-slow-on-the-pool" / "journal.jsonl"])
        assert any("pabot.pabotlib" in line for line in _live(str(out.resolve())))
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "hil: interrupted" in stderr and "Traceback" not in stderr
    assert "== 3/3 never started: not run (interrupted)" in stdout
    assert _wait_gone(str(out.resolve())) == []  # supervisors, Robot, pcscd, PabotLib: all gone
    tests = list(ExecutionResult(str(out / "output.xml")).suite.all_tests)
    assert len(tests) == 12 + 12 + 12 and not any(t.status == "FAIL" for t in tests)
    assert sum(t.status == "PASS" for t in tests) >= 2
    assert all("not-run" in t.tags for t in tests[24:])  # the part never started: every test not run
    assert (out / "report.html").exists() and "NOT RUN" in (out / "matrix.csv").read_text(encoding="utf-8")


@pytest.mark.slow
def test_recover_rebuilds_a_killed_parallel_plan_with_parts_never_started(tmp_path):
    plan = _plan(tmp_path, [("slow", "card/signing.robot", SLOW_CARD),
                            ("slow too", "card/signing.robot", f"{SLOW_CARD}&extended=0"),
                            ("after them", "card/selection.robot", "virtual:card")])
    out = tmp_path / "out"
    proc = _start(plan, out, "--processes", "2")
    try:
        _wait_finished([out / "parts" / "01-slow" / "journal.jsonl", out / "parts" / "02-slow-too" / "journal.jsonl"])
    finally:
        proc.kill()  # SIGKILL of hil alone: its supervisors end the parts when their stdin closes
        proc.communicate()
    assert _wait_gone(str(out.resolve())) == []
    recovered = subprocess.run([*hil_command(), "recover", str(out)], capture_output=True,
                               text=True, timeout=120, cwd=ROOT, check=False)
    assert recovered.returncode == 0, recovered.stderr
    tests = list(ExecutionResult(str(out / "output.xml")).suite.all_tests)
    assert len(tests) == 12 + 12 + 12
    assert sum(t.status == "PASS" for t in tests) >= 2 and any("not-run" in t.tags for t in tests)
    assert (out / "matrix.csv").read_text(encoding="utf-8").splitlines()[0] == \
        "requirement,title,slow,slow too,after them"


def test_a_second_run_into_a_folder_starts_the_part_that_took_longest_first(tmp_path):
    plan = _plan(tmp_path, [("selection", "card/selection.robot", "virtual:card"),
                            ("iso errors", "card/iso_errors.robot", "virtual:card?extended=0"),
                            ("phone", "phone", "virtual:phone")])
    out = tmp_path / "out"
    first = _run(plan, out, "--processes", "2")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    history = json.loads((out / ".hil-part-seconds.json").read_text(encoding="utf-8"))
    assert sorted(history) == ["iso errors", "phone", "selection"] and all(s > 0 for s in history.values())
    history.update({"phone": 99.0, "selection": 2.0, "iso errors": 1.0})  # as if the phone part had been slowest
    (out / ".hil-part-seconds.json").write_text(json.dumps(history), encoding="utf-8")
    second = _run(plan, out, "--processes", "2")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    started = [line.split()[1] for line in second.stdout.splitlines() if line.startswith("== ") and
               line.split()[1].endswith(":")]
    assert started == ["3/3:", "1/3:", "2/3:"], second.stdout  # longest first
    assert _outcomes(out / "output.xml") == [  # the report keeps the plan's order
        (f"parallel.{name}", status) for part in _parts(out) for name, status in _outcomes(part / "output.xml")]
