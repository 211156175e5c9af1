"""Reader hosts: ``hil remote serve`` on the machine with the reader, ``remote:`` devices on the controller.

The integration tests run real processes on loopback addresses: a host serving a virtual card, and the
two-host lab, where each host has its own mount namespace (its own /run/pcscd, pcscd and vpcd ports) and
the controller reaches it only by its address. PINs stay on the host: the controller's reports and the
bytes on the wire never hold one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult, TestSuiteBuilder
from robot_results import POOL_SUITES, opened_devices

from devices import open_device
from devices.base import DeviceGone
from devices.remote import RemoteRefused, parse_remote_uri
from devices.uri import BadDeviceUri
from devices.virtual.profile import load_profile
from harness.channel import CardChannel
from harness.jpki import PinKind
from harness.remote.guard import RemotePinGuard
from harness.remote.wire import mask_secret

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "lab-token-7f3a"
PINS = {kind: spec.value for kind, spec in load_profile("card").pins.items()}


# -- the grammar and the mask --------------------------------------------------------------------
def test_remote_uri_grammar_takes_host_port_and_timeout_only():
    assert parse_remote_uri("remote:http://127.0.0.2:8270") == ("http://127.0.0.2:8270/", {})
    assert parse_remote_uri("remote:http://127.0.0.2:8270/?timeout=5")[1] == {"timeout": 5.0}
    for bad, why in (("remote:127.0.0.2:8270", "remote:http://HOST:PORT"), ("remote:http://h", "HOST:PORT"),
                     ("remote:http://h:1/x", "no path"), ("remote:http://h:1?timout=3", "unknown option timout")):
        with pytest.raises(BadDeviceUri, match=why):
            parse_remote_uri(bad)


def test_the_host_masks_pin_data_keeping_length_and_class():
    verify = bytes.fromhex("0020008004") + b"1234"
    assert mask_secret(verify) == bytes.fromhex("0020008004") + b"0000"
    change = bytes.fromhex("0024018008") + b"AB12cd!9"
    assert mask_secret(change) == bytes.fromhex("0024018008") + b"AA00aa*0"
    query, select = bytes.fromhex("00200080"), bytes.fromhex("00A4020C020018")
    assert mask_secret(query) == query and mask_secret(select) == select


# -- the token -------------------------------------------------------------------------------
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HIL_", "DESK_"))}  # only what a test names
    return {**env, **extra}


def test_serve_without_token_is_one_line_and_exit_2():
    proc = subprocess.run([*hil_command(), "remote", "serve", "--device", "virtual:card",
                           "--port", "8270"], capture_output=True, text=True, timeout=60, env=_env(), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "hil: error: hil remote serve: set HIL_REMOTE_TOKEN (the same shared token on the controller and the "
        "reader host)"]


def test_controller_without_token_refuses_before_connecting(monkeypatch):
    monkeypatch.delenv("HIL_REMOTE_TOKEN", raising=False)
    with pytest.raises(RemoteRefused, match="set HIL_REMOTE_TOKEN"):
        open_device("remote:http://127.0.0.2:9")


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def _start_host(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A reader host process; returns once it says where it serves (bounded by the read timeout)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=ROOT, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("serving "), line + (proc.stdout.read() if proc.poll() is not None else "")
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def host(request):
    """``hil remote serve`` of a guarded in-process virtual card on 127.0.0.2."""
    port = _free_port("127.0.0.2")
    proc = _start_host([sys.executable, "-m", "harness.cli", "remote", "serve", "--device",
                        "virtual:card?expendable=0", "--host", "127.0.0.2", "--port", str(port)],
                       _env(HIL_REMOTE_TOKEN=TOKEN))
    yield proc, f"remote:http://127.0.0.2:{port}"
    _stop(proc)


def test_a_wrong_token_is_refused_in_one_line(host, monkeypatch):
    _, uri = host
    monkeypatch.setenv("HIL_REMOTE_TOKEN", "not-" + TOKEN)
    with pytest.raises(RemoteRefused) as refused:
        open_device(uri)
    assert str(refused.value) == (f"{uri}: the reader host refused the token "
                                  "(set the same HIL_REMOTE_TOKEN on both sides)")


class _Tap:
    """A TCP relay on 127.0.0.4 that keeps every byte both ways: what really crossed the wire."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.seen = target, bytearray()
        self.listener = socket.create_server(("127.0.0.4", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        upstream = socket.create_connection(self.target)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while chunk := src.recv(65536):
            self.seen.extend(chunk)
            dst.sendall(chunk)
        dst.close()


def test_guarded_verifies_are_built_on_the_host_and_no_pin_crosses_the_wire(host, monkeypatch):
    _, uri = host
    monkeypatch.setenv("HIL_REMOTE_TOKEN", TOKEN)
    port = int(uri.rsplit(":", 1)[1])
    tap = _Tap(("127.0.0.2", port))
    reader = open_device(f"remote:http://127.0.0.4:{tap.port}")
    try:
        reader.wait_for_card(5)
        reader.power_on()
        channel = CardChannel(reader)
        guard = RemotePinGuard(channel, reader, "bench")  # type: ignore[arg-type]
        assert guard.verify_configured(PinKind.AUTH).ok
        assert guard.verify_configured(PinKind.SIGN).ok
        assert guard.verify_wrong(PinKind.AUTH).tries_left == 2  # the host's guard kept the reserve of 2
        assert guard.query_tries(PinKind.AUTH) == 2
    finally:
        reader.close()
    trace = channel.trace.as_text()
    assert "00 20 00 80 04 ****" in trace and "on the reader host" in trace
    wire = bytes(tap.seen)
    assert b"run_keyword" in wire and b"verify_configured" in wire
    for pin in PINS.values():
        assert pin.encode().hex() not in wire.decode("latin-1").lower()
        assert f">{pin}<".encode() not in wire


def test_a_host_that_goes_away_is_device_gone_naming_it(host, monkeypatch):
    proc, uri = host
    monkeypatch.setenv("HIL_REMOTE_TOKEN", TOKEN)
    reader = open_device(uri)
    reader.wait_for_card(5)
    reader.power_on()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    with pytest.raises(DeviceGone) as gone:
        reader.transmit(bytes.fromhex("00A4040C0AD3921000310001010408"))
    message = str(gone.value)
    assert message.startswith(f"{uri}: the reader host went away (") and "\n" not in message


# -- the two-host lab ----------------------------------------------------------------------------
HOSTS = {"bench-a": ("127.0.0.2", 0x8C85), "bench-b": ("127.0.0.3", 0x8C8F)}  # vpcd 35973…, 35983…


def _lab(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "lab.toml"
    inventory.write_text("".join(f'[devices.{name}]\nuri = "remote:http://{addr}:8270"\n'
                                 f'description = "reader host {addr}"\npool = "benches"\n'
                                 for name, (addr, _) in HOSTS.items()), encoding="utf-8")
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "two reader hosts"\n' + "".join(
        f'[[run]]\nname = "card on {name}"\nsuites = ["card"]\ndevice = "{name}"\n' for name in ("bench-b", "bench-a")),
        encoding="utf-8")
    return inventory, plan


@pytest.fixture
def two_hosts():
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("pcscd", path="/usr/sbin:/sbin") is None:
        pytest.fail("the two-host lab needs root, unshare and pcscd (scripts/setup.sh installs them)")
    procs = {}
    try:
        for name, (addr, channel) in HOSTS.items():
            procs[name] = _start_host(["unshare", "--mount", "--propagation", "private", sys.executable,
                                       str(ROOT / "tests" / "reader_host.py"), "--channel", hex(channel),
                                       "--host", addr, "--port", "8270"], _env(HIL_REMOTE_TOKEN=TOKEN))
        yield procs
    finally:
        for proc in procs.values():
            _stop(proc)


def _run_plan(tmp_path: Path, inventory: Path, plan: Path) -> subprocess.Popen[str]:
    env = _env(HIL_REMOTE_TOKEN=TOKEN, HIL_LOCK_DIR=str(tmp_path / "locks"))
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "--plan", str(plan), "--inventory",
                             str(inventory), "--outputdir", str(tmp_path / "out"), "--console", "quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)


def _tests_by_device(output: Path) -> dict[str, list]:
    tests: dict[str, list] = {}
    for test in ExecutionResult(str(output)).suite.all_tests:
        owner = next(name for name in HOSTS if name in test.parent.longname or name in test.longname
                     or any(name in str(s.name) for s in _parents(test)))
        tests.setdefault(owner, []).append(test)
    return tests


def _parents(test):
    node = test.parent
    while node is not None:
        yield node
        node = node.parent


@pytest.mark.pcsc
@pytest.mark.slow
def test_card_suite_passes_on_two_reader_hosts_with_pins_only_on_the_hosts(tmp_path, two_hosts):
    inventory, plan = _lab(tmp_path)
    proc = _run_plan(tmp_path, inventory, plan)
    stdout, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, stdout[-3000:]
    out = tmp_path / "out"
    tests = _tests_by_device(out / "output.xml")
    for name in HOSTS:
        statuses = [t.status for t in tests[name]]
        assert statuses.count("FAIL") == 0 and statuses.count("PASS") >= 85, (name, statuses)
    log = (out / "output.xml").read_text(encoding="utf-8")  # what log.html shows (compressed there)
    assert "apdu-trace" in log and "on the reader host" in log  # the host's exchanges in the controller's log
    for path in (p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert PINS["sign"] not in text
        for pin in PINS.values():
            assert pin.encode().hex(" ").upper() not in text.upper()


@pytest.mark.pcsc
@pytest.mark.slow
def test_pabot_workers_run_card_suites_on_both_hosts_of_a_pool_at_once(tmp_path, two_hosts):
    inventory, _ = _lab(tmp_path)
    env = _env(HIL_REMOTE_TOKEN=TOKEN, HIL_LOCK_DIR=str(tmp_path / "locks"))
    suites = POOL_SUITES  # the whole card suite on the hosts is the plan test's
    proc = subprocess.run([*hil_command(), "run", *suites, "--device", "pool:benches",
                           "--processes", "2", "--inventory", str(inventory), "--outputdir", str(tmp_path / "out"),
                           "--console", "quiet"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=900,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = ExecutionResult(str(tmp_path / "out" / "output.xml"))
    total = result.statistics.total
    expected = TestSuiteBuilder().build(*(str(ROOT / "robot" / suite) for suite in suites)).test_count
    assert total.failed == 0 and total.passed + total.skipped == expected and total.passed >= 30, total
    opened = opened_devices(result.suite)
    # each suite leased a host of the pool (PabotLib value sets); which ones depends on timing: a worker that
    # starts after the other released its host takes the same one, so both are not required
    assert opened and opened <= {"bench-a", "bench-b"}, opened


def _ended_tests(out: Path) -> int:
    ended = 0
    for journal in out.rglob("journal.jsonl"):
        for line in journal.read_text(encoding="utf-8").splitlines():
            ended += json.loads(line).get("event") == "end"
    return ended


@pytest.mark.pcsc
@pytest.mark.slow
def test_a_host_killed_mid_run_fails_only_its_own_tests(tmp_path, two_hosts):
    inventory, plan = _lab(tmp_path)  # bench-b's part runs first; it is killed after a few of its tests
    proc = _run_plan(tmp_path, inventory, plan)
    for _ in range(6000):  # bounded: at most 10 min
        if _ended_tests(tmp_path / "out") >= 5 or proc.poll() is not None:
            break
        time.sleep(0.1)
    os.killpg(two_hosts["bench-b"].pid, signal.SIGKILL)
    stdout, _ = proc.communicate(timeout=900)
    assert proc.returncode in (1, 3), stdout[-3000:]  # failed, or (killed between tests) not run
    tests = _tests_by_device(tmp_path / "out" / "output.xml")
    a = [t.status for t in tests["bench-a"]]
    assert a.count("FAIL") == 0 and a.count("PASS") >= 85, a
    b_lost = [t for t in tests["bench-b"] if t.status != "PASS"]
    assert 5 <= len(tests["bench-b"]) - len(b_lost) < 85 and b_lost
    assert all(t.status in ("FAIL", "SKIP") for t in b_lost)
    assert "reader host went away" in b_lost[0].message, b_lost[0].message  # the first lost test says why


def test_pre_flight_names_a_pin_the_host_lacks_and_the_controllers_pin_does_not_stand_in(tmp_path):
    host_lab = tmp_path / "host.toml"
    host_lab.write_text('[devices.desk]\nuri = "virtual:card?expendable=0"\n[devices.desk.card]\nkind = "card"\n'
                        'holder = "card"\npin_env = { auth = "DESK_AUTH", sign = "DESK_SIGN" }\n', encoding="utf-8")
    port = _free_port("127.0.0.2")
    proc = _start_host([sys.executable, "-m", "harness.cli", "remote", "serve", "--device", "desk", "--inventory",
                        str(host_lab), "--host", "127.0.0.2", "--port", str(port)],
                       _env(HIL_REMOTE_TOKEN=TOKEN, DESK_SIGN=PINS["sign"]))  # the auth PIN is not set there
    try:
        controller_lab = tmp_path / "lab.toml"
        controller_lab.write_text(f'[devices.bench]\nuri = "remote:http://127.0.0.2:{port}"\n', encoding="utf-8")
        run = subprocess.run([sys.executable, "-m", "harness.cli", "run", "card/signing.robot", "--device", "bench",
                              "--inventory", str(controller_lab), "--check"], capture_output=True, text=True,
                             timeout=120, cwd=ROOT, check=False,
                             env=_env(HIL_REMOTE_TOKEN=TOKEN, HIL_AUTH_PIN=PINS["auth"],
                                      HIL_LOCK_DIR=str(tmp_path / "locks")))
    finally:
        _stop(proc)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [  # the controller's own HIL_AUTH_PIN does not stand in
        "hil: error: bench: the selected tests need the auth PIN, which its reader host does not have: set it "
        "where hil remote serve runs"]
