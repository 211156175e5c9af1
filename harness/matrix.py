"""The requirement matrix of a lab run: which requirement passed in which plan part, for people and for CI.

Columns are the plan's parts (a part is some suites on one device; a run without a plan has one column per
device), rows the requirements with their titles (the test's name), each cell linked to the test in
log.html. Requirement IDs are matched in any case (a formatter that lowercases tags changes nothing) and
shown upper-case. The IDs also go into xunit.xml, which Robot writes without tags, so that Jenkins and
GitLab keep them.
"""

from __future__ import annotations

import csv
import html
import os
import re
import xml.etree.ElementTree as ET
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robot.api import ExecutionResult
from robot.result import Result, TestCase, TestSuite

from harness.notrun import NOT_RUN_TAG

REQUIREMENT_TAG = re.compile(r"^[A-Z]{3,7}-[A-Z0-9]{2,6}-\d{3}$", re.IGNORECASE)
NOT_RUN = "NOT RUN"
ORDER = {"FAIL": 0, NOT_RUN: 1, "SKIP": 2, "PASS": 3}
TOTALS = (("PASS", "passed"), ("FAIL", "failed"), ("SKIP", "skipped"), (NOT_RUN, "not run"))
DEVICE_METADATA = "Device"
PART_METADATA = "Plan part"  # set by the runner on each part of a plan (harness/runner.py)
XUNIT_PROPERTY = "requirement"
COLOURS = {"PASS": "#97bd61", "FAIL": "#ce3e01", "SKIP": "#fed84f", NOT_RUN: "#b0b0b0", "": "#f4f4f4"}


@dataclass(frozen=True)
class Column:
    key: str  # unique over the outputs read (the file and the part's suite)
    title: str  # the plan part's name, or the device without a plan
    device: str


@dataclass(frozen=True)
class Outcome:
    requirement: str  # upper-case
    column: Column
    status: str  # PASS, FAIL, SKIP, NOT RUN
    test: str  # the test's name: the requirement's title
    link: str | None  # the test in log.html (its Robot id as anchor), None without a log


@dataclass(frozen=True)
class Matrix:
    requirements: list[str]
    titles: dict[str, str]
    columns: list[Column]
    cells: dict[tuple[str, str], Outcome]  # (requirement, column key) → the worst outcome

    def totals(self, column: Column) -> dict[str, int]:
        counts = {status: 0 for status, _ in TOTALS}
        for requirement in self.requirements:
            cell = self.cells.get((requirement, column.key))
            if cell is not None:
                counts[cell.status] += 1
        return counts


def requirement_of(test: TestCase) -> str | None:
    return next((tag.upper() for tag in test.tags if REQUIREMENT_TAG.match(tag)), None)


def _tests(suite: TestSuite) -> Iterator[TestCase]:
    yield from suite.tests
    for child in suite.suites:
        yield from _tests(child)


def _nearest(test: TestCase, name: str) -> tuple[TestSuite, str] | None:
    suite = test.parent
    while suite is not None:
        if name in suite.metadata:
            return suite, str(suite.metadata[name])
        suite = suite.parent
    return None


def status_of(test: TestCase) -> str:
    return NOT_RUN if test.status == "SKIP" and NOT_RUN_TAG in test.tags else test.status


def _link(output: Path, test: TestCase, linked_from: Path | None) -> str | None:
    log = output.parent / "log.html"
    if not log.is_file():
        return None
    where = os.path.relpath(log.resolve(), linked_from.resolve()) if linked_from else log.name
    return f"{Path(where).as_posix()}#{test.id}"


def outcomes(output: Path, device: str | None = None, *, number: int = 1,
             linked_from: Path | None = None, result: Result | None = None) -> list[Outcome]:
    """The requirements of one output.xml (``number``: its place among the outputs of one matrix), read from
    ``result`` when the caller has its tree already.

    A test's column is its plan part (``Plan part`` metadata), else its device: the ``Device`` metadata,
    else ``device``, else the folder the output is in. Links lead from ``linked_from`` (the matrix's folder)
    to the log beside the output."""
    if result is None:
        result = ExecutionResult(str(output), include_keywords=False)
    found = []
    for test in _tests(result.suite):
        requirement = requirement_of(test)
        if not requirement:
            continue
        meta = _nearest(test, DEVICE_METADATA)
        where = meta[1] if meta else device or output.resolve().parent.name
        part = _nearest(test, PART_METADATA)
        column = Column(f"{number}:{part[0].id}", part[1], where) if part else Column(f"{number}:{where}", where, where)
        found.append(Outcome(requirement, column, status_of(test), test.name, _link(output, test, linked_from)))
    return found


def build(rows: list[Outcome]) -> Matrix:
    columns = list(dict.fromkeys(o.column for o in rows))
    titles: dict[str, str] = {}
    cells: dict[tuple[str, str], Outcome] = {}
    for o in rows:
        titles.setdefault(o.requirement, o.test)
        key = (o.requirement, o.column.key)
        if key not in cells or ORDER[o.status] < ORDER[cells[key].status]:
            cells[key] = o
    return Matrix(sorted(titles), titles, columns, cells)


STYLE = """body{font-family:sans-serif;margin:1em}table{border-collapse:separate;border-spacing:0}
th,td{border:1px solid #bbb;padding:.2em .5em;font-size:90%}td{text-align:center;white-space:nowrap}
thead{position:sticky;top:0;z-index:2}thead th{background:#e8e8e8;vertical-align:bottom}
thead tr.totals th{font-weight:normal;font-size:80%;text-align:left}
th.req{position:sticky;left:0;background:#fff;text-align:left;z-index:1}thead th.req{z-index:3;background:#e8e8e8}
td a{color:inherit;text-decoration:none;display:block}.dev{font-weight:normal;font-size:80%;color:#444}
.title{font-weight:normal}"""


def _cell(cell: Outcome | None) -> str:
    if cell is None:
        return f"<td style='background:{COLOURS['']}' title='not selected for this part'>–</td>"
    text = html.escape(cell.status)
    if cell.link:
        text = f"<a href='{html.escape(cell.link)}' title='{html.escape(cell.test)} in log.html'>{text}</a>"
    return f"<td class='{cell.status.lower().replace(' ', '')}' style='background:{COLOURS[cell.status]}'>{text}</td>"


def render(found: Matrix) -> str:
    """The page people read: sticky headers, totals per column, not-run grey, cells linked to log.html."""
    head = "".join(f"<th>{html.escape(c.title)}" + (f"<div class='dev'>{html.escape(c.device)}</div>"
                                                      if c.device != c.title else "") + "</th>"
                   for c in found.columns)
    totals = ""
    for column in found.columns:
        counts = found.totals(column)
        totals += "<th>" + "<br>".join(f"{counts[s]} {label}" for s, label in TOTALS) + "</th>"
    body = []
    for req in found.requirements:
        tds = "".join(_cell(found.cells.get((req, c.key))) for c in found.columns)
        body.append(f"<tr><th class='req'>{html.escape(req)} <span class='title'>{html.escape(found.titles[req])}"
                    f"</span></th>{tds}</tr>")
    return (
        "<!DOCTYPE html><meta charset='utf-8'><title>Requirement matrix</title>"
        f"<style>{STYLE}</style><h1>Requirement matrix</h1><p>One column per plan part: the worst outcome over the "
        "tests carrying each requirement, linked to the test in log.html. NOT RUN (grey) where the set-up kept it "
        "from running, – where the part did not select it.</p>"
        f"<table><thead><tr><th class='req'>requirement</th>{head}</tr>"
        f"<tr class='totals'><th class='req'>totals</th>{totals}</tr></thead><tbody>"
        + "".join(body) + "</tbody></table>"
    )


def write(rows: list[Outcome], outputdir: Path) -> tuple[Path, Path]:
    found = build(rows)
    csv_path = outputdir / "matrix.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["requirement", "title", *(c.title for c in found.columns)])
        for req in found.requirements:
            writer.writerow([req, found.titles[req], *(
                found.cells[(req, c.key)].status if (req, c.key) in found.cells else "" for c in found.columns)])
    html_path = outputdir / "matrix.html"
    html_path.write_text(render(found), encoding="utf-8")
    return csv_path, html_path


def tag_xunit(result: Result, xunit: Path) -> int:
    """Writes each test's requirement ID into ``xunit`` (Robot's xunit has no tags), from the tree it was
    written from: a ``requirement`` property and the ID before the test's name, which is what Jenkins and
    GitLab show. Returns how many."""
    queues: dict[tuple[str, str], deque[str | None]] = defaultdict(deque)
    for test in result.suite.all_tests:
        queues[(test.parent.full_name, test.name)].append(requirement_of(test))
    tree = ET.parse(xunit)
    tagged = 0
    for case in tree.iter("testcase"):
        pending = queues.get((case.get("classname", ""), case.get("name", "")))
        requirement = pending.popleft() if pending else None
        if not requirement:
            continue
        properties = ET.Element("properties")
        ET.SubElement(properties, "property", {"name": XUNIT_PROPERTY, "value": requirement})
        case.insert(0, properties)
        case.set("name", f"{requirement} {case.get('name', '')}")
        tagged += 1
    tree.write(xunit, encoding="UTF-8", xml_declaration=True)
    return tagged
