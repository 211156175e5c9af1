"""A pcscd of its own for a plan part that only needs vpcd: the part's parts run side by side.

Every ``virtual:…?via=pcsc`` part shares the machine's vpcd slots (35963/35964) and the pcscd serving them,
so a parallel plan ran those parts one at a time: the chain of them was the main job's longest path. A part
given its own pcscd runs, from its supervisor on, in a private mount namespace:

- ``/run/pcscd`` is a tmpfs of its own, so the pcscd its suites start is found by its own processes only
  (pcscd's socket, PID file and the harness's lock files live there), and it vanishes with the part;
- every USB driver bundle (``/usr/lib/pcsc/drivers/*.bundle``) is covered by an empty tmpfs, so that pcscd
  never claims a lab's USB reader from the machine's own pcscd;
- vpcd's two slots listen on a free port pair below the ephemeral range, handed to the device layer in
  ``HIL_VPCD_PORT`` (:func:`devices.virtual.pcscd.private_config` writes the reader.conf).

It needs root (``CAP_SYS_ADMIN``). Where it cannot be done, or with ``HIL_PRIVATE_PCSCD=0``, vpcd parts run
one at a time as before (:func:`unavailable` says why, once).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import socket
from pathlib import Path

SWITCH_ENV = "HIL_PRIVATE_PCSCD"  # "0": no part gets a pcscd of its own
PART_ENV = "HIL_PART_PCSCD"  # "private" in the environment hil gives such a part: its supervisor enters it
PART_VALUE = "private"
PORT_ENV = "HIL_VPCD_PORT"  # read by devices.virtual.pcscd (the device layer's name for it)
RUN_DIR = "/run/pcscd"
DRIVERS_DIR = Path("/usr/lib/pcsc/drivers")
PORT_RANGE = (20000, 32000)  # below Linux's default ephemeral range (32768-60999): no outgoing socket takes them
PORT_TRIES = 200
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REC, MS_PRIVATE = 0x4000, 0x40000


class IsolationError(OSError):
    """The namespace, a mount or the ports could not be had; the message is one line."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    libc = _libc()
    _check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                      data.encode() if data else None), f"mount {target}")


def _private_mounts() -> None:
    """This process into a new mount namespace whose mounts propagate nowhere; /run/pcscd its own."""
    _check(_libc().unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    Path(RUN_DIR).mkdir(mode=0o755, parents=True, exist_ok=True)
    _mount("tmpfs", RUN_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755")


def _hide_usb_drivers() -> None:
    """Every driver bundle covered; a bundle that cannot be covered is an error (its reader could be taken)."""
    bundles: list[Path] = []
    with contextlib.suppress(OSError):  # no drivers folder: nothing to hide
        bundles = sorted(p for p in DRIVERS_DIR.iterdir() if p.suffix == ".bundle" and p.is_dir())
    for bundle in bundles:
        _mount("tmpfs", str(bundle), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555")


def _bindable(port: int) -> bool:
    """Whether a TCP listener could take ``port`` on every address (where vpcd listens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def free_port_pair(rng: random.Random | None = None) -> int:
    """An even port ``p`` with ``p`` and ``p + 1`` free now (vpcd's two slots), picked at random in
    :data:`PORT_RANGE` so parts starting together rarely try the same pair."""
    rng = rng or random.SystemRandom()
    for _ in range(PORT_TRIES):
        port = rng.randrange(PORT_RANGE[0], PORT_RANGE[1], 2)
        if _bindable(port) and _bindable(port + 1):
            return port
    raise IsolationError(0, f"no free TCP port pair for vpcd in {PORT_RANGE[0]}-{PORT_RANGE[1]}")


def enter() -> int:
    """For a part's supervisor, before it starts the part (it must be single-threaded): the namespace,
    the mounts and the ports; returns vpcd's first port, also put in ``HIL_VPCD_PORT``."""
    _private_mounts()
    _hide_usb_drivers()
    port = free_port_pair()
    os.environ[PORT_ENV] = str(port)
    os.environ.pop(PART_ENV, None)  # the part's own children are in it already
    return port


def wanted() -> bool:
    """Whether this process was started as a part that gets a pcscd of its own."""
    return os.environ.get(PART_ENV) == PART_VALUE


def unavailable() -> str:
    """Why parts cannot get a pcscd of their own here ("" when they can): tried in a short-lived child."""
    if os.environ.get(SWITCH_ENV, "1") == "0":
        return f"{SWITCH_ENV}=0"
    if os.geteuid() != 0:
        return "not root (a private mount namespace needs CAP_SYS_ADMIN)"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read)
        message = b""
        try:
            _private_mounts()
        except BaseException as exc:  # any failure is the answer
            message = str(exc).encode()[:500] or b"failed"
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        message = answer.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return message
