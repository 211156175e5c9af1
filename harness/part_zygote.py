"""Plan parts forked from one process that has Robot and the harness imported already.

Every part of a plan is a Robot process. Started as ``python -m robot``, each one spends about 0.45 s of CPU
importing Robot, the keyword library, the device layer and cryptography before its first test; a 24-part
main job spent 11 of its 36 CPU seconds there. ``hil run --plan`` therefore starts this module once
(``python -m harness.part_zygote``): it imports all of that, says it is ready, and then forks each part on
request. A forked part is the same as a spawned one from the outside:

- its supervisor (:class:`harness.supervise.Supervisor`: subreaper, leftovers ended, stop on stdin EOF) runs
  in the first fork, and Robot in a second fork, in its own process group, with ``run_cli`` and the part's
  arguments, environment, working folder, stdin pipe and stdout/stderr;
- the supervisor is handed to ``hil`` itself: the zygote forks it through a short-lived middle process, so it
  is re-parented to ``hil`` (a child subreaper while its parts run), which waits for it and reads its exit
  status like any child's.

Nothing runs in the zygote but imports, before any fork, and it has one thread; a part reseeds ``random``.
The request is one datagram on a socketpair: JSON (arguments, environment, folder) and three descriptors
(stdin's read end, stdout, stderr); the answer is the supervisor's PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import sys
import time

READY = b"ready"
MAX_REQUEST = 1 << 20
PRELOAD = ("robot", "robot.running", "robot.api", "harness.keywords", "harness.journal", "harness.scheduling",
           "harness.notrun", "harness.supervise")


class ForkedRobot:
    """Robot in the second fork, for :class:`~harness.supervise.Supervisor`: ``poll``, ``pid``, ``returncode``."""

    def __init__(self, arguments: list[str]) -> None:
        self.returncode: int | None = None
        pid = os.fork()
        if pid == 0:
            _run_robot(arguments)  # never returns
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _run_robot(arguments: list[str]) -> None:
    code = 255
    try:
        os.setpgid(0, 0)  # as Popen(process_group=0): the supervisor signals the whole group
        from harness.supervise import die_with_parent

        die_with_parent(signal.SIGKILL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        from robot import run_cli

        sys.argv = [sys.argv[0], *arguments]
        code = run_cli(arguments, exit=False)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # a part's crash is its exit status, as for a spawned Robot
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _become_part(request: dict, fds: list[int], parent: int, middle: int) -> None:
    """The first fork: the part's supervisor, with the part's descriptors, environment and folder."""
    code = 255
    try:
        os.setsid()  # as Popen(start_new_session=True)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("cwd"):
            os.chdir(request["cwd"])
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        random.seed()
        sys.stdout.reconfigure(write_through=True)
        sys.stderr.reconfigure(write_through=True)
        from harness.supervise import Supervisor, die_with_parent

        for _ in range(10_000):  # re-parented to hil once the middle process has exited, at once
            if os.getppid() != middle:
                break
            time.sleep(0.001)
        if os.getppid() != parent:
            print(f"hil: a forked part was not handed to hil (pid {parent}): it stops", file=sys.stderr)
            os._exit(130)
        die_with_parent(signal.SIGTERM)
        code = Supervisor(["robot", *request["arguments"]], start=ForkedRobot).run()
    except BaseException:  # said on the part's stderr; its exit status is 255
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve(channel: socket.socket, parent: int) -> None:
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(channel, MAX_REQUEST, 3)
        except OSError:
            return
        if not message:
            return  # hil closed its end
        request = json.loads(message)
        report_r, report_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            channel.close()
            os.close(report_r)
            middle_pid = os.getpid()
            part = os.fork()
            if part == 0:
                os.close(report_w)
                _become_part(request, fds, parent, middle_pid)
            os.write(report_w, str(part).encode())
            os._exit(0)
        for fd in fds:
            os.close(fd)
        os.close(report_w)
        with os.fdopen(report_r, "rb") as report:
            pid = report.read().decode()
        os.waitpid(middle, 0)  # the part is hil's child from here on
        channel.send(pid.encode())


def main(argv: list[str]) -> int:
    """``python -m harness.part_zygote FD``: FD is its end of the socketpair (see :mod:`harness.part_forks`)."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # hil stops the parts itself; the zygote leaves with its socket
    for name in PRELOAD:
        __import__(name)
    channel = socket.socket(fileno=int(argv[0]))
    channel.send(READY)
    _serve(channel, parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
