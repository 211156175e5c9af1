"""A pcscd the harness starts never outlives its users, is shared by reference count, and logs privately.

Each scenario runs in a private mount namespace with an empty /run/pcscd (see ``run_isolated``), so it
starts its own pcscd and never touches the session's. The processes that use pcscd are real child
interpreters calling :func:`ensure_pcscd`; they are ended by closing their stdin or by SIGKILL, and the
waits for a process to end are on its pidfd (bounded), never a sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

pytest_plugins = ["pcsc_support"]  # fixtures: isolated

PRELUDE = r'''
import json, os, select, signal, subprocess, sys
from pathlib import Path

CHILD = """
import json, sys
from devices.base import DeviceError
from devices.virtual.pcscd import ensure_pcscd, pcscd_answers
try:
    daemon = ensure_pcscd()
except DeviceError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
    raise SystemExit(0)
keeper = daemon.process.pid if daemon.process else None
print(json.dumps({"owned": daemon.owned, "pid": daemon.pid, "keeper": keeper, "log": str(daemon.log_path)}),
      flush=True)
for line in sys.stdin:  # one command per line; EOF ends the process (and its use of pcscd)
    print(json.dumps({"answers": pcscd_answers()}), flush=True)
"""


def spawn():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    return child, json.loads(child.stdout.readline())


def answers(child):
    child.stdin.write("answers?\n")
    child.stdin.flush()
    return json.loads(child.stdout.readline())["answers"]


def finish(child):
    child.stdin.close()
    return child.wait(30)


def gone_within(pid, seconds):
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


def pcscd_pid():
    return int(Path("/run/pcscd/pcscd.pid").read_text().strip("\x00\n "))


out = {}
'''


def run(isolated, body: str) -> dict:
    return isolated(PRELUDE + body + "\nprint(json.dumps(out))\n", timeout=120)


def test_sigkill_of_the_process_that_started_pcscd_leaves_no_pcscd_and_no_keeper(isolated):
    result = run(isolated, """
child, info = spawn()
out["info"] = info
child.kill()
child.wait(10)
out["pcscd_gone"] = gone_within(info["pid"], 5)
out["keeper_gone"] = gone_within(info["keeper"], 5)
""")
    assert result["info"]["owned"] is True and result["info"]["pid"] and result["info"]["keeper"]
    assert result["pcscd_gone"] is True, "pcscd survived the SIGKILL of the process that started it by 5 s"
    assert result["keeper_gone"] is True, "the pcscd keeper outlived its last user by 5 s"


def test_the_first_user_to_finish_does_not_stop_pcscd_under_the_second(isolated):
    result = run(isolated, """
first, first_info = spawn()
second, second_info = spawn()
out["first"], out["second"] = first_info, second_info
pid = pcscd_pid()
out["first_exit"] = finish(first)
out["pcscd_stopped_under_second"] = gone_within(pid, 1.0)
out["second_still_served"] = answers(second)
out["second_exit"] = finish(second)
out["gone_after_last"] = gone_within(pid, 5)
""")
    assert result["first"]["owned"] is True and result["second"]["owned"] is False
    assert result["first_exit"] == 0 and result["second_exit"] == 0
    assert result["pcscd_stopped_under_second"] is False and result["second_still_served"] is True
    assert result["gone_after_last"] is True, "the last user's exit did not stop pcscd"


def test_a_killed_starter_does_not_take_pcscd_from_the_other_user(isolated):
    result = run(isolated, """
first, first_info = spawn()
second, _ = spawn()
pid = pcscd_pid()
first.kill()
first.wait(10)
out["stopped_under_second"] = gone_within(pid, 1.0)
out["second_still_served"] = answers(second)
finish(second)
out["gone_after_last"] = gone_within(pid, 5)
out["keeper_gone"] = gone_within(first_info["keeper"], 5)
""")
    assert result["stopped_under_second"] is False and result["second_still_served"] is True
    assert result["gone_after_last"] is True and result["keeper_gone"] is True


def test_a_symlink_planted_at_the_old_log_path_is_not_followed(isolated):
    result = run(isolated, """
import stat, tempfile
victim = Path(tempfile.mkdtemp()) / "victim"
victim.write_text("precious")
planted = Path(tempfile.gettempdir()) / "hil-pcscd.log"
if planted.is_symlink() or planted.exists():
    planted.unlink()
planted.symlink_to(victim)
child, info = spawn()
log = Path(info["log"])
out["log"] = str(log)
out["log_dir_mode"] = stat.S_IMODE(log.parent.stat().st_mode)
out["log_is_regular"] = log.is_file() and not log.is_symlink()
out["exit"] = finish(child)
out["pcscd_gone"] = gone_within(info["pid"], 5)
out["victim"] = victim.read_text()
out["log_dir_removed"] = not log.parent.exists()
planted.unlink()
""")
    assert result["victim"] == "precious", "pcscd's log was written through the planted symlink"
    assert not result["log"].endswith("/hil-pcscd.log") and "/hil-pcscd-" in result["log"]
    assert result["log_dir_mode"] == 0o700 and result["log_is_regular"] is True
    assert result["exit"] == 0 and result["pcscd_gone"] is True
    assert result["log_dir_removed"] is True, "a clean stop leaves its private log directory behind"


def test_a_symlink_planted_at_the_users_file_refuses_to_start(isolated):
    result = run(isolated, """
target = Path("/run/pcscd/elsewhere")
Path("/run/pcscd/hil-pcscd-users.lock").symlink_to(target)
child, info = spawn()
child.wait(30)
out["info"] = info
out["target_created"] = target.exists()
out["pcscd_running"] = Path("/run/pcscd/pcscd.pid").exists()
""")
    assert result["info"]["error"] == "BackendUnavailable", result["info"]
    assert "hil-pcscd-users.lock" in result["info"]["message"] and "\n" not in result["info"]["message"]
    assert result["target_created"] is False and result["pcscd_running"] is False


KILLED_RUN = r'''
import fcntl, time

def users_held():
    fd = os.open("/run/pcscd/hil-pcscd-users.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)

def keepers():
    """pcscd keepers in this mount namespace (/proc also lists the session's, outside it)."""
    ours, found = os.readlink("/proc/self/ns/mnt"), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                keeper = argv[1:3] == [b"-I", b"-S"] and argv[3].endswith(b"/pcscd_keeper.py")
                if keeper and os.readlink(f"/proc/{entry}/ns/mnt") == ours:
                    found.append(int(entry))
            except OSError:
                pass
    return found

work = Path(os.environ["HIL_TEST_DIR"])
run = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "card", "--device", "virtual:card?via=pcsc",
                        "--outputdir", str(work / "out")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       start_new_session=True)
deadline = time.monotonic() + 90
while time.monotonic() < deadline and run.poll() is None:  # bounded wait for the condition: a user holds pcscd
    if Path("/run/pcscd/pcscd.pid").exists() and Path("/run/pcscd/hil-pcscd-users.lock").exists() and users_held():
        break
    time.sleep(0.05)
out["running_when_killed"] = run.poll() is None
out["keepers_before"] = keepers()
pid = pcscd_pid()
os.killpg(run.pid, signal.SIGKILL)
run.wait(10)
out["pcscd_gone"] = gone_within(pid, 5)
out["keepers_gone"] = all(gone_within(k, 5) for k in out["keepers_before"])
'''


def test_sigkill_of_a_via_pcsc_run_leaves_no_pcscd_after_5_s(tmp_path):
    """The whole ``hil run … via=pcsc`` process group killed mid-run: pcscd and its keeper follow within 5 s.

    Needs its own network namespace too (vpcd binds fixed ports), so it runs under unshare --net.
    """
    from pcsc_support import REPO  # loaded as this module's plugin by then

    unshare = shutil.which("unshare")
    assert unshare, "this test needs unshare (util-linux) and root"
    prologue = ("import subprocess\nsubprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run/pcscd'], check=True)\n"
                "subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)\n")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "HIL_TEST_DIR": str(tmp_path)}
    proc = subprocess.run([unshare, "--mount", "--net", "--propagation", "private", sys.executable, "-c",
                           prologue + PRELUDE + KILLED_RUN + "\nprint(json.dumps(out))\n"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["running_when_killed"] is True, "the run ended before it could be killed"
    assert len(result["keepers_before"]) == 1, result
    assert result["pcscd_gone"] is True, "pcscd survived the SIGKILL of the run by 5 s"
    assert result["keepers_gone"] is True
