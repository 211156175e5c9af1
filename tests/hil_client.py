"""The client of ``tests/hil_forkserver.py``: ``python -I -S hil_client.py SOCKET ARG...`` runs ``hil ARG...``.

It hands its arguments, environment, working folder and descriptors 0-2 to the server, forwards the signals
it gets to the fork, and leaves as the fork did: its exit status, or killed by its signal. Standard library
only, without ``site``: it starts in about 10 ms. Where the server is gone it runs ``python -m harness.cli``
itself, and so it does when the server says this command needs it.
"""

import contextlib
import json
import os
import signal
import socket
import sys

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def main(path: str, argv: list[str]) -> None:
    request = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:  # no server (or a closed standard descriptor): the real command
        os.execv(sys.executable, [sys.executable, "-m", "harness.cli", *argv])
    pid = 0

    def forward(signum: int, _frame: object) -> None:
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    socket.send_fds(sock, [request], [0, 1, 2])
    started = json.loads(sock.recv(4096) or b'{"spawn": true}')
    if "pid" not in started:  # the server cannot stand in for this command (see IMPORT_TIME_ENV there)
        os.execv(sys.executable, [sys.executable, "-m", "harness.cli", *argv])
    pid = started["pid"]
    answer = sock.recv(4096)
    status = json.loads(answer)["status"] if answer else 1
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [-status])
        os.kill(os.getpid(), -status)
    sys.exit(status)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
