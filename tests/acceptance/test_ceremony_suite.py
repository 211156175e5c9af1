"""``hil run ceremony`` on the in-process devices: every requirement passes, each test names one requirement, and
no report file holds a PIN (card or phone, as text or hex) or a private key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from leak_scan import profile_secrets, scan
from robot.api import ExecutionResult

from harness.matrix import REQUIREMENT_TAG

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ceremony_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ceremony")
    proc = subprocess.run([*hil_command(), "run", "ceremony", "--outputdir", str(out)],
                          cwd=tmp_path_factory.mktemp("cwd"), capture_output=True, text=True, timeout=600,
                          check=False)
    return proc, out


def _tests(suite):
    yield from suite.tests
    for child in suite.suites:
        yield from _tests(child)


def test_every_ceremony_requirement_passes_once(ceremony_run) -> None:
    proc, out = ceremony_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    tests = list(_tests(ExecutionResult(str(out / "output.xml")).suite))
    assert len(tests) >= 20 and all(t.status == "PASS" for t in tests)
    ids = [[tag for tag in t.tags if REQUIREMENT_TAG.match(tag)] for t in tests]
    assert all(len(found) == 1 for found in ids), ids
    assert len({found[0] for found in ids}) == len(tests)
    assert all(found[0].startswith("CER-") for found in ids)


def test_no_report_file_holds_a_pin_a_holder_datum_or_a_private_key(ceremony_run) -> None:
    """Every PIN (card, blank phone, the values the suites derive), 照合番号 and holder datum, in every encoding
    (tests/leak_scan.py), and no PEM private key."""
    _, out = ceremony_run
    output = (out / "output.xml").read_text(encoding="utf-8")
    assert "00 24 01 80 04 ****" in output  # the phone's first PINs went out, masked
    findings, files, strings = scan(out, profile_secrets())
    assert files >= 4 and strings > 500, (files, strings)
    assert not findings, "\n".join(map(str, findings[:10]))
    for path in out.rglob("*"):
        if path.is_file():
            assert "PRIVATE KEY" not in path.read_text(encoding="utf-8", errors="replace"), path.name
