"""The test command's pytest, as N shards side by side, each with its own mounts, all but shard 0 their own network.

Usage: ``python tests/run_shards.py [pytest arguments]`` (``scripts/run-tests.sh`` calls it). ``HIL_TEST_SHARDS``
sets N (default 7; 1 runs one plain pytest). Each shard runs ``pytest`` with ``HIL_TEST_SHARD=i/N``; the shards
take their units of work (modules, the guard matrix's cells) from one queue whose file this process opens and
hands them by descriptor (``tests/work_queue.py``), so a shard that is free takes the next unit
(``HIL_TEST_QUEUE=0``: each keeps a share dealt ahead from the recorded seconds, ``tests/sharding.py``).

Every shard gets a private mount namespace (its own tmpfs on ``/run/pcscd``, ``/tmp`` and ``/run/lock``: its own
pcscd, temp files and reader locks; a test's files in memory, as every shard's are, so shard 0 is not the one
waiting for the disk), and shards 1… a private network namespace with only loopback too (their own vpcd
ports and 127.0.0.1 servers; the fixed ports the tests listen on are kept out of that network's ephemeral
range). So the shards never meet, and shard 0 keeps the machine's network, and the package index, for the
wheel tests. A machine where namespaces cannot be made runs one shard, and says so.

Each shard's output goes to ``results/tests/shard-I.log`` (or ``$HIL_TEST_LOGS``) and is printed whole when the
shard ends; the last line sums the shards. A shard still running after ``HIL_TEST_SHARD_SECONDS`` (default 1800)
is told to write every thread's stack to its log (``tests/shard_watchdog.py``), so a hang names its test, and is
ended; that fails the command. Exit status: 0 when every shard passed, else the
first non-zero one. Ctrl-C or SIGTERM is passed to every shard; the shards die with this process.

This process is the shards' child subreaper: a server a test started and did not stop (or whose pytest was
killed) is re-parented here, and is named and ended once the shards are done, so no helper outlives the
test command.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sharding import DUMP_SIGNAL, LOG_FD_ENV, QUEUE_FD_ENV, SECONDS_ENV

from harness.supervise import PR_SET_CHILD_SUBREAPER, _children, _prctl, _reap, die_with_parent

REPO = Path(__file__).resolve().parents[1]
LOGS = Path(os.environ.get("HIL_TEST_LOGS", REPO / "results" / "tests"))
PRIVATE_MOUNTS = ("/run/pcscd", "/tmp", "/run/lock")
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
# Fixed ports the tests listen on that lie in Linux's ephemeral range (32768-60999): vpcd's Debian slots and the
# reader hosts' (35963…35991), the shard probe's 47391, nfcpy's default UDP 54321. A busy shard's outgoing
# connection that took one as its local port made vpcd's bind fail (EADDRINUSE, SO_REUSEADDR or not), and the
# session's pcscd then had no vpcd reader for the rest of the shard. Reserved in each shard's own network.
RESERVED_PORTS = "35963-35999,47391,54321"
RESERVED_PORTS_SYSCTL = "/proc/sys/net/ipv4/ip_local_reserved_ports"
COUNTS = re.compile(r"(\d+) (passed|failed|errors?|skipped|deselected|xfailed|xpassed)")


DEFAULT_SHARD_SECONDS = "1800"
KEPT_AWAY = "/run/hil-shard-covered"  # a tmpfs of the shard's own, where covered folders stay reachable


def _keep_reachable(path: str, covered_by: str) -> str:
    """``path`` (the checkout, its virtualenv) lies under ``covered_by``, about to be covered by a tmpfs: the
    original folder is bind-mounted aside first (the caller binds ``path`` back from there)."""
    aside = Path(KEPT_AWAY) / covered_by.strip("/").replace("/", "_")
    if not os.path.ismount(KEPT_AWAY):
        os.makedirs(KEPT_AWAY, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", KEPT_AWAY], check=True)
    if not aside.exists():
        aside.mkdir()
        subprocess.run(["mount", "--bind", covered_by, str(aside)], check=True)
    return str(aside / Path(path).relative_to(covered_by))


def enter_private_namespaces(command: list[str], network: bool = True) -> None:
    """Run inside ``unshare --mount [--net]``: private tmpfs mounts, loopback up (in a network of its own), then
    exec the command. A checkout under one of those folders (a fresh clone in /tmp) is bound back into the
    shard's tmpfs."""
    subprocess.run(["mount", "--make-rprivate", "/"], check=True)
    needed = {REPO, Path(sys.prefix)}  # the checkout and the virtualenv whose python runs the shard
    needed = {str(n) for n in needed if not any(n != o and n.is_relative_to(o) for o in needed)}
    for path in PRIVATE_MOUNTS:
        inside = sorted(n for n in needed if Path(n).is_relative_to(path))
        asides = {n: _keep_reachable(n, path) for n in inside}
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", path], check=True)
        for original, aside in asides.items():
            os.makedirs(original, exist_ok=True)
            subprocess.run(["mount", "--bind", aside, original], check=True)
    if network:
        _loopback_up()
        try:
            Path(RESERVED_PORTS_SYSCTL).write_text(RESERVED_PORTS, encoding="ascii")  # this network's only
        except OSError as error:  # a read-only /proc/sys: the shard runs, a connection may take a test's port
            print(f"run_shards: ports {RESERVED_PORTS} not reserved ({error})", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def namespace_problem() -> str:
    """Why a shard's namespaces (unshare, the tmpfs mounts, loopback up) cannot be made here; "" when they can."""
    try:
        probe = subprocess.run(shard_command(1, ["--version"]), capture_output=True, text=True, check=False,
                               timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if probe.returncode == 0 else (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]


def shard_command(index: int, pytest_args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "pytest", *pytest_args]
    if index == 0:  # the machine's network: the package index
        return ["unshare", "--mount", "--fork", "--kill-child=SIGTERM", sys.executable, __file__,
                "--enter-mount-namespace", *command]
    return ["unshare", "--mount", "--net", "--fork", "--kill-child=SIGTERM", sys.executable, __file__,
            "--enter-namespaces", *command]


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def end_orphans(wait: float = 5.0) -> list[str]:
    """What the tests left running (re-parented to this subreaper): waited for a little, then ended; named."""
    deadline = time.monotonic() + wait
    while _children(os.getpid()) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.1)
    left = [f"{pid} {command_line(pid)[:120]}" for pid in _children(os.getpid())]
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        deadline = time.monotonic() + grace
        while (pids := _children(os.getpid())) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            _reap()
            time.sleep(0.1)
    return left


def end_shard(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """The shard's pytest writes its stacks (``tests/shard_watchdog.py``), then SIGTERM to the shard's process
    group, SIGKILL after ``grace``. pytest is the child of the shard's ``unshare``."""
    for pid in _children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, DUMP_SIGNAL)
            time.sleep(1.0)  # the dump is written at once, in the signal handler; this is its margin
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def summary_counts(log_text: str) -> dict[str, int]:
    """The counts of pytest's last summary line (``== 3 failed, 400 passed in 12.0s ==``)."""
    lines = [line for line in log_text.splitlines() if COUNTS.search(line) and re.search(r" in [\d.]+s", line)]
    counts: dict[str, int] = {}
    for number, word in COUNTS.findall(lines[-1] if lines else ""):
        counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    return counts


def main(pytest_args: list[str]) -> int:
    count = int(os.environ.get("HIL_TEST_SHARDS", "7"))
    problem = namespace_problem() if count > 1 else ""
    if problem:
        print(f"run_shards: no private mount and network namespaces here ({problem}): one shard")
        count = 1
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if count <= 1:  # one plain pytest, its output live
        code = subprocess.call([sys.executable, "-m", "pytest", *pytest_args], cwd=REPO)
        for line in end_orphans():
            print(f"run_shards: left running by the tests, now ended: {line}")
        return code
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        shard_seconds = float(os.environ.get(SECONDS_ENV, DEFAULT_SHARD_SECONDS))
    except ValueError:
        print(f"run_shards: {SECONDS_ENV} must be a number of seconds, got {os.environ[SECONDS_ENV]!r}")
        return 2
    session = uuid.uuid4().hex
    started = time.monotonic()
    procs: list[tuple[int, subprocess.Popen, Path]] = []
    with tempfile.TemporaryFile() as queue:  # the shards' work queue (tests/work_queue.py), reached by descriptor
        for index in range(count):
            log = LOGS / f"shard-{index}.log"
            env = {**os.environ, "HIL_TEST_SHARD": f"{index}/{count}", "HIL_TEST_SESSION": session}
            if os.environ.get("HIL_TEST_QUEUE", "1") != "0":  # 0: each shard keeps a share dealt ahead
                env[QUEUE_FD_ENV] = str(queue.fileno())
            with log.open("w", encoding="utf-8") as out:
                env[LOG_FD_ENV] = str(out.fileno())  # the watchdog's stacks: pytest captures descriptor 2
                proc = subprocess.Popen(shard_command(index, pytest_args), cwd=REPO, env=env, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                        pass_fds=(queue.fileno(), out.fileno()),
                                        preexec_fn=lambda: die_with_parent(signal.SIGTERM))
            procs.append((index, proc, log))
    print(f"run_shards: {count} shards (logs in {LOGS}), pytest {' '.join(pytest_args)}".rstrip(), flush=True)

    def forward(signum: int, _frame: object) -> None:
        for _, proc, _ in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    pending = list(procs)
    results: dict[int, tuple[int, dict[str, int]]] = {}
    deadline = started + shard_seconds
    while pending:
        for entry in list(pending):
            index, proc, log = entry
            if proc.poll() is None and time.monotonic() > deadline:
                print(f"run_shards: shard {index} still running after {shard_seconds:g} s ({SECONDS_ENV}): "
                      "its stacks are in its log; ended", flush=True)
                end_shard(proc)
            if proc.poll() is None:
                continue
            pending.remove(entry)
            text = log.read_text(encoding="utf-8", errors="replace")
            results[index] = (proc.returncode, summary_counts(text))
            print(f"\n{'#' * 30} shard {index}/{count} (exit {proc.returncode}) {'#' * 30}\n{text}", flush=True)
        time.sleep(0.2)
    orphans = end_orphans()
    for line in orphans:
        print(f"run_shards: left running by the tests, now ended: {line}")
    totals: dict[str, int] = {}
    for _, counts in results.values():
        for word, number in counts.items():
            totals[word] = totals.get(word, 0) + number
    shown = ", ".join(f"{n} {w}" for w, n in sorted(totals.items()) if w != "deselected")
    exits = [results[i][0] for i in sorted(results)]
    print(f"run_shards: {shown or 'no summary'} in {time.monotonic() - started:.1f}s over {count} shards "
          f"(exits {exits})")
    ran = [rc for rc in exits if rc != 5]  # 5: this shard's share of a narrow selection was empty
    return next((rc for rc in ran if rc != 0), 0) if ran else 5


if __name__ == "__main__":
    if sys.argv[1:2] == ["--enter-namespaces"]:
        enter_private_namespaces(sys.argv[2:])
    if sys.argv[1:2] == ["--enter-mount-namespace"]:
        enter_private_namespaces(sys.argv[2:], network=False)
    sys.exit(main(sys.argv[1:]))
