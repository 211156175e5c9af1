"""The hil command: device listing and one-line errors with a non-zero exit for bad input."""

import signal
import subprocess
import sys
import time

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult

from devices.virtual.profile import REPO_ROOT
from harness.cli import main
from harness.pki import checks, testpki


def hil(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*hil_command(), *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_devices_lists_the_virtual_profiles():
    proc = hil("devices")
    assert proc.returncode == 0
    assert "virtual:card" in proc.stdout and "virtual:phone" in proc.stdout
    assert "3B E0 00 FF 81 31 FE 45 14" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "card", "--device", "virtual:nothing"], "unknown virtual device 'virtual:nothing'"),
        (["run", "card", "--device", "nonsense"], "neither a device URI"),
        (["run", "card", "--device", "warp:1"], "unknown device scheme 'warp'"),
        (["run", "nosuchsuite"], "no suite 'nosuchsuite'"),
        (["run", "card", "--inventory", "/nonexistent/lab.toml"], "inventory file not found"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(args, message):
    proc = hil(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_malformed_inventory_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "lab.toml"
    bad.write_text("[devices.x]\nuri = 'pcsc:x'\n[devices.y]\n", encoding="utf-8")
    assert main(["devices", "--inventory", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: device 'y': missing 'uri'" in err


def test_inventory_device_name_runs_a_suite(tmp_path):
    inventory = REPO_ROOT / "fixtures" / "lab" / "example.toml"
    proc = hil("run", "card/selection.robot", "--device", "ci-card", "--inventory", str(inventory),
               "--outputdir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert proc.stdout.strip().splitlines()[-2] == "12 passed, 0 failed, 0 skipped, 0 not run"


def test_ctrl_c_mid_run_stops_with_a_partial_report(tmp_path):
    """SIGINT during a slow suite: non-zero exit, and output.xml, log and report are still written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "card/signing.robot", "--device",
         "virtual:card?sign_delay_ms=700", "--outputdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    seen = ""
    deadline = time.monotonic() + 60
    while "| PASS |" not in seen and time.monotonic() < deadline:  # the first requirement has passed
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    proc.send_signal(signal.SIGINT)  # lands in a later, slow signing requirement
    out, err = proc.communicate(timeout=120)
    out = seen + out
    assert proc.returncode == 130
    assert "Traceback" not in err and "hil: interrupted" in err
    result = ExecutionResult(str(tmp_path / "output.xml"))
    tests = list(result.suite.all_tests)
    not_run = [t for t in tests if t.status == "SKIP" and "not-run" in t.tags]
    assert sum(t.status == "PASS" for t in tests) >= 1 and not_run
    assert all("interrupted" in t.message for t in not_run)
    assert len(tests) == 12  # every test is accounted for: run, or not run
    assert (tmp_path / "report.html").exists() and (tmp_path / "log.html").exists()
    assert out.strip().splitlines()[-1] == f"Report: {(tmp_path / 'report.html').resolve()}"


def test_pki_generate_rebuilds_a_hierarchy_that_chains(tmp_path, capsys):
    assert main(["pki", "generate", "--out", str(tmp_path)]) == 0
    assert "wrote" in capsys.readouterr().out
    rebuilt = testpki.load_test_pki(tmp_path)
    card = rebuilt.holder("card")
    assert checks.verify_chain(card.auth_cert, [rebuilt.auth_root]) == rebuilt.auth_root
    # deterministic (seeded keys and serials, fixed issuance day): the rebuild is the committed hierarchy
    assert card.auth_cert == testpki.load_test_pki().holder("card").auth_cert


def test_parallel_run_with_pabot_merges_the_suites(tmp_path):
    proc = hil("run", "card/selection.robot", "card/signing.robot", "--processes", "2", "--outputdir", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-2] == "24 passed, 0 failed, 0 skipped, 0 not run"
    result = ExecutionResult(str(tmp_path / "output.xml"))
    assert {suite.name for suite in result.suite.suites} == {"Selection", "Signing"}


def test_hil_docs_also_documents_the_resource_files(tmp_path):
    assert main(["docs", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "common.resource.html").read_text(encoding="utf-8")
    assert "Begin Requirement" in page and "freshly powered card" in page  # the keyword and its documentation
    assert {p.name for p in tmp_path.glob("*.resource.html")} >= {"card.resource.html", "terminal.resource.html"}
