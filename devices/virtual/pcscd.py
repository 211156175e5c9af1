"""Run pcscd for the virtual PC/SC path when the machine has none running (no systemd here).

A pcscd that is already running is reused and never stopped by us: it may serve other programs.
One we start runs under a keeper process (:mod:`devices.virtual.pcscd_keeper`) and is shared by
reference count: every process using it holds a shared ``flock`` on one users file next to pcscd's
socket, and the keeper stops pcscd once nobody holds it. So the run that started pcscd never stops
it under another, and a run killed with SIGKILL (its lock dropped by the kernel) leaves no pcscd.
pcscd's log goes to a private directory (``mkdtemp``) or a path the caller gives, opened without
following symlinks; never to a fixed name in /tmp.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from smartcard import scard

from devices.base import BackendUnavailable, DeviceTimeout

INSTALL_HINT = "apt-get install pcscd vsmartcard-vpcd (or run scripts/setup.sh)"
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
STOP_POLL = 0.05  # pcscd takes ~1.3 s to exit after SIGTERM; check often, it is a bounded wait
STOP_GRACE = 2.0  # the keeper's own SIGKILL of pcscd comes after 5 s; give it that and a little more
LOCK_POLL = 0.05
PCSCD_RUN_DIR = "/run/pcscd"  # where pcscd keeps its socket (fixed at build time)
USERS_FILE = "hil-pcscd-users.lock"
KEEPER = Path(__file__).with_name("pcscd_keeper.py")  # standard library only: run by path
# /etc/reader.conf.d/vpcd: CHANNELID 0x8C7B; slot n on 35963 + n. bridges.vpcd_wire.VPCD_PORT says the same; not
# imported from there, which would make devices.virtual's imports a cycle (bridges import this module).
DEBIAN_VPCD_PORT = 35963
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
# Set by hil for a plan part that has a pcscd of its own (harness.pcscd_isolation): a private /run/pcscd, and
# vpcd's two slots on this port and the next. The pcscd this process starts then gets that reader.conf.
PRIVATE_PORT_ENV = "HIL_VPCD_PORT"
PRIVATE_CONF_DIR = "hil-reader.conf.d"


def find_pcscd() -> str:
    """Absolute path of pcscd; PATH of non-root users often lacks the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    found = shutil.which("pcscd", path=search)
    if found is None:
        raise BackendUnavailable(f"pcscd is not installed: {INSTALL_HINT}")
    return os.path.abspath(found)


def vpcd_first_port() -> int:
    """The port of this process's first vpcd slot: Debian's 35963, or the one hil chose for the part."""
    value = os.environ.get(PRIVATE_PORT_ENV, "")
    if not value:
        return DEBIAN_VPCD_PORT
    if not value.isdigit() or not 0 < int(value) < 0xFFFF:
        raise BackendUnavailable(f"{PRIVATE_PORT_ENV}={value!r} is not a TCP port")
    return int(value)


def vpcd_driver() -> str:
    """vpcd's driver library: the ``LIBPATH`` of the installed reader.conf, else Debian's path."""
    with contextlib.suppress(OSError):
        for line in VPCD_CONF.read_text(encoding="utf-8", errors="replace").splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "LIBPATH":
                return words[1]
    return VPCD_DRIVER


def write_vpcd_config(folder: Path, port: int) -> Path:
    """A reader.conf folder for ``pcscd -c``: one vpcd reader, its slots on ``port`` and ``port + 1``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vpcd").write_text(f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:0x{port:04X}\n'
                                 f"LIBPATH {vpcd_driver()}\nCHANNELID 0x{port:04X}\n", encoding="utf-8")
    return folder


def private_config() -> Path | None:
    """The reader.conf of a part's own pcscd (next to its socket, in the part's private /run/pcscd), or None."""
    if not os.environ.get(PRIVATE_PORT_ENV):
        return None
    return write_vpcd_config(Path(PCSCD_RUN_DIR) / PRIVATE_CONF_DIR, vpcd_first_port())


def pcscd_answers() -> bool:
    """True when a pcscd accepts a context and lists readers (an empty list counts)."""
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hr != scard.SCARD_S_SUCCESS:
        return False
    try:
        hr, _readers = scard.SCardListReaders(context, [])
        return hr in (scard.SCARD_S_SUCCESS, scard.SCARD_E_NO_READERS_AVAILABLE)
    finally:
        scard.SCardReleaseContext(context)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UsersLock:
    """This process's shared lock on the users file: held while anything in the process uses pcscd."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.count = 0

    def acquire(self, timeout: float) -> None:
        """Register one in-process user; waits (bounded) while a keeper is stopping its pcscd."""
        with self._lock:
            if self._fd is None:
                fd = open_users_file()
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            os.close(fd)
                            raise DeviceTimeout(f"a pcscd keeper is still stopping pcscd after {timeout:g} s "
                                                f"({users_lock_path()} held)") from None
                        time.sleep(LOCK_POLL)
                self._fd = fd
            self.count += 1

    def release(self) -> None:
        with self._lock:
            self.count = max(0, self.count - 1)
            if self.count == 0 and self._fd is not None:
                os.close(self._fd)  # closing drops the flock
                self._fd = None


_users = UsersLock()


def users_lock_path() -> Path:
    """The users file of the pcscd this process would talk to: next to its socket in /run/pcscd.

    pcscd's socket path is fixed, so every run that shares a pcscd finds the same file there. Without a
    writable /run/pcscd (not root) a per-user directory in the temp dir stands in.
    """
    run_dir = Path(PCSCD_RUN_DIR)
    with contextlib.suppress(OSError):
        run_dir.mkdir(mode=0o755, exist_ok=True)
    if run_dir.is_dir() and not run_dir.is_symlink() and os.access(run_dir, os.W_OK):
        return run_dir / USERS_FILE
    private = Path(tempfile.gettempdir()) / f"hil-pcscd-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        private.mkdir(mode=0o700)
    info = private.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise BackendUnavailable(f"{private} is not a directory of this user (planted?); remove it")
    return private / USERS_FILE


def open_users_file() -> int:
    """The users file, opened read-write without following a symlink (one planted there fails)."""
    path = users_lock_path()
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BackendUnavailable(f"cannot open pcscd's users file {path}: {exc.strerror}") from None


def others_use_pcscd() -> bool:
    """Whether some process holds the users lock (call after dropping this process's own)."""
    fd = open_users_file()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def open_private_log(path: Path | None) -> tuple[int, Path, Path | None]:
    """(fd, path, private dir) of pcscd's log: ``path`` if given, else a new ``mkdtemp`` directory.

    Opened with O_NOFOLLOW (O_EXCL in the private directory): a symlink planted at the name is not followed.
    """
    if path is not None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return os.open(path, flags, 0o600), path, None
        except OSError as exc:
            raise BackendUnavailable(f"cannot write pcscd's log {path}: {exc.strerror}") from None
    directory = Path(tempfile.mkdtemp(prefix="hil-pcscd-"))
    log = directory / "pcscd.log"
    return os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), log, directory


def _read_pid(pipe: IO[bytes], timeout: float) -> int | None:
    ready, _, _ = select.select([pipe], [], [], timeout)
    line = pipe.readline() if ready else b""
    return int(line) if line.strip().isdigit() else None


class PcscDaemon:
    """A pcscd we either started (``owned``, under a keeper) or found running (reused, never stopped by us)."""

    def __init__(self, *, binary: str | None = None, log_path: str | Path | None = None,
                 config: str | Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self._log_request = Path(log_path) if log_path else None
        self.log_path: Path | None = self._log_request  # the private one once started
        self.config = Path(config) if config else None  # pcscd -c: a reader.conf file or directory
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None  # the keeper
        self.owned = False
        self._pcscd_pid: int | None = None
        self._registered = False

    @property
    def pid(self) -> int | None:
        """pcscd's own PID (what /run/pcscd/pcscd.pid says) when we started it."""
        return self._pcscd_pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """Ours is alive, or (when not ours) some pcscd answers."""
        if self.process is not None:
            return self.process.poll() is None and self._pcscd_pid is not None and _pid_alive(self._pcscd_pid)
        return pcscd_answers()

    @property
    def registered(self) -> bool:
        """Whether this object counts as a user of pcscd (between start and stop)."""
        return self._registered

    def _register(self, timeout: float) -> None:
        if not self._registered:
            _users.acquire(timeout)
            self._registered = True

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            _users.release()

    def start(self, timeout: float = 10.0) -> PcscDaemon:
        """Reuse a running pcscd or start one, and return once it answers; bounded by ``timeout``."""
        self._register(timeout)
        if self.process is not None and self.running:
            return self
        if pcscd_answers():
            self.process, self.owned = None, False
            return self
        binary = self.binary or find_pcscd()
        pcscd_args = [binary, "--foreground", *(["-c", str(self.config)] if self.config else []),
                      *self.extra_args]
        log_fd, self.log_path, private_dir = open_private_log(self._log_request)
        # the keeper's file by path, isolated (-I) and without site (-S): it needs the standard library only, and
        # importing the devices package and the site's packages cost 40 ms of CPU a pcscd (fifty a test command)
        keeper = [sys.executable, "-I", "-S", str(KEEPER),
                  *(["--remove-log-dir", str(private_dir)] if private_dir else []), str(users_lock_path()),
                  "--", *pcscd_args]
        try:
            self.process = subprocess.Popen(keeper, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=log_fd, start_new_session=True)
        finally:
            os.close(log_fd)
        assert self.process.stdout is not None
        self._pcscd_pid = _read_pid(self.process.stdout, timeout)
        self.process.stdout.close()
        self.owned = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pcscd_pid is not None:
            if pcscd_answers():
                return self
            if not _pid_alive(self._pcscd_pid) or self.process.poll() is not None:
                break
            time.sleep(0.05)
        alive = self._pcscd_pid is not None and _pid_alive(self._pcscd_pid)
        self._end_keeper()
        if alive:
            self._unregister()
            raise BackendUnavailable(f"pcscd did not answer within {timeout:g} s; see {self.log_path}")
        if pcscd_answers():  # lost a race with another starter: use theirs
            return self
        self._unregister()
        raise BackendUnavailable(f"pcscd exited at once: {self._last_log_line()}; see {self.log_path}")

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path else []
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "empty log"

    def _end_keeper(self, timeout: float = 5.0) -> None:
        """SIGTERM our keeper (it stops pcscd) and wait for it; SIGKILL after ``timeout``."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout + STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(2.0)
        pid = self._pcscd_pid
        deadline = time.monotonic() + timeout
        while pid is not None and _pid_alive(pid) and time.monotonic() < deadline:  # pcscd dies with its keeper
            time.sleep(STOP_POLL)
        self.process, self.owned, self._pcscd_pid = None, False, None

    def stop(self, timeout: float = 5.0) -> None:
        """This user is done. The keeper stops pcscd once no process uses it (we then wait for that,
        bounded); while another run does, pcscd keeps running for it. A reused pcscd is left alone."""
        self._unregister()
        process = self.process
        if process is None or not self.owned:
            return
        if _users.count == 0 and not others_use_pcscd():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout + STOP_GRACE)  # the keeper notices within 0.1 s, pcscd takes ~1.3 s
        if process.poll() is None:
            return  # someone else uses it now: keep our handle, the keeper stops it after them
        pid = self._pcscd_pid
        deadline = time.monotonic() + timeout
        while pid is not None and _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(STOP_POLL)
        self.process, self.owned, self._pcscd_pid = None, False, None

    def __enter__(self) -> PcscDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_shared: PcscDaemon | None = None
_shared_lock = threading.Lock()


def ensure_pcscd(timeout: float = 10.0) -> PcscDaemon:
    """The process-wide pcscd: started on first need, stopped at interpreter exit only if we started it.

    Checked on every call, so a pcscd that went away (stopped by a test, crashed) is started again.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PcscDaemon(config=private_config())
            atexit.register(_stop_shared)
        if not _shared.running or not _shared.registered:
            _shared.start(timeout)
        return _shared


def _stop_shared() -> None:
    if _shared is not None:
        _shared.stop()
