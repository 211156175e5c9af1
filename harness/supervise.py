"""A supervisor for one Robot or pabot command, so that a run's processes end together.

``hil run`` starts ``python -m harness.supervise COMMAND...`` for each Robot invocation. The
supervisor is a child subreaper (``PR_SET_CHILD_SUBREAPER``): every process the command leaves
behind (pabot's workers and PabotLib, a pcscd started by a suite, a card server) is re-parented to
it, and it ends them all before it exits. It ends the run as soon as its parent is gone (its stdin,
a pipe from ``hil``, reads EOF; or the parent-death signal arrives), which covers a SIGKILL of
``hil``. A part that gets a pcscd of its own enters its private mount namespace here, before the
command starts (:mod:`harness.pcscd_isolation`). Signals: SIGINT asks the command to stop gracefully
(Robot writes its output), a second SIGINT or SIGTERM stops everything at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import pcscd_isolation

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE_SECONDS = 2.0


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """For ``preexec_fn``: the kernel sends ``sig`` to this process when its parent dies."""
    _prctl(PR_SET_PDEATHSIG, sig)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), zombies included."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def end_leftovers(group: int) -> None:
    """SIGTERM the command's group and every re-parented descendant, SIGKILL what is left after a grace time."""
    deadline = time.monotonic() + GRACE_SECONDS
    sig = signal.SIGTERM
    while True:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
        _reap()
        left = _children(os.getpid())
        if not left:
            return
        _signal_all(left, sig)
        if time.monotonic() > deadline:
            if sig == signal.SIGKILL:
                deadline = time.monotonic() + GRACE_SECONDS
            sig = signal.SIGKILL
        select.select([], [], [], 0.05)


class Supervisor:
    """``start``, when given, starts the command instead of ``Popen`` (a forked part: :mod:`harness.part_zygote`);
    it returns an object with ``pid``, ``poll()`` and ``returncode``, in its own process group."""

    def __init__(self, command: list[str], start=None) -> None:
        self.command = command
        self.start = start
        self.stops = 0

    def _on_signal(self, signum: int, _frame) -> None:
        self.stops += 2 if signum == signal.SIGTERM else 1

    def run(self) -> int:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        if pcscd_isolation.wanted():
            try:
                pcscd_isolation.enter()
            except OSError as exc:
                print(f"hil: error: this part cannot have a pcscd of its own: {exc.strerror or exc}", file=sys.stderr)
                return 2
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        if self.start is not None:
            child = self.start(self.command[1:])
        else:
            child = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, process_group=0,
                                     preexec_fn=lambda: die_with_parent(signal.SIGKILL))
        forwarded, stopped = 0, False
        watch_parent = not sys.stdin.closed
        while child.poll() is None:
            if self.stops > forwarded:
                forwarded = self.stops
                if forwarded >= 2:
                    stopped = True
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGINT)
            readable = select.select([sys.stdin] if watch_parent else [], [], [], 0.2)[0]
            if readable and not os.read(sys.stdin.fileno(), 4096):
                stopped = True
                break  # hil is gone: end the run now
        code = child.returncode
        end_leftovers(child.pid)
        if stopped or code is None:
            return 130
        return code if code >= 0 else 128 - code


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m harness.supervise COMMAND...", file=sys.stderr)
        return 2
    return Supervisor(argv).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
