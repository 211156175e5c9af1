"""Locks that keep two runs off one reader and out of one output folder.

A lock is a file holding its holder (host, PID, user, start) under ``flock``: the kernel drops the
lock when the holding process dies, so a lock file that still names someone while nobody holds it
was left by a dead run and is taken over with a note. Reader locks live in a lab-wide directory
(``HIL_LOCK_DIR``, default ``/run/lock/hil`` or ``/tmp/hil-locks``), sticky and world-writable like
``/tmp`` so that every lab user can take them; it is refused when it is a symlink or writable by all
without the sticky bit.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import re
import socket
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

LOCK_DIR_ENV = "HIL_LOCK_DIR"


class LockBusy(RuntimeError):
    """Another live run holds the lock; the message names it."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    user: str
    start: str

    @classmethod
    def me(cls) -> Holder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        start = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return cls(socket.gethostname(), os.getpid(), user, start)

    def describe(self) -> str:
        return f"{self.user} on {self.host}, PID {self.pid}, since {self.start}"


def _read_holder(fd: int) -> Holder | None:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        data = json.loads(raw.decode("utf-8"))
        return Holder(str(data["host"]), int(data["pid"]), str(data["user"]), str(data["start"]))
    except (ValueError, KeyError, TypeError):
        return None


class FileLock:
    """One lock file; ``acquire`` returns a note when it took over a dead run's lock."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self.fd: int | None = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LockBusy(f"cannot open the lock {self.path}: {exc.strerror}") from None

    def try_acquire(self) -> tuple[bool, str | None]:
        """(True, note) when taken; (False, who holds it) when another run has it."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            return False, holder.describe() if holder else "another run"
        previous = _read_holder(fd)
        me = Holder.me()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(asdict(me)).encode("utf-8"))
        os.fsync(fd)
        self.fd = fd
        if previous and previous.pid != me.pid:
            return True, f"took over the lock on {self.what} left by {previous.describe()} (that run is gone)"
        return True, None

    def acquire(self, wait: float = 0.0, show: Callable[[str], None] | None = None) -> str | None:
        """Takes the lock, waiting up to ``wait`` seconds with a countdown; raises LockBusy naming the holder."""
        deadline = time.monotonic() + wait
        last_shown: int | None = None
        step = 1 if sys.stderr.isatty() else 10  # a countdown in place on a terminal, a line every 10 s in a log
        while True:
            taken, info = self.try_acquire()
            if taken:
                return info
            left = deadline - time.monotonic()
            if left <= 0:
                hint = f" (waited {wait:g} s)" if wait else "; use --wait SECONDS to wait for it"
                raise LockBusy(f"{self.what} is in use by {info}{hint}")
            if show is not None and (last_shown is None or last_shown - int(left) >= step):
                last_shown = int(left)
                show(f"{self.what} is in use by {info}; waiting {int(left) + 1} s")
            time.sleep(min(0.2, left))  # poll the kernel lock; flock has no timeout of its own

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def lock_dir() -> Path:
    """The lab-wide reader lock directory, created sticky and world-writable on first use."""
    configured = os.environ.get(LOCK_DIR_ENV)
    if configured:
        path = Path(configured)
    else:
        run_lock = Path("/run/lock")
        path = run_lock / "hil" if os.access(run_lock, os.W_OK) else Path("/tmp/hil-locks")
    if not path.exists():
        old = os.umask(0)
        try:
            path.mkdir(mode=0o1777, parents=True, exist_ok=True)
        finally:
            os.umask(old)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise LockBusy(f"the lock directory {path} is not a directory (set {LOCK_DIR_ENV})")
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise LockBusy(f"the lock directory {path} is writable by all without the sticky bit (set {LOCK_DIR_ENV})")
    return path


def reader_key(uri: str) -> str | None:
    """What identifies the physical reader behind ``uri``; None for a device private to the run."""
    base, _, query = uri.partition("?")
    if base.startswith("virtual:"):
        via = parse_qs(query).get("via", [""])[-1]
        return "vpcd" if via == "pcsc" else None  # vpcd's reader slots are shared by every run
    return base


def reader_lock(uri: str, name: str | None = None) -> FileLock | None:
    key = reader_key(uri)
    if key is None:
        return None
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:60]
    label = f"reader {name}" if name and name != uri else f"reader {key}"
    return FileLock(lock_dir() / f"{safe}-{digest}.lock", label)


def show_on_stderr(message: str) -> None:
    end = "\r" if sys.stderr.isatty() else "\n"
    print(f"hil: {message}   ", end=end, file=sys.stderr, flush=True)
