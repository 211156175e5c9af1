"""Faults inside a Robot run, on every backend: the faulted test fails with a clear one-line error, the next
test passes on the same device, nothing hangs, and output.xml holds every test."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import VIRTUAL_BACKENDS
from robot.api import ExecutionResult

SUITE = Path(__file__).parents[1] / "robot" / "fault_injection.robot"
EXPECTED = [
    ("Card Pulled During The Certificate Read", "FAIL", "CardRemoved"),
    ("Certificate Read Works On The Re-Inserted Card", "PASS", ""),
    ("Card Pulled During The Signature", "FAIL", "CardRemoved"),
    ("Signature Works On The Re-Inserted Card", "PASS", ""),
    ("Card Stalls Three Seconds Beyond The APDU Timeout", "FAIL", "DeviceTimeout"),
    ("Card Answers Again After The Stall", "PASS", ""),
    ("Reader Unplugged Mid-Run", "FAIL", ("DeviceGone", "CardRemoved")),
    ("The Next Test Opens The Device Again", "PASS", ""),
]


@pytest.mark.parametrize("device", VIRTUAL_BACKENDS)
def test_each_fault_fails_its_test_and_the_run_goes_on(tmp_path, device):
    proc = subprocess.run(
        [sys.executable, "-m", "robot", "--pythonpath", str(Path(__file__).parents[2]), "--variable",
         f"DEVICE:{device}", "--outputdir", str(tmp_path), "--console", "none", str(SUITE)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr  # Robot's exit code: four failed tests
    result = ExecutionResult(str(tmp_path / "output.xml"))
    tests = result.suite.tests
    assert [(t.name, t.status) for t in tests] == [(name, status) for name, status, _ in EXPECTED]
    for test, (_, _, error) in zip(tests, EXPECTED, strict=True):
        assert test.message.startswith(error) and "\n" not in test.message, test.message  # one name or a tuple
        assert test.elapsed_time.total_seconds() < 10  # every wait bounded
    assert "Traceback" not in proc.stderr
