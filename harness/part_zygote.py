"""Robot parts and pre-flights forked from one process that has Robot and the harness imported already.

Every part of a run is a Robot process, and every run's pre-flight a process of its own. Started as
``python -m robot``, each part spent about 0.45 s of CPU importing Robot, the keyword library, the device
layer and cryptography before its first test, and each pre-flight 0.3 s; a ``hil run`` of one suite spent
more CPU on imports than on its tests. ``hil run`` therefore forks this zygote from itself as it starts
(:class:`harness.part_forks.PartForker`): the fork has what ``hil`` imported already (Robot's model and
result code) and imports the rest (:data:`PRELOAD`) while ``hil`` takes its locks, says it is ready, and then
forks each pre-flight and part on request. (Where ``hil`` cannot fork, it has a thread, the zygote is
spawned as ``python -m harness.part_zygote`` instead.) A forked part is the same as a spawned one from the
outside:

- its supervisor (:class:`harness.supervise.Supervisor`: subreaper, leftovers ended, stop on stdin EOF) runs
  in the first fork, and Robot (or the pre-flight) in a second fork, in its own process group, with the
  part's arguments, environment, working folder, stdin pipe and stdout/stderr;
- the supervisor is handed to ``hil`` itself: the zygote forks it through a short-lived middle process, so it
  is re-parented to ``hil`` (a child subreaper while its parts run), which waits for it and reads its exit
  status like any child's;
- the processes are named (``/proc/PID/comm``): ``hil-zygote``, ``hil-part``, ``hil-robot``, ``hil-preflight`` (and the
  short-lived middle process, ``hil-handover``).

Nothing runs in the zygote but imports, before any fork, and it has one thread; a part reseeds ``random``.
The request is one datagram on a socketpair: JSON (program, arguments, environment, folder) and three
descriptors (stdin's read end, stdout, stderr); the answer is the supervisor's PID.
"""

from __future__ import annotations

import contextlib
import importlib
import io
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
           "harness.notrun", "harness.supervise", "harness.preflight")
# what a request may run, by module as ``python -m`` names it: Robot through run_cli, the others their main(argv)
PROGRAMS = {"robot": "robot", "preflight": "harness.preflight"}
PR_SET_NAME = 15


def name_process(name: str) -> None:
    """``/proc/PID/comm`` (what ps and top show): a fork keeps its parent's command line, so it is named."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


class ForkedProgram:
    """Robot or the pre-flight in the second fork, for :class:`~harness.supervise.Supervisor`: ``poll``, ``pid``,
    ``returncode``."""

    def __init__(self, program: str, arguments: list[str]) -> None:
        self.returncode: int | None = None
        pid = os.fork()
        if pid == 0:
            _run_program(program, arguments)  # never returns
        self.pid = pid

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def fresh_python_signals() -> None:
    """The signal dispositions a newly started Python has, which a fork does not: Ctrl-C raises
    KeyboardInterrupt, SIGTERM ends the process, and SIGPIPE is ignored (a write to a peer that has gone
    raises BrokenPipeError; with SIGPIPE's default, a part writing to a killed reader host died silently)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _run_program(program: str, arguments: list[str]) -> None:
    code = 255
    try:
        os.setpgid(0, 0)  # as Popen(process_group=0): the supervisor signals the whole group
        fresh_python_signals()  # not the supervisor's handlers
        name_process(f"hil-{program}")
        from harness.supervise import die_with_parent

        die_with_parent(signal.SIGKILL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        sys.argv = [sys.argv[0], *arguments]
        module = importlib.import_module(PROGRAMS[program])  # imported in the zygote already (PRELOAD)
        code = module.run_cli(arguments, exit=False) if program == "robot" else module.main(arguments)
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


def _standard_streams() -> None:
    """sys.stdin/stdout/stderr (and their ``__x__`` originals, which Robot's console writes to) anew on
    descriptors 0-2: the zygote is a fork of whatever process ran ``hil``'s runner, and that process's stream
    objects may be anything (pytest's capture has no descriptor at all)."""
    for name, fd, mode in (("stdin", 0, "rb"), ("stdout", 1, "wb"), ("stderr", 2, "wb")):
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "rb" else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(buffered, encoding="utf-8", errors="backslashreplace", write_through=True)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _become_part(request: dict, fds: list[int], parent: int, middle: int) -> None:
    """The first fork: the part's supervisor, with the part's descriptors, environment and folder."""
    code = 255
    try:
        os.setsid()  # as Popen(start_new_session=True)
        name_process("hil-part")
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        if request.get("cwd"):
            os.chdir(request["cwd"])
        fresh_python_signals()
        random.seed()
        _standard_streams()
        from harness.supervise import Supervisor, die_with_parent

        for _ in range(10_000):  # re-parented to hil once the middle process has exited, at once
            if os.getppid() != middle:
                break
            time.sleep(0.001)
        if os.getppid() != parent:
            print(f"hil: a forked part was not handed to hil (pid {parent}): it stops", file=sys.stderr)
            os._exit(130)
        die_with_parent(signal.SIGTERM)
        program = request.get("program", "robot")
        code = Supervisor([program, *request["arguments"]],
                          start=lambda arguments: ForkedProgram(program, arguments)).run()
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
        if request.get("program", "robot") not in PROGRAMS:
            for fd in fds:
                os.close(fd)
            channel.send(b"0")
            continue
        report_r, report_w = os.pipe()
        middle = os.fork()
        if middle == 0:
            name_process("hil-handover")
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


def serve(channel: socket.socket, parent: int) -> None:
    """The zygote's life: imports, ``ready``, then a fork per request until ``hil`` closes its end."""
    name_process("hil-zygote")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # hil stops the parts itself; the zygote leaves with its socket
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in PRELOAD:
        __import__(name)
    from robot.output import LOGGER

    LOGGER.__init__()  # forked from hil, which may have parsed suites: no message of that may reach a part
    try:
        channel.send(READY)
    except OSError:
        return  # hil stopped before its first part (a busy lock, a bad option): nothing to serve
    _serve(channel, parent)


def main(argv: list[str]) -> int:
    """``python -m harness.part_zygote FD``: FD is its end of the socketpair (see :mod:`harness.part_forks`)."""
    serve(socket.socket(fileno=int(argv[0])), os.getppid())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
