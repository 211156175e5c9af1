"""Runs the card and phone suites through ``hil run`` on the in-process virtual devices and reads output.xml."""

import subprocess
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from leak_scan import profile_secrets, scan, scan_text
from robot.api import ExecutionResult
from robot_results import failed_tests

from harness.matrix import REQUIREMENT_TAG

REPO = Path(__file__).resolve().parents[2]


PLAN = REPO / "fixtures" / "lab" / "virtual-plan.toml"


@pytest.fixture(scope="module")
def virtual_plan_run(tmp_path_factory):
    """The main job itself, as README runs it (six parts at a time): every suite on every virtual backend."""
    out = tmp_path_factory.mktemp("plan")
    proc = subprocess.run(
        [*hil_command(), "run", "--plan", str(PLAN), "--outputdir", str(out), "--processes", "6"],
        cwd=tmp_path_factory.mktemp("cwd"),  # not the repo: paths must not depend on the cwd
        capture_output=True, text=True, timeout=1200, check=False,
    )
    return proc, out


def test_the_main_job_writes_no_pin_or_holder_datum_in_any_file(virtual_plan_run):
    """Every file of the full main-job run, searched for every PIN, 照合番号 and holder datum (tests/leak_scan.py)."""
    proc, out = virtual_plan_run
    secrets = profile_secrets()
    findings, files, strings = scan(out, secrets)
    assert files > 40 and strings > 5000, (files, strings)  # every part's files, log models decoded
    assert not findings, "\n".join(map(str, findings[:20]))
    assert not scan_text(proc.stdout + proc.stderr, secrets)


def all_tests(suite):
    yield from suite.tests
    for child in suite.suites:
        yield from all_tests(child)


def test_every_requirement_passes_on_every_virtual_backend(virtual_plan_run):
    proc, out = virtual_plan_run
    assert proc.returncode == 0, failed_tests(out / "output.xml") + "\n" + proc.stdout[-1500:] + proc.stderr[-1500:]
    result = ExecutionResult(str(out / "output.xml"))
    stats = result.statistics.total
    assert stats.failed == 0
    tests = list(all_tests(result.suite))
    skipped = [t for t in tests if t.status == "SKIP"]
    assert all("destructive" in t.tags and "expendable" in t.message for t in skipped), [t.name for t in skipped]
    assert all("guarded" in t.parent.longname.lower() or "Guarded" in t.longname for t in skipped)
    parts = {suite.name: list(all_tests(suite)) for suite in result.suite.suites}
    assert len(parts["Card, in-process"]) >= 40 and len(parts["Phone, in-process"]) >= 15
    for name in ("Card behind pcscd and vpcd", "Card over nfcpy's UDP link"):
        assert len(parts[name]) == len(parts["Card, in-process"])
    for test in tests:
        ids = [tag for tag in test.tags if REQUIREMENT_TAG.match(tag)]
        assert len(ids) == 1, f"{test.longname} has requirement tags {ids}"
    # CLI contract: the summary line, then the report path last
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == f"{stats.passed} passed, 0 failed, {stats.skipped} skipped, 0 not run"
    assert lines[-1] == f"Report: {(out / 'report.html').resolve()}"
    for name in ("log.html", "report.html", "xunit.xml", "matrix.html", "matrix.csv"):
        assert (out / name).stat().st_size > 0


def test_log_holds_apdu_trace_tables_with_the_verify_data_masked(virtual_plan_run):
    """The traces are there, VERIFY's data masked in them. That no file holds a PIN in any encoding is the leak
    scan's, above (every profile's PINs and the values the suites derive from them)."""
    _, out = virtual_plan_run
    output = (out / "output.xml").read_text(encoding="utf-8")
    assert output.count("apdu-trace") >= 400
    assert "00 20 00 80 04 ****" in output


def test_plan_runs_merge_into_one_report_with_a_matrix(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'name = "two devices"\n'
        '[[run]]\nsuites = ["card/selection.robot"]\ndevice = "virtual:card"\n'
        '[[run]]\nsuites = ["card/selection.robot"]\ndevice = "virtual:card?extended=0"\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    proc = subprocess.run([*hil_command(), "run", "--plan", str(plan), "--outputdir", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = ExecutionResult(str(out / "output.xml"))
    assert result.suite.name == "two devices" and len(result.suite.suites) == 2
    assert result.statistics.total.passed == 24  # selection.robot: 12 requirements, twice
    rows = (out / "matrix.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == ("requirement,title,card/selection.robot on virtual:card,"
                       "card/selection.robot on virtual:card?extended=0")  # a column per plan part
    assert "JPKI-SEL-001,JPKI AP Is Selectable By AID,PASS,PASS" in rows
    assert proc.stdout.strip().splitlines()[-1] == f"Report: {(out / 'report.html').resolve()}"


def test_malformed_plan_is_one_line(tmp_path):
    plan = tmp_path / "plan.toml"
    plan.write_text('[[run]]\nsuites = ["nope"]\n', encoding="utf-8")
    proc = subprocess.run([*hil_command(), "run", "--plan", str(plan)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hil: error: {plan}:1: run 1: no suite 'nope' under {REPO / 'robot'}"
