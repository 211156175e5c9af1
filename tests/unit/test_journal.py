"""The results journal: records as a real Robot run goes, and the report rebuilt from any prefix of them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from robot.api import ExecutionResult

from harness.journal import JournalListener, announce, read_records, write_output
from robot import run as robot_run

ROBOT = Path(__file__).resolve().parents[2] / "robot"


@pytest.fixture(scope="module")
def journal(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("journal")
    path = out / "journal.jsonl"
    listener = JournalListener(str(path))
    code = robot_run(str(ROBOT / "card" / "selection.robot"), str(ROBOT / "card" / "iso_errors.robot"),
                     outputdir=str(out), output="NONE", report="NONE", log="NONE", listener=[listener],
                     pythonpath=[str(ROBOT.parent)], stdout=io.StringIO())
    listener.close()
    assert code == 0
    return path


def test_every_test_is_recorded_when_it_starts_and_ends(journal):
    records = read_records(journal)
    assert sum(r["event"] == "start" for r in records) == sum(r["event"] == "end" for r in records) >= 9
    assert {r["status"] for r in records if r["event"] == "end"} == {"PASS"}


def test_a_full_journal_rebuilds_every_test(journal, tmp_path):
    output = write_output(read_records(journal), tmp_path / "output.xml")
    tests = list(ExecutionResult(str(output)).suite.all_tests)
    assert len(tests) == sum(r["event"] == "end" for r in read_records(journal))
    assert all(t.status == "PASS" for t in tests)


@pytest.mark.parametrize("cut", [0.2, 0.5, 0.9])
def test_a_journal_cut_by_a_kill_keeps_what_finished_and_marks_the_rest_not_run(journal, tmp_path, cut):
    text = journal.read_bytes()
    (tmp_path / "j.jsonl").write_bytes(text[: int(len(text) * cut)])  # the last line is cut mid-record
    records = read_records(tmp_path / "j.jsonl")
    output = write_output(records, tmp_path / "output.xml", "the run was killed")
    tests = list(ExecutionResult(str(output)).suite.all_tests)
    finished = {r["test"] for r in records if r["event"] == "end"}
    running = {r["test"] for r in records if r["event"] == "start"} - finished
    assert {t.name for t in tests if t.status == "PASS"} == finished
    not_run = [t for t in tests if "not-run" in t.tags]
    assert {t.name for t in not_run if "while this test ran" in t.message} == running
    assert all(t.status == "SKIP" and t.message.startswith("not run: the run was killed") for t in not_run)
    announced = sum(len(r["tests"]) for r in records if r["event"] == "suite")
    assert len(tests) == announced


def test_announced_suites_that_never_started_come_back_as_not_run(journal, tmp_path):
    """A parallel run announces its suites first: killed before pabot started the second one, it still counts."""
    path = tmp_path / "j.jsonl"
    sources = [str(ROBOT / "card" / "selection.robot"), str(ROBOT / "card" / "iso_errors.robot")]
    announce(path, sources, "Selection & Iso Errors", [], [])
    real = read_records(journal)
    first_suite = next(r["suite"] for r in real if r["event"] == "suite" and r["tests"])
    path.write_text(path.read_text(encoding="utf-8") + "".join(  # the first suite's own records, as a worker's
        json.dumps(r) + "\n" for r in real if r["suite"] == first_suite), encoding="utf-8")
    tests = list(ExecutionResult(str(write_output(read_records(path), tmp_path / "output.xml"))).suite.all_tests)
    assert len(tests) == sum(r["event"] == "end" for r in real)  # every test of both suites, none twice
    ran = [t for t in tests if t.status == "PASS"]
    assert ran and len(ran) == sum(r["event"] == "end" and r["suite"] == first_suite for r in real)
    assert all("not run" in t.message for t in tests if t.status != "PASS")
