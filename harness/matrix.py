"""The device × requirement matrix of a lab run: which requirement passed on which device."""

from __future__ import annotations

import csv
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robot.api import ExecutionResult
from robot.result import TestCase, TestSuite

from harness.notrun import NOT_RUN_TAG

REQUIREMENT_TAG = re.compile(r"^[A-Z]{3,7}-[A-Z0-9]{2,6}-\d{3}$")
NOT_RUN = "NOT RUN"
ORDER = {"FAIL": 0, NOT_RUN: 1, "SKIP": 2, "PASS": 3}
DEVICE_METADATA = "Device"


@dataclass(frozen=True)
class Outcome:
    requirement: str
    device: str
    status: str  # PASS, FAIL, SKIP, NOT RUN (the worst over the tests carrying the requirement)
    test: str


def requirement_of(test: TestCase) -> str | None:
    return next((tag for tag in test.tags if REQUIREMENT_TAG.match(tag)), None)


def _tests(suite: TestSuite) -> Iterator[TestCase]:
    yield from suite.tests
    for child in suite.suites:
        yield from _tests(child)


def _device_of(test: TestCase) -> str | None:
    suite = test.parent
    while suite is not None:
        if DEVICE_METADATA in suite.metadata:
            return str(suite.metadata[DEVICE_METADATA])
        suite = suite.parent
    return None


def status_of(test: TestCase) -> str:
    return NOT_RUN if test.status == "SKIP" and NOT_RUN_TAG in test.tags else test.status


def outcomes(output: Path, device: str | None = None) -> list[Outcome]:
    """The requirements of one output.xml; the device is the suites' ``Device`` metadata, else ``device``,
    else the folder the output is in."""
    result = ExecutionResult(str(output))
    found = []
    for test in _tests(result.suite):
        requirement = requirement_of(test)
        if requirement:
            where = _device_of(test) or device or output.resolve().parent.name
            found.append(Outcome(requirement, where, status_of(test), test.longname))
    return found


def build(rows: list[Outcome]) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    devices = list(dict.fromkeys(o.device for o in rows))
    requirements = sorted({o.requirement for o in rows})
    cells: dict[tuple[str, str], str] = {}
    for o in rows:
        key = (o.requirement, o.device)
        if key not in cells or ORDER[o.status] < ORDER[cells[key]]:
            cells[key] = o.status
    return requirements, devices, cells


def write(rows: list[Outcome], outputdir: Path) -> tuple[Path, Path]:
    requirements, devices, cells = build(rows)
    csv_path = outputdir / "matrix.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["requirement", *devices])
        for req in requirements:
            writer.writerow([req, *(cells.get((req, d), "") for d in devices)])
    colours = {"PASS": "#97bd61", "FAIL": "#ce3e01", "SKIP": "#fed84f", NOT_RUN: "#b0b0b0", "": "#eeeeee"}
    head = "".join(f"<th>{html.escape(d)}</th>" for d in devices)
    body = []
    for req in requirements:
        tds = "".join(
            f"<td style='background:{colours[cells.get((req, d), '')]}'>{cells.get((req, d), '–')}</td>"
            for d in devices
        )
        body.append(f"<tr><th style='text-align:left'>{html.escape(req)}</th>{tds}</tr>")
    html_path = outputdir / "matrix.html"
    html_path.write_text(
        "<!DOCTYPE html><meta charset='utf-8'><title>Device × requirement matrix</title>"
        "<h1>Device × requirement matrix</h1><p>Worst outcome over the tests carrying each requirement; "
        "NOT RUN (grey) where the set-up kept it from running, – where it was not selected for that device. "
        "Details in report.html.</p>"
        f"<table border='1' style='border-collapse:collapse'><tr><th>requirement</th>{head}</tr>"
        + "".join(body) + "</table>",
        encoding="utf-8",
    )
    return csv_path, html_path
