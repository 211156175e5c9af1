"""The tests' forked ``hil`` (tests/hil_forkserver.py) against the real ``python -m harness.cli``: the same
output, exit status, signals and end, so a test that uses it tests what a lab runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import hil_forkserver
import pytest
from hil_forkserver import fork_client_command
from robot.api import ExecutionResult

REPO = Path(__file__).resolve().parents[2]
SPAWNED = [sys.executable, "-m", "harness.cli"]


@pytest.fixture(params=["forked", "spawned"])
def command(request) -> list[str]:
    if request.param == "spawned":
        return SPAWNED
    forked = fork_client_command()
    assert forked, "the fork server did not start"
    return forked


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _server_pid() -> int:
    fork_client_command()
    return hil_forkserver._started["process"].pid


def _serve(command: list[str], *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*command, "virtual", "serve", "card", "--nfc-udp", "0", *extra], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "open nfc:udp:127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def test_a_run_prints_writes_and_exits_as_the_real_command_does(tmp_path):
    runs = {}
    for label, command in (("forked", fork_client_command()), ("spawned", SPAWNED)):
        out = tmp_path / label
        proc = subprocess.run([*command, "run", "card/selection.robot", "--outputdir", str(out)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300, check=False)
        total = ExecutionResult(str(out / "output.xml")).statistics.total
        said = (proc.stdout.replace(label, "LABEL"), proc.stderr.replace(label, "LABEL"))
        runs[label] = (proc.returncode, *said, (total.passed, total.failed))
    assert runs["forked"][0] == runs["spawned"][0] == 0
    assert runs["forked"][1].splitlines()[-4:] == runs["spawned"][1].splitlines()[-4:]
    assert re.search(r"^\d+ passed, 0 failed", runs["forked"][1], re.M)
    assert runs["forked"][2] == runs["spawned"][2]
    assert runs["forked"][3] == runs["spawned"][3]


@pytest.mark.parametrize("args", [["run", "nope"], ["devices", "--bogus"], ["run", "card", "--device", "nowhere:x"]])
def test_bad_input_is_the_same_one_line_and_exit_status(args):
    forked = subprocess.run([*fork_client_command(), *args], capture_output=True, text=True, timeout=60, check=False)
    spawned = subprocess.run([*SPAWNED, *args], capture_output=True, text=True, timeout=60, check=False)
    assert (forked.returncode, forked.stdout, forked.stderr) == (spawned.returncode, spawned.stdout, spawned.stderr)
    assert forked.returncode == 2


def test_a_sigint_stops_a_served_card_which_writes_its_state(command, tmp_path):
    state = tmp_path / "state.json"
    proc = _serve(command, "--state-file", str(state))
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0, proc.stderr.read()
    assert "auth" in json.loads(state.read_text(encoding="utf-8"))["pins"]


def test_a_process_killed_by_a_signal_leaves_that_signal_as_its_status(command):
    proc = _serve(command)
    proc.send_signal(signal.SIGUSR1)  # the default action: the process dies of it
    assert proc.wait(20) == -signal.SIGUSR1


def test_a_killed_client_takes_its_fork_with_it():
    server = _server_pid()
    before = set(_children_of(server))
    proc = _serve(fork_client_command())
    forks = set(_children_of(server)) - before
    assert len(forks) == 1
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 10
    while forks & set(_children_of(server)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not forks & set(_children_of(server))


def test_a_client_whose_fixtures_are_not_the_servers_runs_the_real_command(tmp_path):
    """The harness reads HIL_FIXTURES as it imports: a fork of the server would list the server's profiles."""
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "desk-card.toml").write_text((REPO / "fixtures" / "cards" / "card.toml").read_text("utf-8"), "utf-8")
    proc = subprocess.run([*fork_client_command(), "devices"], env={**os.environ, "HIL_FIXTURES": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("virtual:")]
    assert listed == ["virtual:desk-card"]
