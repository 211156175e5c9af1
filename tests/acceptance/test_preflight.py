"""Pre-flight and the three outcomes, on a card or phone served out of process on nfcpy's UDP link
(the way a lab names a real reader: an inventory entry, PINs from environment variables)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult

from devices import open_device
from devices.virtual.profile import load_profile
from harness.channel import CardChannel
from harness.preflight import identify, kind_from_label, needs_of
from harness.trace import ApduTrace

REPO = Path(__file__).resolve().parents[2]
GATE_LISTENER = REPO / "tests" / "gate_listener.py"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hil(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*hil_command(), *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


@pytest.fixture
def served():
    """Starts ``hil virtual serve PROFILE --nfc-udp PORT`` and returns the port once it listens."""
    servers = []

    def serve(profile: str) -> int:
        server = subprocess.Popen([sys.executable, "-m", "harness.cli", "virtual", "serve", profile,
                                   "--nfc-udp", "0"], stdout=subprocess.PIPE, text=True)  # 0: a port no one holds
        servers.append(server)
        line = server.stdout.readline()  # the server says where to open it once it listens
        found = re.search(r"nfc:udp:127\.0\.0\.1:(\d+)", line)
        assert found, line
        return int(found.group(1))

    def stop_all() -> None:
        for server in servers:
            server.terminate()
            server.wait(10)

    serve.stop_all = stop_all
    yield serve
    stop_all()


def inventory(tmp_path: Path, port: int, *, kind: str, holder: str | None, expendable: bool = True) -> Path:
    lines = [
        "[devices.bench-nfc]", f'uri = "nfc:udp:127.0.0.1:{port}"', "contactless = true",
        "[devices.bench-nfc.card]", f'kind = "{kind}"', f"expendable = {str(expendable).lower()}",
        'pin_env = { auth = "BENCH_AUTH_PIN", sign = "BENCH_SIGN_PIN", text = "BENCH_TEXT_PIN" }',
    ]
    if holder:
        lines.append(f'holder = "{holder}"')
    path = tmp_path / "lab.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pins_of(profile: str) -> dict[str, str]:
    pins = load_profile(profile).pins
    env = dict(os.environ)
    for kind, spec in pins.items():
        env[f"BENCH_{kind.upper()}_PIN"] = spec.value
    return env


def test_the_kind_comes_from_the_token_label_and_only_select_and_read_are_sent():
    reader = open_device("virtual:phone")
    trace = ApduTrace()
    try:
        reader.power_on()
        assert identify(CardChannel(reader, trace))[0] == "phone"
    finally:
        reader.close()
    instructions = {entry.hex.split()[1] for entry in trace.entries if entry.direction == "C-APDU"}
    assert instructions <= {"A4", "B0"}
    assert kind_from_label("JPKIAPICCTOKEN2") == "card" and kind_from_label("SOMETHING") is None


def test_needs_are_read_from_the_selected_tests():
    card = needs_of([REPO / "robot" / "card"], [], [])
    assert card.kind == "card" and {"auth", "sign"} <= card.pins and card.holder
    selection = needs_of([REPO / "robot" / "card" / "selection.robot"], [], [])
    assert selection.pins == set() and not selection.holder


def test_a_served_phone_runs_the_phone_suite_whatever_the_inventory_says(tmp_path, served):
    port = served("phone")
    lab = inventory(tmp_path, port, kind="card", holder="phone")  # a wrong kind: the card's answers win
    proc = hil("run", "phone", "--device", "bench-nfc", "--inventory", str(lab), "--outputdir",
               str(tmp_path / "out"), env=pins_of("phone"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
    assert " 0 failed, 0 skipped, 0 not run" in proc.stdout.strip().splitlines()[-2]


def test_an_expendable_served_card_is_tested_fully_before_it_is_blocked(tmp_path, served):
    port = served("card")
    lab = inventory(tmp_path, port, kind="card", holder="card")
    out = tmp_path / "out"
    proc = hil("run", "card", "--device", "bench-nfc", "--inventory", str(lab), "--outputdir", str(out),
               env=pins_of("card"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-3] == "PINs blocked by this run: auth, sign"
    tests = list(ExecutionResult(str(out / "output.xml")).suite.all_tests)
    assert all(t.status == "PASS" for t in tests), [(t.name, t.message) for t in tests if t.status != "PASS"]
    destructive = [i for i, t in enumerate(tests) if "destructive" in t.tags]
    assert destructive == list(range(len(tests) - len(destructive), len(tests)))
    assert [next(tag for tag in t.tags if tag.startswith("blocks:")) for t in tests[-2:]] == ["blocks:auth",
                                                                                             "blocks:sign"]


@pytest.mark.parametrize(("case", "message"), [
    ("phone suite on a card", "bench-nfc: holds a card (token JPKIAPICCTOKEN2), but the phone suites were selected"),
    ("missing PIN", "bench-nfc: the selected tests need the auth PIN: set BENCH_AUTH_PIN"),
    ("no holder", "bench-nfc: the selected tests compare the card with its holder"),
])
def test_set_up_problems_stop_in_pre_flight_with_one_line(tmp_path, served, case, message):
    port = served("card")
    lab = inventory(tmp_path, port, kind="card", holder=None if case == "no holder" else "card")
    env = pins_of("card")
    if case == "missing PIN":
        del env["BENCH_AUTH_PIN"]
    suite = "phone" if case == "phone suite on a card" else "card"
    out = tmp_path / "out"
    proc = hil("run", suite, "--device", "bench-nfc", "--inventory", str(lab), "--outputdir", str(out), env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hil: error: {message}"), proc.stderr
    assert not (out / "output.xml").exists() and not (out / "journal.jsonl").exists()


def test_check_runs_only_the_pre_flight(tmp_path, served):
    port = served("card")
    proc = hil("run", "card/selection.robot", "--device", f"nfc:udp:127.0.0.1:{port}", "--check",
               "--outputdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"nfc:udp:127.0.0.1:{port}: card (JPKIAPICCTOKEN2)" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "pre-flight: 1 device(s) ready"
    assert not (tmp_path / "output.xml").exists()


def test_a_missing_reader_is_not_run_never_failed(tmp_path):
    """Past the pre-flight (the device comes from a Robot variable): the suite set-up cannot open it."""
    port = free_udp_port()
    proc = hil("run", "card/selection.robot", "--outputdir", str(tmp_path), "--",
               "--variable", f"DEVICE:nfc:udp:127.0.0.1:{port}")
    assert proc.returncode == 3, proc.stdout[-2000:]
    assert proc.stdout.strip().splitlines()[-2] == "0 passed, 0 failed, 0 skipped, 12 not run"
    tests = list(ExecutionResult(str(tmp_path / "output.xml")).suite.all_tests)
    assert all(t.status == "SKIP" and "not-run" in t.tags and "not run:" in t.message for t in tests)
    assert "NOT RUN" in (tmp_path / "matrix.csv").read_text(encoding="utf-8")
    assert "#b0b0b0" in (tmp_path / "matrix.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(("device", "message"), [
    ("serial:/dev/ttyNOPE?protocol=kiosk", "serial:/dev/ttyNOPE?protocol=kiosk: cannot open it: "),
    ("pcsc:ACS", "pcsc:ACS: cannot open it: "),
])
def test_a_device_that_is_not_there_stops_the_run_before_any_test(tmp_path, device, message):
    proc = hil("run", "card", "--device", device, "--outputdir", str(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"hil: error: {message}"), proc.stderr
    assert not (tmp_path / "output.xml").exists()


def test_an_unreadable_inventory_variable_stops_the_run(tmp_path):
    env = dict(os.environ, HIL_INVENTORY=str(tmp_path / "missing.toml"))
    proc = hil("run", "card/selection.robot", "--outputdir", str(tmp_path), env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hil: error: $HIL_INVENTORY: {tmp_path / 'missing.toml'}: inventory file not found"


def test_a_reader_gone_mid_run_leaves_the_rest_not_run(tmp_path, served):
    port = served("card")
    tags = ["--include", "JPKI-SEL-001", "--include", "JPKI-SEL-002", "--include", "JPKI-SEL-003"]
    gate = tmp_path.parent / f"{tmp_path.name}-gate"  # the run holds after its first test until this exists
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "card/selection.robot", *tags, "--device",
                             f"nfc:udp:127.0.0.1:{port}", "--outputdir", str(tmp_path), "--",
                             "--listener", f"{GATE_LISTENER}:{gate}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not gate.with_suffix(".waiting").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gate.with_suffix(".waiting").exists(), proc.communicate(timeout=60)
    served.stop_all()  # the reader goes away between the first requirement and the second
    gate.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, out + err
    tests = list(ExecutionResult(str(tmp_path / "output.xml")).suite.all_tests)
    passed = [t for t in tests if t.status == "PASS"]
    not_run = [t for t in tests if "not-run" in t.tags]
    assert len(tests) == 3 and passed and not_run and len(passed) + len(not_run) == 3
    assert all("not run: NoCard" in t.message or "not run: DeviceGone" in t.message for t in not_run)
