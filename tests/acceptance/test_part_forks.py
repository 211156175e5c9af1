"""Plan parts forked from the zygote (``harness/part_zygote.py``): the same report as spawned parts, and nothing
of a forked run outlives a SIGKILL of ``hil``. Real ``hil run --plan`` runs on in-process virtual cards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from robot.api import ExecutionResult

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


def _processes(marker: str, word: str = "") -> list[str]:
    """Live processes whose environment names ``marker`` (and whose command line holds ``word``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and word in command and state != "Z":
            found.append(f"{entry.name}: {command[:160]}")
    return found


def _outcomes(output: Path) -> list[tuple[str, str]]:
    return [(t.full_name, t.status) for t in ExecutionResult(str(output)).suite.all_tests]


def test_forked_parts_give_the_report_spawned_parts_give(tmp_path):
    plan = _plan(tmp_path, [("selection", "card/selection.robot", "virtual:card"),
                            ("signing", "card/signing.robot", SLOW_CARD),
                            ("phone", "phone", "virtual:phone")])
    forked_out, spawned_out = tmp_path / "forked", tmp_path / "spawned"
    proc = subprocess.Popen(_command(plan, forked_out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    seen: set[str] = set()
    while proc.poll() is None:  # the run's own processes, while it runs: the zygote and the parts it forked
        seen.update(_processes(str(forked_out.resolve()), "harness.part_zygote"))
        time.sleep(0.05)  # bounded by the run itself
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    assert len({line.split(":")[0] for line in seen}) >= 3, seen  # the zygote and at least two forked parts
    spawned = subprocess.run(_command(plan, spawned_out), capture_output=True, text=True, cwd=ROOT, timeout=300,
                             env=dict(os.environ, HIL_PART_FORKS="0"), check=False)
    assert spawned.returncode == 0, spawned.stdout[-2000:] + spawned.stderr[-2000:]
    assert not _processes(str(spawned_out.resolve()), "harness.part_zygote")
    assert _outcomes(forked_out / "output.xml") == _outcomes(spawned_out / "output.xml")
    assert stdout.splitlines()[-2:] == [line.replace(str(spawned_out.resolve()), str(forked_out.resolve()))
                                        for line in spawned.stdout.splitlines()[-2:]]


def test_a_sigkill_of_hil_ends_the_zygote_and_every_forked_part(tmp_path):
    plan = _plan(tmp_path, [("slow", "card/signing.robot", SLOW_CARD),
                            ("slow too", "card/signing.robot", f"{SLOW_CARD}&extended=0")])
    out = tmp_path / "out"
    proc = subprocess.Popen(_command(plan, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    marker = str(out.resolve())
    deadline = time.monotonic() + 120
    journals = [out / "parts" / "01-slow" / "journal.jsonl", out / "parts" / "02-slow-too" / "journal.jsonl"]
    while time.monotonic() < deadline and not all(
            j.exists() and '"event": "end"' in j.read_text(encoding="utf-8") for j in journals):
        time.sleep(0.05)  # bounded poll of the parts' journals
    try:
        assert len(_processes(marker, "harness.part_zygote")) >= 3  # zygote, two supervisors (and Robot in each)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while (left := _processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded: there is no event for "a process that is not my child is gone"
    assert left == []
