"""hil run as a lab runs it: fresh results only, one run per output folder, interrupts, kills, recovery.

Every run here is a real ``hil run`` process driving Robot on the virtual devices.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult

from harness.locks import FileLock
from harness.runner import OUTPUT_LOCK

SLOW_CARD = "virtual:card?sign_delay_ms=700"


def hil(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*hil_command(), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_until(stream, marker: str, count: int = 1, timeout: float = 120) -> str:
    """Reads lines until ``marker`` was seen ``count`` times (the run's own progress is the event)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while seen.count(marker) < count and time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen += line
    assert seen.count(marker) >= count, seen[-2000:]
    return seen


def run_processes(outputdir: Path, forks: bool = True) -> list[int]:
    """PIDs of live processes of the run into this output folder: a spawned one's environment names the
    folder's journal; a fork of hil (its zygote, pre-flight, parts and their Robots) shows hil's command line,
    which names the folder (/proc/PID/environ shows the environment a process was started with, not a fork's).
    ``forks=False``: the spawned ones only (hil itself and its forks aside)."""
    marker = f"HIL_JOURNAL={outputdir.resolve()}".encode()
    folders = {str(outputdir).encode(), str(outputdir.resolve()).encode()}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            environ = (entry / "environ").read_bytes()
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (marker in environ or (forks and folders & set(arguments))) and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(outputdir: Path, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := run_processes(outputdir)) and time.monotonic() < deadline:
        time.sleep(0.1)  # bounded poll of /proc: there is no event for "process gone" of a non-child
    return left


def test_an_empty_selection_never_shows_the_previous_results(tmp_path):
    first = hil("run", "card/selection.robot", "--outputdir", str(tmp_path))
    assert first.returncode == 0 and "12 passed, 0 failed" in first.stdout
    refused = hil("run", "card/selection.robot", "--include", "NO-SUCH", "--outputdir", str(tmp_path))
    assert refused.returncode == 2 and "passed" not in refused.stdout
    assert refused.stderr.strip() == "hil: error: no test of card/selection.robot matches the --include/--exclude tags"
    # Robot itself selects nothing (its own --test): the earlier results are gone, none are shown
    again = hil("run", "card/selection.robot", "--outputdir", str(tmp_path), "--", "--test", "NO-SUCH")
    assert again.returncode != 0 and "passed" not in again.stdout
    assert not (tmp_path / "output.xml").exists() and not (tmp_path / "report.html").exists()
    assert not any((tmp_path / name).exists() for name in ("traces", "metrics.json", "summary.html"))


def test_a_second_run_into_a_folder_counts_only_its_own_apdus(tmp_path):
    counts = []
    for _ in range(2):
        assert hil("run", "card/selection.robot", "--outputdir", str(tmp_path)).returncode == 0
        traces = (tmp_path / "traces" / "virtual-card.jsonl").read_text(encoding="utf-8").splitlines()
        metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
        counts.append((sum('"type": "exchange"' in line for line in traces),
                       sum('"type": "header"' in line for line in traces), metrics["devices"]["virtual:card"]["apdus"]))
    assert counts[0] == counts[1] and counts[0][1] == 1 and counts[0][0] == counts[0][2] > 12


def test_a_plan_part_without_output_is_not_run_never_an_older_file(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[run]]\nname = "sel"\nsuites = ["card/selection.robot"]\ndevice = "virtual:card"\n'
                    '[[run]]\nname = "none"\nsuites = ["card/selection.robot"]\ndevice = "virtual:card"\n'
                    'include = ["JPKI-SEL-001"]\n', encoding="utf-8")
    out = tmp_path / "out"
    assert hil("run", "--plan", str(plan), "--outputdir", str(out)).returncode == 0
    plan.write_text(plan.read_text().replace('["JPKI-SEL-001"]', '["NO-SUCH"]'), encoding="utf-8")
    proc = hil("run", "--plan", str(plan), "--outputdir", str(out))
    assert "none: not run" in proc.stderr
    assert proc.stdout.strip().splitlines()[-2] == "12 passed, 0 failed, 0 skipped, 0 not run"
    assert not (out / "parts" / "02-none" / "output.xml").exists()


def test_an_output_folder_is_held_by_one_run(tmp_path):
    holder = FileLock(tmp_path / OUTPUT_LOCK, "output folder")
    assert holder.try_acquire()[0]
    try:
        proc = hil("run", "card/selection.robot", "--outputdir", str(tmp_path))
    finally:
        holder.release()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hil: error: output folder {tmp_path} is in use by ")
    assert f" on {os.uname().nodename}, PID {os.getpid()}, since " in lines[0]
    assert (tmp_path / "output.xml").exists() is False


@pytest.mark.parametrize(("plan_text", "message"), [
    ('[[run]]\nsuites = ["card"]\ndevcie = "virtual:card"\n', ":3: run 1: unknown key 'devcie'"),
    ('[[run]]\nsuites = ["card"]\ninclude = "JPKI-SEL-001"\n', "'include' must be a list of strings"),
    ('nmae = "x"\n[[run]]\nsuites = ["card"]\n', ":1: unknown key 'nmae'"),
    ('[[run]]\nsuites = "card"\n', "'suites' must be a list of strings"),
])
def test_plan_typos_are_one_line_naming_the_line(tmp_path, plan_text, message):
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text, encoding="utf-8")
    proc = hil("run", "--plan", str(plan), "--outputdir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--plan", "fixtures/lab/virtual-plan.toml", "--include", "X"], "--include cannot go with it"),
    (["card", "--processes", "0"], "--processes must be 1 or more"),
    (["card", "--wait", "-1"], "--wait must be 0 or more seconds"),
    (["card", "--device", "pcsc:ACS", "--processes", "2"], "would drive the one reader behind pcsc:ACS"),
])
def test_meaningless_run_options_are_refused(args, message):
    proc = hil("run", *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("hil: error: ") and message in lines[0]


def test_ctrl_c_stops_the_whole_plan_with_a_partial_report(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(f'[[run]]\nname = "slow"\nsuites = ["card/signing.robot"]\ndevice = "{SLOW_CARD}"\n'
                    '[[run]]\nname = "later"\nsuites = ["card/selection.robot"]\ndevice = "virtual:card"\n',
                    encoding="utf-8")
    out = tmp_path / "out"
    proc = start("run", "--plan", str(plan), "--outputdir", str(out))
    seen = read_until(proc.stdout, "| PASS |")
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "hil: interrupted" in err and "Traceback" not in err
    assert "2/2 later: not run (interrupted)" in seen + rest
    result = ExecutionResult(str(out / "output.xml"))
    tests = list(result.suite.all_tests)
    assert len(tests) == 12 and any(t.status == "PASS" for t in tests)
    assert any("not-run" in t.tags for t in tests) and not any(t.status == "FAIL" for t in tests)
    assert (out / "matrix.html").exists() and (out / "report.html").exists()
    assert wait_gone(out) == []


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    proc = start("run", "card/signing.robot", "--device", SLOW_CARD, "--outputdir", str(tmp_path))
    read_until(proc.stdout, "| PASS |")
    proc.send_signal(signal.SIGINT)
    read_until(proc.stderr, "Ctrl-C again to stop at once")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "hil: interrupted" in err and "Traceback" not in err
    tests = list(ExecutionResult(str(tmp_path / "output.xml")).suite.all_tests)
    assert len(tests) == 12 and any("not-run" in t.tags for t in tests)
    assert wait_gone(tmp_path) == []


def test_sigterm_to_a_parallel_run_ends_pabot_and_every_worker(tmp_path):
    proc = start("run", "card/signing.robot", "card/selection.robot", "--device", SLOW_CARD,
                 "--processes", "2", "--outputdir", str(tmp_path))
    deadline = time.monotonic() + 60
    while len(run_processes(tmp_path, forks=False)) < 4 and time.monotonic() < deadline:  # supervisor, pabot,
        time.sleep(0.1)  # 2 workers
    assert len(run_processes(tmp_path, forks=False)) >= 4
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "hil: interrupted" in err, err
    assert wait_gone(tmp_path) == []
    assert "8270" not in subprocess.run(["ss", "-ltn"], capture_output=True, text=True, check=False).stdout


def test_sigkill_of_hil_leaves_no_process_and_recover_rebuilds_the_report(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[run]]\nname = "first"\nsuites = ["card/selection.robot"]\ndevice = "virtual:card"\n'
                    f'[[run]]\nname = "slow"\nsuites = ["card/signing.robot"]\ndevice = "{SLOW_CARD}"\n',
                    encoding="utf-8")
    out = tmp_path / "out"
    proc = start("run", "--plan", str(plan), "--outputdir", str(out))
    read_until(proc.stdout, "| PASS |", count=16)  # the first part (12 tests, 2 suite lines) and 2 slow tests
    proc.kill()
    proc.wait()
    assert wait_gone(out) == []
    recovered = hil("recover", str(out))
    assert recovered.returncode == 0, recovered.stderr
    result = ExecutionResult(str(out / "output.xml"))
    tests = list(result.suite.all_tests)
    assert len(tests) == 24
    passed = [t for t in tests if t.status == "PASS"]
    not_run = [t for t in tests if "not-run" in t.tags]
    assert len(passed) >= 14 and not_run and len(passed) + len(not_run) == 24
    for name in ("log.html", "report.html", "xunit.xml", "matrix.csv", "matrix.html"):
        assert (out / name).stat().st_size > 0
    matrix = (out / "matrix.csv").read_text(encoding="utf-8")
    assert "NOT RUN" in matrix and "JPKI-SEL-001,JPKI AP Is Selectable By AID,PASS" in matrix
    assert matrix.splitlines()[0] == "requirement,title,first,slow"  # a column per plan part


def wait_finished(journal: Path, count: int, timeout: float = 120) -> None:
    """Until the journal holds ``count`` finished tests: the run's own record is the event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text(encoding="utf-8").count('"event": "end"') >= count:
            return
        time.sleep(0.05)  # bounded poll of a file another process appends to
    raise AssertionError(f"{journal}: fewer than {count} finished tests after {timeout:g} s")


@pytest.mark.parametrize(("moment", "suites", "options", "total"), [
    (1, ["card/signing.robot"], ["--device", SLOW_CARD], 12),
    (5, ["card/signing.robot"], ["--device", SLOW_CARD], 12),
    (2, ["card/signing.robot"], ["--device", SLOW_CARD + "&via=pcsc"], 12),
    (1, ["card/signing.robot", "card/selection.robot"], ["--device", SLOW_CARD, "--processes", "2"], 24),
])
def test_recover_after_sigkill_mid_suite(tmp_path, moment, suites, options, total):
    proc = start("run", *suites, *options, "--outputdir", str(tmp_path))
    wait_finished(tmp_path / "journal.jsonl", moment)
    proc.kill()
    proc.wait()
    assert wait_gone(tmp_path) == []  # pabot, its workers, a pcscd the suite started: all gone within 5 s
    recovered = hil("recover", str(tmp_path))
    assert recovered.returncode == 0, recovered.stderr
    assert int(recovered.stdout.strip().splitlines()[-2].split()[0]) >= moment
    tests = list(ExecutionResult(str(tmp_path / "output.xml")).suite.all_tests)
    assert len(tests) == total and sum(t.status == "PASS" for t in tests) >= moment


def test_robot_options_pass_through_and_the_matrix_rebuilds(tmp_path):
    env = dict(os.environ, ROBOT_OPTIONS="--dryrun")  # Robot's own environment variable is honoured
    proc = hil("run", "card/selection.robot", "--outputdir", str(tmp_path / "a"), "--console", "dotted",
               "--", "--test", "*Selectable By AID", "--loglevel", "DEBUG", env=env)
    assert proc.returncode == 0, proc.stdout[-2000:]
    result = ExecutionResult(str(tmp_path / "a" / "output.xml"))
    assert 1 <= result.statistics.total.passed < 12
    assert "dry run" in (tmp_path / "a" / "output.xml").read_text(encoding="utf-8").lower() or \
        all(not t.body or t.body[0].status == "NOT RUN" for t in result.suite.all_tests)
    rebuilt = hil("matrix", str(tmp_path / "a" / "output.xml"), "--outputdir", str(tmp_path / "m"))
    assert rebuilt.returncode == 0
    assert (tmp_path / "m" / "matrix.csv").read_text(encoding="utf-8").startswith("requirement,title,a\n")
    assert hil("matrix", str(tmp_path / "nothing.xml")).returncode == 2


def test_robot_options_that_shape_the_log_are_given_to_rebot_too():
    from harness.runner import report_options

    args = ["--loglevel", "DEBUG", "--removekeywords", "passed", "--flattenkeywords=name:*Trace*",
            "--removekeywords", "for", "--expandkeywords", "tag:x", "--test", "--removekeywords"]
    assert report_options(args) == {"removekeywords": ["passed", "for"], "flattenkeywords": ["name:*Trace*"],
                                    "expandkeywords": ["tag:x"]}


def test_removekeywords_after_the_double_dash_shrinks_output_xml_and_the_log(tmp_path):
    """Robot applies --removekeywords only to what it builds from output.xml: under hil run that is rebot."""
    sizes = {}
    for label, extra in (("full", []), ("removed", ["--", "--removekeywords", "all"])):
        proc = hil("run", "card/selection.robot", "--outputdir", str(tmp_path / label), *extra)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        sizes[label] = {name: (tmp_path / label / name).stat().st_size for name in ("output.xml", "log.html")}
    assert sizes["removed"]["output.xml"] < sizes["full"]["output.xml"] / 2, sizes
    assert sizes["removed"]["log.html"] < sizes["full"]["log.html"], sizes
    assert "--removekeywords" in (tmp_path / "removed" / "output.xml").read_text(encoding="utf-8").replace(
        "--remove-keywords", "--removekeywords")  # Robot's note on each emptied keyword
    tests = list(ExecutionResult(str(tmp_path / "removed" / "output.xml")).suite.all_tests)
    assert tests and all(t.status == "PASS" for t in tests)  # the results themselves stay
    assert not (tmp_path / "removed" / ".output.reduced.xml").exists()


def test_a_full_disk_while_writing_the_report_is_one_line_and_keeps_the_results(tmp_path):
    """ENOSPC: a 300 kB tmpfs in a private mount namespace (unshare) holds output.xml but not the log and report."""
    small = tmp_path / "small"
    small.mkdir()
    script = (f"mount -t tmpfs -o size=300k tmpfs {small} && {sys.executable} -m harness.cli run "
              f"card/selection.robot --outputdir {small}; echo rc=$?; ls -l {small}")
    proc = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script], capture_output=True,
                          text=True, timeout=180, check=False)
    assert "rc=2" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hil: error:")]
    assert errors and "No space left on device" in errors[0] and "Traceback" not in proc.stderr
    assert "12 passed, 0 failed, 0 skipped, 0 not run" in proc.stdout
    assert "Report:" not in proc.stdout.split("Output:")[-1]  # no report path is claimed
