"""``hil``'s side of :mod:`harness.part_zygote`: start the zygote, ask it for parts, wait for them as children.

:class:`PartForker` is open for the whole of every ``hil run``: the zygote is a fork of ``hil`` itself, made
first (before any lock is taken, while ``hil`` has one thread), or, where ``hil`` has a thread by then, a
spawned ``python -m harness.part_zygote``. While it is open, ``hil`` is a child subreaper (so each forked
part's supervisor becomes its child) and a pre-flight or part started through it is a :class:`ForkedPart`,
which the scheduler treats as it treats a ``Popen``: ``pid``, ``poll``, ``wait``, ``send_signal``, ``stdin``.
When the zygote cannot start, parts are spawned as before and the reason is said once. ``HIL_PART_FORKS=0``
spawns every part and pre-flight.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from harness.supervise import PR_SET_CHILD_SUBREAPER, _prctl, die_with_parent

READY_SECONDS = 30.0
SWITCH = "HIL_PART_FORKS"  # 0: spawn every part as python -m robot (to compare, or to debug a part)
# in a spawned zygote's environment, so in its forks' /proc/PID/environ (a zygote forked from hil shows hil's
# command line there instead, and its /proc/PID/environ is hil's)
RUN_MARKER = "HIL_RUN_OUTPUTDIR"


class ForkedPart:
    """A child forked for this process: a part's supervisor (forked by the zygote and re-parented here), or the
    zygote itself when it is a fork of hil."""

    def __init__(self, pid: int, stdin_fd: int | None) -> None:
        self.pid = pid
        # its EOF tells the supervisor hil is gone
        self.stdin = os.fdopen(stdin_fd, "wb", buffering=0) if stdin_fd is not None else None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if timeout is not None:
                deadline = time.monotonic() + timeout
                while self.poll() is None:
                    if time.monotonic() > deadline:
                        raise subprocess.TimeoutExpired(str(self.pid), timeout)
                    time.sleep(0.02)  # bounded: only when a caller gives a timeout
                return self.returncode  # type: ignore[return-value]
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _one_thread() -> bool:
    """Whether this process has one thread, counted by the kernel: a library's native thread (a C
    library's worker) is not in Python's ``threading`` count, and a fork could inherit a lock it held."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


class PartForker:
    """The zygote for the time of a run; :meth:`start` forks a pre-flight or a part, or returns None (spawn it)."""

    def __init__(self, outputdir: Path) -> None:
        self.outputdir = outputdir.resolve()
        self.process: subprocess.Popen | ForkedPart | None = None
        self.channel: socket.socket | None = None
        self.waiting = True  # for the zygote's "ready"
        self.problem = ""

    def __enter__(self) -> PartForker:
        """Starts the zygote and returns at once: its imports run while hil takes its locks and starts the
        pre-flight; the first :meth:`start` waits until it says it is ready."""
        if os.environ.get(SWITCH, "1") == "0":
            return self
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            _prctl(PR_SET_CHILD_SUBREAPER, 1)
            if _one_thread():
                self.process = self._fork(ours, theirs)
            else:  # a fork of a process with threads could inherit a lock some thread held: spawn it
                env = dict(os.environ, **{RUN_MARKER: str(self.outputdir)})
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "harness.part_zygote", str(theirs.fileno())], stdin=subprocess.DEVNULL,
                    env=env, pass_fds=(theirs.fileno(),), start_new_session=True,
                    preexec_fn=lambda: die_with_parent(signal.SIGKILL))
            self.channel = ours
        except OSError as exc:
            self._give_up(exc)
            ours.close()
        finally:
            theirs.close()
        return self

    def _fork(self, ours: socket.socket, theirs: socket.socket) -> ForkedPart:
        """The zygote as a fork of hil: what hil imported (Robot's model and result code, the device registry)
        it has already. It never returns into hil's code: it leaves through ``os._exit``. It keeps every
        descriptor hil had open at this moment until the run ends (closing them would let hil's objects close
        reused numbers), so the forker is entered before hil opens a lock, a pipe or a device."""
        hil = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()  # hil's end: once hil closes its own, the zygote reads EOF and leaves
                os.setsid()
                die_with_parent(signal.SIGKILL)
                if os.getppid() != hil:
                    os._exit(0)  # hil died before the parent-death signal was armed
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                os.close(devnull)
                from harness.part_zygote import serve

                serve(theirs, hil)
            except BaseException as exc:  # said in one line; hil, reading no "ready", spawns its parts
                with contextlib.suppress(Exception):
                    print(f"hil: the fork server stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                os._exit(0)
        return ForkedPart(pid, None)

    def _ready(self) -> bool:
        """Whether the zygote is there to fork from (waited for once, bounded by READY_SECONDS)."""
        if self.channel is None:
            return False
        if self.waiting:
            self.waiting = False
            try:
                self.channel.settimeout(READY_SECONDS)
                if self.channel.recv(16) != b"ready":
                    raise OSError("the zygote did not say it was ready")
                self.channel.settimeout(None)
            except OSError as exc:
                self.channel.close()
                self.channel = None
                self._give_up(exc)
                return False
        return True

    def _give_up(self, exc: OSError) -> None:
        self.problem = f"parts are spawned one by one (no fork server: {exc})"
        print(f"hil: {self.problem}", file=sys.stderr)
        self._stop()

    def start(self, arguments: list[str], env: dict[str, str], cwd: Path | None, program: str = "robot",
              output: int | None = None) -> ForkedPart | None:
        """A part running ``robot ARGUMENTS`` (``program="preflight"``: ``harness.preflight``'s main) under its
        supervisor, its stdout and stderr hil's own or the descriptor ``output``; None when there is no zygote."""
        if not self._ready():
            return None
        read_end, write_end = os.pipe()
        request = json.dumps({"program": program, "arguments": arguments, "env": env,
                              "cwd": str(cwd) if cwd else ""}).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        outputs = [output, output] if output is not None else [sys.stdout.fileno(), sys.stderr.fileno()]
        try:
            socket.send_fds(self.channel, [request], [read_end, *outputs])
            pid = int(self.channel.recv(32) or b"0")
        except (OSError, ValueError) as exc:
            os.close(write_end)
            raise OSError(f"the fork server stopped: {exc}") from None
        finally:
            os.close(read_end)
        if pid <= 0:
            os.close(write_end)
            raise OSError("the fork server stopped")
        return ForkedPart(pid, write_end)

    def __exit__(self, *_exc) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self._stop()
        with contextlib.suppress(OSError):
            _prctl(PR_SET_CHILD_SUBREAPER, 0)

    def _stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(timeout=5)  # it leaves when its socket closes
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

