"""Run pcscd for the virtual PC/SC path when the machine has none running (no systemd here).

A pcscd that is already running is reused and never stopped: it may serve other
programs. One we start is ours: started by absolute path (so the PID is pcscd's,
not a shell's or a shim's), logged to a file, stopped with SIGTERM and waited for.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from smartcard import scard

from devices.base import BackendUnavailable, DeviceTimeout

INSTALL_HINT = "apt-get install pcscd vsmartcard-vpcd (or run scripts/setup.sh)"
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
STOP_POLL = 0.05  # pcscd takes ~1.3 s to exit after SIGTERM; check often, it is a bounded wait


def find_pcscd() -> str:
    """Absolute path of pcscd; PATH of non-root users often lacks the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    found = shutil.which("pcscd", path=search)
    if found is None:
        raise BackendUnavailable(f"pcscd is not installed: {INSTALL_HINT}")
    return os.path.abspath(found)


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


class PcscDaemon:
    """A pcscd we either started (``owned``) or found running (reused, never stopped by us)."""

    def __init__(self, *, binary: str | None = None, log_path: str | Path | None = None,
                 config: str | Path | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.log_path = Path(log_path) if log_path else Path(tempfile.gettempdir()) / "hil-pcscd.log"
        self.config = Path(config) if config else None  # pcscd -c: a reader.conf file or directory
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.owned = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """Ours is alive, or (when not ours) some pcscd answers."""
        if self.process is not None:
            return self.process.poll() is None
        return pcscd_answers()

    def start(self, timeout: float = 10.0) -> PcscDaemon:
        """Reuse a running pcscd or start one, and return once it answers; bounded by ``timeout``."""
        if self.process is not None and self.process.poll() is None:
            return self
        if pcscd_answers():
            self.owned = False
            return self
        binary = self.binary or find_pcscd()
        args = [binary, "--foreground", *(["-c", str(self.config)] if self.config else []), *self.extra_args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.owned = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pcscd_answers():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        returncode = self.process.poll()
        if returncode is None:
            self.stop()
            raise BackendUnavailable(f"pcscd (pid {self.pid}) did not answer within {timeout:g} s; "
                                     f"see {self.log_path}")
        self.process, self.owned = None, False
        if pcscd_answers():  # lost a race with another starter: use theirs
            return self
        raise BackendUnavailable(f"pcscd exited at once (status {returncode}): {self._last_log_line()}; "
                                 f"see {self.log_path}")

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1].strip() if lines else "empty log"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM our pcscd and wait until it is gone (SIGKILL after ``timeout``). A reused one is left alone."""
        process = self.process
        if process is None or not self.owned:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                try:
                    process.wait(2.0)
                except subprocess.TimeoutExpired:
                    raise DeviceTimeout(f"pcscd (pid {process.pid}) survived SIGTERM and SIGKILL") from None
        deadline = time.monotonic() + timeout
        while _pid_alive(process.pid) and time.monotonic() < deadline:  # reaped above; belt and braces
            time.sleep(STOP_POLL)
        self.process, self.owned = None, False

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
            _shared = PcscDaemon()
            atexit.register(_stop_shared)
        if not _shared.running:
            _shared.start(timeout)
        return _shared


def _stop_shared() -> None:
    if _shared is not None:
        _shared.stop()
