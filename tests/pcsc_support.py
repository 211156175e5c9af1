"""Fixtures and helpers of the PC/SC integration tests: a real pcscd, vpcd and virtual cards; nothing mocked.

Test modules load it as a plugin (``pytest_plugins = ["pcsc_support"]``), so every module shares the
fixtures, and the session's pcscd is one. The
session's pcscd is started here (by PID) when none runs and stopped at the end only if started here;
when it cannot start the tests fail, they never skip. Tests that must stop pcscd run in a private mount
namespace (:func:`run_isolated`) with their own pcscd, so the session's pcscd, and anyone else's
programs using it, are never disturbed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from smartcard import scard

from devices import open_device
from devices.pcsc.reader import PcscReader
from devices.pcsc.scard import wait_until_listed
from devices.virtual.bridges.vpcd import VpcdCardServer
from devices.virtual.bridges.vpcd_sessions import PARKED, VPCD_READER, free_vpcd_slot
from devices.virtual.card import VirtualCard
from devices.virtual.pcscd import DEBIAN_VPCD_PORT, PcscDaemon
from devices.virtual.slot import CardSlot

REPO = Path(__file__).resolve().parents[1]
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")
SELECT_AUTH_CERT = bytes.fromhex("00A4020C02000A")
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscDaemon]:
    """The session's pcscd: reused if running, else started here and stopped after the session. It is ready
    once vpcd's reader is listed: pcscd answers before it has brought up its readers (seconds on a loaded
    machine), and a reader it could not bring up is missing for good, which must fail here, named."""
    daemon = PcscDaemon(log_path=tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    daemon.start(timeout=15)
    problem = vpcd_reader_problem(timeout=30)
    if problem:
        daemon.stop()
        raise AssertionError(f"{problem}; pcscd's log: {daemon.log_path}")
    yield daemon
    daemon.stop()


def vpcd_reader_problem(timeout: float, port: int = DEBIAN_VPCD_PORT) -> str:
    """Nothing once pcscd lists a vpcd reader (waited for, bounded); else why not, naming who holds the port."""
    if wait_until_listed(lambda name: name.startswith(VPCD_READER), timeout):
        return ""
    holders = port_holders(port)
    return (f"pcscd lists no {VPCD_READER} reader after {timeout:g} s; TCP port {port}: "
            + ("; ".join(holders) if holders else "no socket holds it"))


TCP_STATES = {"01": "established", "02": "syn-sent", "03": "syn-received", "04": "fin-wait-1", "05": "fin-wait-2",
              "06": "time-wait", "07": "closed", "08": "close-wait", "09": "last-ack", "0A": "listening",
              "0B": "closing"}


def port_holders(port: int) -> list[str]:
    """The sockets of this network namespace on local TCP ``port``, each with its state and its process."""
    sockets: dict[str, str] = {}  # inode → state
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port:
                    sockets[fields[9]] = TCP_STATES.get(fields[3], f"state {fields[3]}")
    owners: dict[str, str] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in sockets:
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    owners[target[8:-1]] = f"PID {proc.name} ({' '.join(command.split())[:120]})"
    return [f"{state} socket of {owners.get(inode, 'no process')}" for inode, state in sockets.items()]


def reader_state(name: str) -> int:
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hr == scard.SCARD_S_SUCCESS
    try:
        hr, states = scard.SCardGetStatusChange(context, 0, [(name, scard.SCARD_STATE_UNAWARE)])
        assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
        return states[0][1]
    finally:
        scard.SCardReleaseContext(context)


def wait_reader(name: str, present: bool, timeout: float) -> bool:
    """Wait in SCardGetStatusChange until pcscd reports the card present/absent; False on timeout."""
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hr == scard.SCARD_S_SUCCESS
    try:
        deadline = time.monotonic() + timeout
        current = scard.SCARD_STATE_UNAWARE
        while True:
            remaining = 0 if current == scard.SCARD_STATE_UNAWARE else deadline - time.monotonic()
            if remaining < 0:
                return False
            hr, states = scard.SCardGetStatusChange(context, int(remaining * 1000), [(name, current)])
            if hr == scard.SCARD_E_TIMEOUT:
                return False
            assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
            if bool(states[0][1] & scard.SCARD_STATE_PRESENT) == present:
                return True
            current = states[0][1] & ~scard.SCARD_STATE_CHANGED
    finally:
        scard.SCardReleaseContext(context)


def card_server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("vpcd-card-") and t.is_alive()]


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Each test starts without parked card servers (another test's card must not sit in a reader OpenSC
    or pcsc_scan sees) and leaves no server thread behind but those it parked on purpose."""
    PARKED.evict_all()
    before = set(card_server_threads())
    yield
    parked = PARKED.threads()  # kept for the next open on purpose, stopped at exit
    leaked = [t.name for t in card_server_threads() if t not in before and t not in parked]
    assert leaked == [], f"card server threads still running: {leaked}"


@pytest.fixture
def served_card(pcscd: PcscDaemon, no_leaked_threads: None) -> Iterator[tuple[VpcdCardServer, str]]:
    """A fresh virtual card in a free vpcd slot, served by this process; (server, reader name)."""
    port, name = free_vpcd_slot()
    server = VpcdCardServer(CardSlot(VirtualCard.from_profile("card")), port=port).start()
    assert wait_reader(name, True, 5), f"pcscd never reported the card in '{name}'"
    yield server, name
    server.stop()
    wait_reader(name, False, 3)


def _bridged(uri: str) -> Iterator[PcscReader]:
    reader = open_device(uri)
    assert isinstance(reader, PcscReader)
    try:
        reader.power_on()
        yield reader
    finally:
        reader.close()


@pytest.fixture
def bridged(pcscd: PcscDaemon, no_leaked_threads: None) -> Iterator[PcscReader]:
    """``virtual:card?via=pcsc``, powered on."""
    yield from _bridged("virtual:card?via=pcsc")


@pytest.fixture
def bridged_t0(pcscd: PcscDaemon, no_leaked_threads: None) -> Iterator[PcscReader]:
    """``virtual:card?via=pcsc&t0=1``: the card answers like a T=0 card (61xx, 6Cxx), powered on."""
    yield from _bridged("virtual:card?via=pcsc&t0=1")


def run_isolated(code: str, timeout: float = 120.0) -> dict:
    """Run Python ``code`` in a private mount namespace whose /run/pcscd is an empty tmpfs.

    There, no pcscd runs until the code starts one (it must use its own reader.conf and vpcd ports,
    see :func:`isolated_reader_conf`); the session's pcscd is neither visible nor touched. The code's
    last line of output must be one JSON object, which is returned.
    """
    unshare = shutil.which("unshare")
    assert unshare, "these tests need unshare (util-linux) and root to give pcscd a private /run/pcscd"
    prologue = "import subprocess\nsubprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', '/run/pcscd'], check=True)\n"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    proc = subprocess.run([unshare, "--mount", "--propagation", "private", sys.executable, "-c",
                           prologue + textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"isolated run failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def isolated() -> Callable[..., dict]:
    """:func:`run_isolated`, for test modules (they load this module as a plugin, not by import)."""
    return run_isolated


def isolated_reader_conf(directory: Path, friendly: str, port: int) -> Path:
    """A reader.conf directory with one vpcd reader (two slots: ``port`` and ``port + 1``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vpcd").write_text(f'FRIENDLYNAME "{friendly}"\nDEVICENAME /dev/null:0x{port:X}\n'
                                    f"LIBPATH {VPCD_DRIVER}\nCHANNELID 0x{port:X}\n")
    return directory


def free_port_pair(start: int = 41000, stop: int = 49000) -> int:
    """A port p such that p and p + 1 are free on every address (vpcd binds 0.0.0.0)."""
    for port in range(start, stop, 2):
        sockets = []
        try:
            for candidate in (port, port + 1):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind(("0.0.0.0", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no two free consecutive ports in {start}-{stop}")
