"""Runs the card and phone suites through ``hil run`` on the in-process virtual devices and reads output.xml."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from robot.api import ExecutionResult

from devices.virtual.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
REQUIREMENT_TAG = re.compile(r"^[A-Z]{3,4}-[A-Z0-9]{2,4}-\d{3}$")


@pytest.fixture(scope="module")
def card_and_phone_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suites")
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "card", "phone", "--outputdir", str(out)],
        cwd=tmp_path_factory.mktemp("cwd"),  # not the repo: paths must not depend on the cwd
        capture_output=True, text=True, timeout=600, check=False,
    )
    return proc, out


def all_tests(suite):
    yield from suite.tests
    for child in suite.suites:
        yield from all_tests(child)


def test_every_card_and_phone_requirement_passes(card_and_phone_run):
    proc, out = card_and_phone_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = ExecutionResult(str(out / "output.xml"))
    stats = result.statistics.total
    assert stats.failed == 0 and stats.skipped == 0
    assert stats.passed >= 40
    tests = list(all_tests(result.suite))
    card = [t for t in tests if "card" in t.tags]
    phone = [t for t in tests if "phone" in t.tags]
    assert len(card) >= 40 and len(phone) >= 15
    for test in tests:
        ids = [tag for tag in test.tags if REQUIREMENT_TAG.match(tag)]
        assert len(ids) == 1, f"{test.longname} has requirement tags {ids}"
    # CLI contract: the summary line, then the report path last
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == f"{stats.passed} passed, 0 failed, 0 skipped"
    assert lines[-1] == f"Report: {(out / 'report.html').resolve()}"
    for name in ("log.html", "report.html", "xunit.xml"):
        assert (out / name).stat().st_size > 0


def test_log_holds_apdu_trace_tables_with_pins_masked(card_and_phone_run):
    _, out = card_and_phone_run
    output = (out / "output.xml").read_text(encoding="utf-8")
    assert output.count("apdu-trace") >= 40
    assert "00 20 00 80 04 ****" in output
    secrets = set()
    for profile in ("card", "phone"):
        for spec in load_profile(profile).pins.values():
            secrets.add(spec.value)
    for name in ("output.xml", "log.html", "report.html", "xunit.xml"):
        text = (out / name).read_text(encoding="utf-8")
        hex_text = text.upper()
        for pin in secrets:
            hex_pin = pin.encode().hex(" ").upper()
            assert hex_pin not in hex_text, f"{name} carries a PIN in hex"
            if not pin.isdigit():  # 4-digit PINs occur as ordinary numbers; passwords must never appear
                assert pin not in text, f"{name} carries a password"


def test_plan_runs_merge_into_one_report_with_a_matrix(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'name = "two devices"\n'
        '[[run]]\nsuites = ["card/selection.robot"]\ndevice = "virtual:card"\n'
        '[[run]]\nsuites = ["card/selection.robot"]\ndevice = "virtual:card?extended=0"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--plan", str(plan), "--outputdir", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = ExecutionResult(str(out / "output.xml"))
    assert result.suite.name == "two devices" and len(result.suite.suites) == 2
    assert result.statistics.total.passed == 18
    rows = (out / "matrix.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "requirement,virtual:card,virtual:card?extended=0"
    assert "JPKI-SEL-001,PASS,PASS" in rows
    assert proc.stdout.strip().splitlines()[-1] == f"Report: {(out / 'report.html').resolve()}"


def test_malformed_plan_is_one_line(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[run]]\nsuites = ["nope"]\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--plan", str(plan)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hil: error: {plan}: run 1: no suite 'nope' under {REPO / 'robot'}"
