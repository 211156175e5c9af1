"""The keeper of a pcscd the harness started: it stops pcscd when the last process using it is gone.

``python -m devices.virtual.pcscd_keeper [--remove-log-dir DIR] USERS_LOCK -- PCSCD [ARGS…]``

Every process that uses the pcscd holds a shared ``flock`` on USERS_LOCK (see
:mod:`devices.virtual.pcscd`); the kernel drops it when the process ends, even by SIGKILL. The keeper
starts pcscd as its child (pcscd dies with the keeper: ``PR_SET_PDEATHSIG``), prints pcscd's PID, and
checks ten times a second whether it can take the lock exclusively: once it can, nobody uses pcscd any
more and it stops it (SIGTERM, SIGKILL after 5 s). So the run that started pcscd never stops it under
another run, and a killed run leaves nothing behind. stderr (the starter's private log file) is
pcscd's stdout and stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
CHECK_SECONDS = 0.1  # how often the keeper looks for the last user's exit (bounded loop, ends with pcscd)
STOP_SECONDS = 5.0


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets ``signum`` when the thread that started it ends (SIGKILL included)."""
    parent = os.getpid()

    def arm() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)

    return arm


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _nobody_uses(lock_fd: int) -> bool:
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcscd_keeper", description=__doc__.splitlines()[0])
    parser.add_argument("users_lock")
    parser.add_argument("--remove-log-dir", default="")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no pcscd command after --")
    lock_fd = os.open(args.users_lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr,
                               preexec_fn=die_with_parent())
    print(process.pid, flush=True)  # the one line on stdout (a pipe): the starter learns pcscd's PID
    sys.stdout.close()
    while not stopping and process.poll() is None and not _nobody_uses(lock_fd):
        time.sleep(CHECK_SECONDS)
    status = _stop(process)
    print(f"pcscd keeper: pcscd (pid {process.pid}) ended with status {status}", file=sys.stderr, flush=True)
    os.close(lock_fd)  # releases the exclusive lock: a waiting starter may now start a new pcscd
    if args.remove_log_dir and status == 0:
        with contextlib.suppress(OSError):
            shutil.rmtree(args.remove_log_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
