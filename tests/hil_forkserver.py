"""``hil`` for the tests, forked from one process per pytest that has Robot and the harness imported already.

The tests run ``hil`` a few hundred times, and each ``python -m harness.cli`` spent about 0.3 s of CPU on
imports before its first line of work, its zygote 0.13 s more, and each served card as much: a third of the
test command's CPU. A test that only needs what ``hil`` prints, writes and exits with calls
:func:`hil_command` instead of ``[sys.executable, "-m", "harness.cli"]``: a small client
(``tests/hil_client.py``) hands its arguments, environment, folder and standard descriptors to this server,
which forks, and the fork runs ``harness.cli.main`` as ``python -m harness.cli`` would:

- fresh signal dispositions, standard streams on the client's descriptors (unbuffered when the client's
  environment says ``PYTHONUNBUFFERED``), the client's environment and working folder, its own session;
- threads joined and ``atexit`` run before it leaves, as an interpreter does at exit;
- the client forwards the signals it gets (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2) to the fork, exits
  with the fork's status, or dies of the fork's signal; when the client dies (SIGKILL on a test's timeout),
  the server kills the fork, as the kernel would have killed a ``hil`` that was the client itself.

Tests of process behaviour (signals to a process group, a terminal's Ctrl-C, ``/proc`` command lines, the
installed wheel) keep the real command, and so does a client whose ``HIL_SUITES`` or ``HIL_FIXTURES`` is
not the server's (the harness reads them as it imports). The parsed fixture keys are loaded here once (the
cache is keyed by path, mtime and size, so a test's own key files are parsed anew). One server per pytest
process, started at first use, ended with it (and by the kernel if pytest dies first); ``HIL_TEST_FORKS=0``
turns it off.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIENT = Path(__file__).with_name("hil_client.py")
READY = b"ready"
READY_SECONDS = 60.0  # its imports take about 0.6 s
MAX_REQUEST = 1 << 20
PRELOAD = ("robot", "robot.running", "robot.api", "robot.rebot", "harness.cli", "harness.runner", "harness.keywords",
           "harness.journal", "harness.scheduling", "harness.notrun", "harness.supervise", "harness.preflight",
           "harness.part_zygote", "devices.virtual.rig", "devices.virtual.serve", "smartcard.System", "serial", "nfc")
WARM_PROFILES = ("card", "phone")
# read by the harness as it imports (module constants such as the suites and card-profile folders): a client
# whose value differs from the server's gets the real command, which reads its own
IMPORT_TIME_ENV = ("HIL_SUITES", "HIL_FIXTURES")
PR_SET_PDEATHSIG = 1


# -- the pytest side ---------------------------------------------------------------------------------------
_started: dict[str, object] = {}


def hil_command() -> list[str]:
    """The command that runs ``hil`` in a test: the fork client, or ``python -m harness.cli`` where forks are
    off (``HIL_TEST_FORKS=0``) or the server could not start."""
    if os.environ.get("HIL_TEST_FORKS", "1") == "0":
        return [sys.executable, "-m", "harness.cli"]
    return fork_client_command() or [sys.executable, "-m", "harness.cli"]


def fork_client_command() -> list[str]:
    """The client's command, the server started if it is not yet; [] when it cannot start."""
    if "socket" not in _started:
        _started["socket"] = _start_server()
    path = _started["socket"]
    return [sys.executable, "-I", "-S", str(CLIENT), str(path)] if path else []


def _start_server() -> str:
    folder = tempfile.mkdtemp(prefix="hil-forks-")
    path = os.path.join(folder, "server.sock")
    proc = subprocess.Popen([sys.executable, __file__, path], cwd=REPO, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], READY_SECONDS)
    line = proc.stdout.readline().strip() if ready else b""
    proc.stdout.close()
    if line != READY:
        proc.kill()
        proc.wait()
        print(f"hil_forkserver: the server was not ready within {READY_SECONDS:.0f} s (exit {proc.poll()}): "
              "tests spawn hil", file=sys.stderr)
        return ""

    def stop() -> None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(folder)

    atexit.register(stop)
    _started["process"] = proc
    return path


# -- the server ----------------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _warm() -> None:
    for name in PRELOAD:
        __import__(name)
    from devices.virtual.card import VirtualCard
    from devices.virtual.profile import load_profile

    for profile in WARM_PROFILES:  # parses the profile's keys into the per-process cache the forks inherit
        VirtualCard(load_profile(profile))


def serve(path: str) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    sys.stdout.buffer.write(READY + b"\n")
    sys.stdout.flush()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, ("listener", None))
    by_pid: dict[int, tuple[socket.socket, int]] = {}  # fork's pid → (client connection, pidfd)
    while True:
        for key, _ in selector.select():
            kind, value = key.data
            if kind == "listener":
                conn, _ = listener.accept()
                selector.register(conn, selectors.EVENT_READ, ("request", None))
            elif kind == "request":
                _take_request(key.fileobj, selector, by_pid, listener)
            elif kind == "client":  # the client went away (or wrote): its fork goes with it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(value, signal.SIGKILL)
                selector.unregister(key.fileobj)
            elif kind == "exited":
                _, status = os.waitpid(value, 0)
                conn, pidfd = by_pid.pop(value)
                selector.unregister(pidfd)
                os.close(pidfd)
                with contextlib.suppress(KeyError, ValueError):
                    selector.unregister(conn)
                with contextlib.suppress(OSError):
                    conn.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
                conn.close()


def _take_request(conn: socket.socket, selector: selectors.BaseSelector, by_pid: dict, listener: socket.socket) -> None:
    selector.unregister(conn)
    try:
        message, fds, _flags, _address = socket.recv_fds(conn, MAX_REQUEST, 3)
        request = json.loads(message)
    except (OSError, ValueError):
        conn.close()
        return
    if len(fds) != 3 or any(request["env"].get(k) != os.environ.get(k) for k in IMPORT_TIME_ENV):
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"spawn": True}).encode())
        conn.close()
        return
    pid = os.fork()
    if pid == 0:  # nothing of the server's stays open in hil: the listener, the other clients, pidfds, epoll
        for key in list(selector.get_map().values()):  # the listener, waiting and served clients, pidfds
            with contextlib.suppress(OSError):  # a socket object closed as such: it cannot close a reused fd later
                key.fileobj.close() if isinstance(key.fileobj, socket.socket) else os.close(key.fd)
        for client, _ in by_pid.values():  # a client that went away is no longer registered
            with contextlib.suppress(OSError):
                client.close()
        selector.close()
        conn.close()
        _run_hil(request, fds)  # never returns
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    by_pid[pid] = (conn, pidfd)
    selector.register(pidfd, selectors.EVENT_READ, ("exited", pid))
    try:
        conn.send(json.dumps({"pid": pid}).encode())
    except OSError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return
    selector.register(conn, selectors.EVENT_READ, ("client", pid))


def _standard_streams(unbuffered: bool) -> None:
    """sys.stdin/stdout/stderr anew on descriptors 0-2, buffered as a Python started with this environment
    would buffer them (stderr: by line; stdout: not at all under PYTHONUNBUFFERED, else by line on a terminal)."""
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)),
                                                 encoding="utf-8")
    for name, fd, errors in (("stdout", 1, "strict"), ("stderr", 2, "backslashreplace")):
        raw = io.FileIO(fd, "wb", closefd=False)
        line = fd == 2 or os.isatty(fd)
        stream = (io.TextIOWrapper(raw, encoding="utf-8", errors=errors, write_through=True) if unbuffered
                  else io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", errors=errors, line_buffering=line))
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _run_hil(request: dict, fds: list[int]) -> None:
    code = 1
    try:
        os.setsid()
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        from harness.part_zygote import fresh_python_signals

        fresh_python_signals()
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        _standard_streams(bool(request["env"].get("PYTHONUNBUFFERED")))
        sys.argv = [str(REPO / "harness" / "cli" / "__main__.py"), *request["argv"]]
        sys.path[0] = request["cwd"]  # as python -m puts its working folder first
        from harness.cli import main

        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:  # as an uncaught exception in python -m: the traceback, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            threading._shutdown()
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code if 0 <= code < 256 else 1)


if __name__ == "__main__":
    serve(sys.argv[1])
