"""pcscd management: start by PID, reuse, stop, and what the PC/SC backend says when pcscd stops or restarts.

Stopping pcscd happens in a private mount namespace with its own pcscd (see pcsc_support.run_isolated),
so the session's pcscd keeps serving the other tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devices.base import BackendUnavailable
from devices.virtual import pcscd as pcscd_module
from devices.virtual.pcscd import PcscDaemon, ensure_pcscd, find_pcscd, pcscd_answers

pytest_plugins = ["pcsc_support"]  # the session's pcscd fixture


def pid_in_file(path: str = "/run/pcscd/pcscd.pid") -> int:
    """pcscd writes its PID followed by a newline and a NUL."""
    return int(Path(path).read_text().strip("\x00\n "))


def test_pcscd_is_found_by_absolute_path():
    path = find_pcscd()
    assert os.path.isabs(path) and os.access(path, os.X_OK) and Path(path).name == "pcscd"


def test_missing_pcscd_says_how_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(pcscd_module, "SBIN_DIRS", ())
    with pytest.raises(BackendUnavailable) as caught:
        find_pcscd()
    message = str(caught.value)
    assert "apt-get install pcscd vsmartcard-vpcd" in message and "scripts/setup.sh" in message
    assert "\n" not in message


def test_session_pcscd_answers_and_is_known_by_pid(pcscd):
    assert pcscd_answers()
    if pcscd.owned:
        assert pcscd.pid is not None and pcscd.running
        assert pid_in_file() == pcscd.pid


def test_running_pcscd_is_reused_and_never_stopped(pcscd):
    other = PcscDaemon().start()
    assert other.owned is False and other.pid is None
    other.stop()
    assert pcscd_answers()


def test_ensure_pcscd_is_one_shared_instance(pcscd):
    first = ensure_pcscd()
    assert ensure_pcscd() is first
    assert first.running


LIFECYCLE = """
import json, os, time
from pathlib import Path
from pcsc_support import SELECT_JPKI, free_port_pair, isolated_reader_conf
from devices import registry
from devices.pcsc.names import discover
from devices.pcsc.reader import PcscReader, open_pcsc
from devices.pcsc.scard import wait_until_listed
from devices.virtual.card import VirtualCard
from devices.virtual.pcscd import PcscDaemon
from devices.virtual.slot import CardSlot
from devices.virtual.bridges.vpcd import VpcdCardServer

out = {}
def attempt(key, action):
    try:
        out[key] = ["ok", repr(action())[:200]]
    except Exception as exc:
        out[key] = [type(exc).__name__, str(exc)]

work = Path(os.environ["HIL_TEST_DIR"])
attempt("open_without_pcscd", lambda: open_pcsc("pcsc:"))
attempt("discover_without_pcscd", discover)
out["registry_without_pcscd"] = registry.discover().get("pcsc")
out["listed_without_pcscd"] = wait_until_listed(lambda name: True, timeout=0.3)
port = free_port_pair()
conf = isolated_reader_conf(work / "conf", "Isolated PCD", port)
daemon = PcscDaemon(config=conf, log_path=work / "pcscd.log")
server = None
try:
    daemon.start(timeout=15)
    first_pid = daemon.pid
    out["listed"] = wait_until_listed(lambda name: name.startswith("Isolated PCD"), timeout=30)
    started = time.monotonic()
    out["listed_absent"] = wait_until_listed(lambda name: name == "Renamed PCD 00 00", timeout=0.3)
    out["absent_waited"] = time.monotonic() - started
    out["owned"] = daemon.owned
    out["pid_file_matches"] = int(Path("/run/pcscd/pcscd.pid").read_text().strip("\\x00\\n ")) == first_pid
    out["readers"] = [d.uri for d in discover()]
    server = VpcdCardServer(CardSlot(VirtualCard.from_profile("card")), port=port).start()
    reader = open_pcsc("pcsc:Isolated PCD 00 00")
    reader.wait_for_card(5)
    reader.power_on()
    attempt("transmit", lambda: reader.transmit(SELECT_JPKI).hex())
    started = time.monotonic()
    daemon.stop()
    out["stop_seconds"] = time.monotonic() - started
    out["first_pid_gone"] = not os.path.exists(f"/proc/{first_pid}")
    attempt("transmit_after_stop", lambda: reader.transmit(SELECT_JPKI).hex())
    attempt("wait_after_stop", lambda: reader.wait_for_card(1))
    attempt("open_after_stop", lambda: open_pcsc("pcsc:Isolated"))
    daemon.start(timeout=15)
    out["second_pid_differs"] = daemon.pid != first_pid
    out["server_reconnected"] = server.wait_connected(5) and server.connections >= 2
    attempt("transmit_after_restart", lambda: reader.transmit(SELECT_JPKI).hex())
    attempt("reconnect_after_restart", lambda: reader.reconnect(5).hex())
    attempt("transmit_after_reconnect", lambda: reader.transmit(SELECT_JPKI).hex())
    reader.close()
    daemon.stop()
    isolated_reader_conf(work / "conf", "Renamed PCD", port)
    daemon.start(timeout=15)
    stale = PcscReader("Isolated PCD 00 00")
    attempt("wait_on_vanished_reader", lambda: stale.wait_for_card(1))
    attempt("power_on_vanished_reader", stale.power_on)
    attempt("open_vanished_reader", lambda: open_pcsc("pcsc:Isolated"))
    stale.close()
finally:
    if server is not None:
        server.stop()
    daemon.stop()
out["all_pcscd_gone"] = daemon.process is None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    from pcsc_support import run_isolated  # loaded as this module's plugin by then

    work = tmp_path_factory.mktemp("isolated")
    os.environ["HIL_TEST_DIR"] = str(work)
    try:
        return run_isolated(LIFECYCLE, timeout=180)
    finally:
        del os.environ["HIL_TEST_DIR"]


def test_without_pcscd_the_error_names_the_start_command(lifecycle):
    for key in ("open_without_pcscd", "discover_without_pcscd"):
        kind, message = lifecycle[key]
        assert kind == "BackendUnavailable", lifecycle[key]
        assert "pcscd --foreground &" in message and "SCARD_E_NO_SERVICE" in message and "\n" not in message
    assert "pcscd --foreground &" in lifecycle["registry_without_pcscd"]


def test_pcscd_is_started_by_pid_and_stopped_with_sigterm(lifecycle):
    assert lifecycle["owned"] is True and lifecycle["pid_file_matches"] is True
    assert lifecycle["readers"] == ["pcsc:Isolated PCD 00 00", "pcsc:Isolated PCD 00 01"]
    assert lifecycle["transmit"] == ["ok", "'9000'"]
    assert lifecycle["first_pid_gone"] is True and lifecycle["stop_seconds"] < 5
    assert lifecycle["second_pid_differs"] is True and lifecycle["all_pcscd_gone"] is True


def test_a_reader_is_waited_for_until_listed_and_an_absent_one_or_pcscd_for_the_timeout(lifecycle):
    assert lifecycle["listed_without_pcscd"] is False
    assert lifecycle["listed"] is True
    assert lifecycle["listed_absent"] is False and lifecycle["absent_waited"] >= 0.3


def test_stopped_pcscd_is_backend_unavailable_with_the_start_command(lifecycle):
    for key in ("transmit_after_stop", "wait_after_stop", "open_after_stop"):
        kind, message = lifecycle[key]
        assert kind == "BackendUnavailable", (key, lifecycle[key])
        assert "pcscd --foreground &" in message and "\n" not in message


def test_card_server_reconnects_and_reader_recovers_after_pcscd_restart(lifecycle):
    assert lifecycle["server_reconnected"] is True
    kind, message = lifecycle["transmit_after_restart"]
    assert kind == "DeviceGone" and "pcscd restarted" in message
    assert lifecycle["reconnect_after_restart"][0] == "ok"
    assert lifecycle["transmit_after_reconnect"] == ["ok", "'9000'"]


def test_reader_that_vanished_is_device_gone_and_not_found_on_open(lifecycle):
    for key in ("wait_on_vanished_reader", "power_on_vanished_reader"):
        kind, message = lifecycle[key]
        assert kind == "DeviceGone" and "SCARD_E_UNKNOWN_READER" in message, (key, lifecycle[key])
    kind, message = lifecycle["open_vanished_reader"]
    assert kind == "NoReader" and "'Renamed PCD 00 00'" in message and "\n" not in message


ENSURE = """
import json
from devices.virtual.pcscd import ensure_pcscd
daemon = ensure_pcscd()
print(json.dumps({"owned": daemon.owned, "pid": daemon.pid}))
"""


def test_ensure_pcscd_stops_the_pcscd_it_started_at_exit(isolated):
    result = isolated(ENSURE)
    assert result["owned"] is True and result["pid"]
    assert not os.path.exists(f"/proc/{result['pid']}"), "pcscd outlived the interpreter that started it"


BLOCKED_VPCD = """
import json, os, socket, tempfile
from pathlib import Path
from devices.virtual.pcscd import PcscDaemon
from pcsc_support import free_port_pair, isolated_reader_conf, vpcd_reader_problem
port = free_port_pair()
server = socket.create_server(("127.0.0.1", 0))
client = socket.socket()
client.bind(("127.0.0.1", port))  # an outgoing connection that was given vpcd's port as its local one
client.connect(server.getsockname())
conf = isolated_reader_conf(Path(tempfile.mkdtemp()), "Virtual PCD", port)
with PcscDaemon(config=conf):
    problem = vpcd_reader_problem(timeout=2, port=port)
client.close()
print(json.dumps({"problem": problem, "pid": os.getpid()}))
"""


def test_a_vpcd_port_taken_by_a_connection_is_named_when_pcscd_lacks_the_reader(isolated):
    """pcscd then never lists vpcd's reader (its bind fails, SO_REUSEADDR or not); the session fixture says
    so, naming the socket and its process, instead of every PC/SC test failing with "no vpcd reader"."""
    result = isolated(BLOCKED_VPCD)
    assert result["problem"].startswith("pcscd lists no Virtual PCD reader after 2 s; TCP port ")
    assert f"established socket of PID {result['pid']} (" in result["problem"] and "\n" not in result["problem"]


VPCD_PORT_HELD = """
import json, os, socket
from pcsc_support import free_port_pair
port = free_port_pair()
os.environ["HIL_VPCD_PORT"] = str(port)  # this namespace's pcscd: vpcd's slots on port, port + 1
server = socket.create_server(("127.0.0.1", 0))
client = socket.socket()
client.bind(("127.0.0.1", port))
client.connect(server.getsockname())
from devices import open_device
from devices.base import BackendUnavailable
try:
    open_device("virtual:card?via=pcsc").close()
    message = "opened"
except BackendUnavailable as error:
    message = str(error)
print(json.dumps({"port": port, "message": message}))
"""


def test_a_reader_missing_because_its_port_is_held_says_so_and_how_to_keep_it_free(isolated):
    result = isolated(VPCD_PORT_HELD)
    port = result["port"]
    assert result["message"] == (
        f"pcscd lists no vpcd reader ('Virtual PCD 00 00'); TCP port {port}, vpcd's, is held by another socket "
        f"(a connection given it as its local port keeps vpcd from listening: sysctl -w "
        f"net.ipv4.ip_local_reserved_ports={port}-{port + 1} keeps connections off it), then restart pcscd")
