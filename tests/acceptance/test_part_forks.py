"""Pre-flights and parts forked from the zygote (``harness/part_zygote.py``, itself a fork of ``hil``): the same
report as spawned parts, and nothing of a forked run outlives a SIGKILL of ``hil``. Real ``hil run`` and
``hil run --plan`` runs on in-process virtual cards; the run's processes are found as ``hil``'s descendants."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from robot.api import ExecutionResult

from harness.part_forks import ForkedPart, PartForker

ROOT = Path(__file__).resolve().parents[2]
SLOW_CARD = "virtual:card?sign_delay_ms=700"


def _plan(tmp_path: Path, parts: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text('name = "forked"\n' + "".join(
        f'[[run]]\nname = "{name}"\nsuites = ["{suite}"]\ndevice = "{device}"\n' for name, suite, device in parts),
        encoding="utf-8")
    return path


def _command(plan: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", "--plan", str(plan), "--outputdir", str(out), "--console",
            "quiet", "--processes", "2"]


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent PID, state, start time) of a live process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields[0], fields[19]


class _Tree:
    """The live processes below ``root``, sampled: (PID, start time) → name (``/proc/PID/comm``, read again
    each sample, since a fork names itself after it starts).

    A process is placed once, when it first shows in ``/proc``: below ``root`` if its parent is ``root`` or
    already below it. That place cannot change (an orphan goes to its nearest subreaper, ``hil``), so a sample
    reads the state of new processes only, not of the machine's hundreds of others (the whole of ``/proc`` at
    every 5 ms sample cost a core for the run). A PID gone from ``/proc`` is forgotten, so a PID reused later
    is placed anew."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.placed: dict[int, tuple[str, bool]] = {}  # PID → (start time, below root)

    def sample(self) -> dict[tuple[int, str], str]:
        live = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in self.placed.keys() - live:
            del self.placed[pid]
        new = {pid: stat for pid in live - self.placed.keys() if (stat := _stat(pid)) and stat[1] != "Z"}
        while new:  # a parent new in this sample is placed before its child (PIDs wrap: not by number)
            for pid, (parent, _state, start) in list(new.items()):
                if parent not in new:
                    known = self.placed.get(parent)
                    self.placed[pid] = (start, parent == self.root or (known is not None and known[1]))
                    del new[pid]
        found = {}
        for pid, (start, below) in self.placed.items():
            if below:
                try:
                    found[(pid, start)] = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    continue
        return found


def _watch(proc: subprocess.Popen) -> dict[tuple[int, str], str]:
    """``hil``'s descendants, sampled until it exits (bounded by the run itself)."""
    seen: dict[tuple[int, str], str] = {}
    tree = _Tree(proc.pid)
    while proc.poll() is None:
        seen.update(tree.sample())
        time.sleep(0.005)  # a pre-flight fork lives some tens of milliseconds
    return seen


def _alive(seen: dict[tuple[int, str], str]) -> list[str]:
    """The processes of ``seen`` still there (the same PID with the same start time), not zombies."""
    return [f"{pid} {name}" for (pid, start), name in seen.items()
            if (stat := _stat(pid)) and stat[2] == start and stat[1] != "Z"]


def _outcomes(output: Path) -> list[tuple[str, str]]:
    return [(t.full_name, t.status) for t in ExecutionResult(str(output)).suite.all_tests]


def test_forked_parts_give_the_report_spawned_parts_give(tmp_path):
    plan = _plan(tmp_path, [("selection", "card/selection.robot", "virtual:card"),
                            ("signing", "card/signing.robot", SLOW_CARD),
                            ("phone", "phone", "virtual:phone")])
    forked_out, spawned_out = tmp_path / "forked", tmp_path / "spawned"
    proc = subprocess.Popen(_command(plan, forked_out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    seen = _watch(proc)  # the run's own processes, while it runs: the zygote and what it forked
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    names = list(seen.values())  # a fork seen before it named itself keeps its parent's name: no exact counts
    assert {"hil-zygote", "hil-preflight", "hil-part"} <= set(names), names
    assert names.count("hil-robot") >= 3, names  # the three parts' Robots (each lives for its suites)
    spawned = subprocess.Popen(_command(plan, spawned_out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT, env=dict(os.environ, HIL_PART_FORKS="0"))
    spawned_seen = _watch(spawned)
    spawned_stdout, spawned_stderr = spawned.communicate()
    assert spawned.returncode == 0, spawned_stdout[-2000:] + spawned_stderr[-2000:]
    assert not [n for n in spawned_seen.values() if n.startswith("hil-")], spawned_seen
    assert _outcomes(forked_out / "output.xml") == _outcomes(spawned_out / "output.xml")
    assert stdout.splitlines()[-2:] == [line.replace(str(spawned_out.resolve()), str(forked_out.resolve()))
                                        for line in spawned_stdout.splitlines()[-2:]]


def test_a_single_run_forks_its_preflight_and_its_robot_and_says_what_a_spawned_one_says(tmp_path):
    """One suite on one device: the pre-flight and the Robot part are forks too (a single run spent more CPU
    on imports than on its tests), and its console and report are those of the spawned run."""
    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "harness.cli", "run", "card/selection.robot", "--device", "virtual:card",
                "--outputdir", str(out)]

    runs = {}
    for how, env in (("forked", dict(os.environ)), ("spawned", dict(os.environ, HIL_PART_FORKS="0"))):
        proc = subprocess.Popen(command(tmp_path / how), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env=env)
        seen = _watch(proc)
        stdout, stderr = proc.communicate()
        assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
        runs[how] = ({n for n in seen.values() if n.startswith("hil-")}, stdout, stderr)
    assert runs["forked"][0] - {"hil-handover"} == {"hil-part", "hil-preflight", "hil-robot", "hil-zygote"}
    assert runs["spawned"][0] == set()
    assert _outcomes(tmp_path / "forked" / "output.xml") == _outcomes(tmp_path / "spawned" / "output.xml")
    assert [line.replace("forked", "spawned") for line in runs["forked"][1].splitlines()[-2:]] == \
        runs["spawned"][1].splitlines()[-2:]
    assert runs["forked"][2].replace("forked", "spawned") == runs["spawned"][2]


def test_a_sigkill_of_hil_ends_the_zygote_and_every_forked_part(tmp_path):
    plan = _plan(tmp_path, [("slow", "card/signing.robot", SLOW_CARD),
                            ("slow too", "card/signing.robot", f"{SLOW_CARD}&extended=0")])
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(plan, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 120
    journals = [out / "parts" / "01-slow" / "journal.jsonl", out / "parts" / "02-slow-too" / "journal.jsonl"]
    seen: dict[tuple[int, str], str] = {}
    tree = _Tree(proc.pid)
    while time.monotonic() < deadline and proc.poll() is None and not all(
            j.exists() and '"event": "end"' in j.read_text(encoding="utf-8") for j in journals):
        seen.update(tree.sample())
        time.sleep(0.05)  # bounded poll of the parts' journals
    try:
        seen.update(tree.sample())
        names = list(seen.values())
        assert "hil-zygote" in names and names.count("hil-robot") >= 2, names  # both parts running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while (left := _alive(seen)) and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded: there is no event for "a process that is not my child is gone"
    assert left == []


SIGNALS_SUITE = """*** Test Cases ***
A Forked Part Has The Signals Of A Fresh Python
    ${pipe}=    Evaluate    signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN    modules=signal
    Should Be True    ${pipe}    SIGPIPE is not ignored: a write to a reader host that has gone would kill Robot
    ${name}=    Evaluate    open('/proc/self/comm').read().strip()
    Should Be Equal    ${name}    hil-robot
"""


def test_a_forked_robot_ignores_sigpipe_as_a_fresh_python_does(tmp_path):
    suite = tmp_path / "signals.robot"
    suite.write_text(SIGNALS_SUITE, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--outputdir",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert _outcomes(tmp_path / "out" / "output.xml") == [("JPKI HIL.A Forked Part Has The Signals Of A Fresh Python",
                                                           "PASS")]


@pytest.mark.parametrize("threads", [0, 1])
def test_the_zygote_is_a_fork_of_a_one_thread_process_and_spawned_beside_a_thread(tmp_path, threads):
    """A fork of a process with a second thread could inherit a lock that thread held: there the zygote is
    spawned as python -m harness.part_zygote. Either way it forks a pre-flight that runs and exits 0."""
    stop = threading.Event()
    helpers = [threading.Thread(target=stop.wait, daemon=True) for _ in range(threads)]
    for helper in helpers:
        helper.start()
    try:
        with PartForker(tmp_path) as forker:
            assert isinstance(forker.process, subprocess.Popen if threads else ForkedPart)
            read_end, write_end = os.pipe()  # after the zygote: a fork holds every descriptor open at its birth
            part = forker.start(["[]"], dict(os.environ), None, program="preflight", output=write_end)
            os.close(write_end)
            assert part is not None and part.wait(timeout=60) == 0
            with os.fdopen(read_end) as output:
                assert output.read() == ""  # no part with a device: nothing to check, nothing said
    finally:
        stop.set()
        for helper in helpers:
            helper.join()
