"""The requirement matrix and xunit.xml from real Robot runs of small generated suites.

Two plan parts run through the runner (``robot`` under the supervisor, then rebot): the same suite, once
as written and once with every tag lowercased, as a formatter might leave it. The matrix has a column per
part with its title, the requirements' titles, totals, sticky headers, grey not-run cells and links that
open the test in log.html (checked in headless Chromium); xunit.xml keeps the requirement IDs.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from robot.api import ExecutionResult

from harness import matrix
from harness.runner import Guards, RunOptions, execute

SUITE = """*** Settings ***
Documentation     A generated suite with one test per outcome.


*** Test Cases ***
Card Is Selectable By AID
    [Tags]    JPKI-SEL-001
    Log    selected

Token Label Is Read
    [Tags]    JPKI-TOK-001    smoke
    Log    read

Signature Verifies
    [Tags]    JPKI-SIG-001
    Fail    the signature does not verify

Sign PIN Tries Are Queried
    [Tags]    JPKI-SIG-002
    Skip    the profile has no sign PIN

Reader Is Present
    [Tags]    JPKI-RDR-001    not-run
    Skip    not run: reader gone

Helper Without Requirement
    Log    no requirement tag
"""
TITLES = {"JPKI-SEL-001": "Card Is Selectable By AID", "JPKI-TOK-001": "Token Label Is Read",
          "JPKI-SIG-001": "Signature Verifies", "JPKI-SIG-002": "Sign PIN Tries Are Queried",
          "JPKI-RDR-001": "Reader Is Present"}
PARTS = ("Card, as written", "Card, tags lowercased by a formatter")


def lowercase_tags(text: str) -> str:
    return re.sub(r"^(\s+\[Tags\].*)$", lambda m: m[1].lower(), text, flags=re.M)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("matrix")
    for folder, text in (("written", SUITE), ("lowercased", lowercase_tags(SUITE))):
        (work / folder).mkdir()
        (work / folder / "card.robot").write_text(text, "utf-8")
    assert "jpki-sel-001" in (work / "lowercased" / "card.robot").read_text("utf-8")
    out = work / "results"
    parts = [(name, RunOptions([work / folder], out, "virtual:card", name=name, part=name))
             for name, folder in zip(PARTS, ("written", "lowercased"), strict=True)]
    code = execute("generated plan", parts, out, is_plan=True, guards=Guards(preflight=False))
    assert code == 1  # one test fails in each part
    return out


def rows(out: Path) -> list[list[str]]:
    with (out / "matrix.csv").open(encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_a_column_per_plan_part_with_its_title_and_a_row_per_requirement_with_its_title(run):
    table = rows(run)
    assert table[0] == ["requirement", "title", *PARTS]
    assert {row[0]: row[1] for row in table[1:]} == TITLES  # the test without a requirement has no row
    by_id = {row[0]: row[2:] for row in table[1:]}
    assert by_id["JPKI-SEL-001"] == ["PASS", "PASS"]  # the lowercased tags count the same
    assert by_id["JPKI-SIG-001"] == ["FAIL", "FAIL"]
    assert by_id["JPKI-SIG-002"] == ["SKIP", "SKIP"]
    assert by_id["JPKI-RDR-001"] == ["NOT RUN", "NOT RUN"]


def test_a_formatter_that_lowercases_tags_does_not_empty_the_matrix(run):
    lowered = run / "parts" / "02-card-tags-lowercased-by-a-formatter" / "output.xml"
    tags = {tag for test in ExecutionResult(str(lowered)).suite.all_tests for tag in test.tags}
    assert "jpki-sel-001" in tags and "JPKI-SEL-001" not in tags  # what the part really wrote
    found = matrix.outcomes(lowered)
    assert sorted(o.requirement for o in found) == sorted(TITLES)


def test_the_page_has_sticky_headers_totals_per_column_and_grey_not_run_cells(run):
    page = (run / "matrix.html").read_text("utf-8")
    assert re.search(r"thead\{position:sticky;top:0", page)
    assert re.search(r"th\.req\{position:sticky;left:0", page)  # the requirement column stays too
    totals = re.search(r"<tr class='totals'>(.*?)</tr>", page)[1]
    assert totals.count("2 passed<br>1 failed<br>1 skipped<br>1 not run") == 2
    not_run = re.findall(r"<td class='notrun' style='background:([^']+)'>", page)
    assert not_run == [matrix.COLOURS[matrix.NOT_RUN]] * 2 and not_run[0] == "#b0b0b0"
    for title in PARTS:
        assert f"<th>{title}<div class='dev'>virtual:card</div></th>" in page
    assert "<span class='title'>Card Is Selectable By AID</span>" in page


def links(out: Path) -> list[tuple[str, str]]:
    page = (out / "matrix.html").read_text("utf-8")
    return re.findall(r"<a href='([^']+)' title='([^']+) in log.html'>", page)


def test_every_cell_links_to_its_test_in_the_merged_log(run):
    found = links(run)
    assert len(found) == 2 * len(TITLES)
    tests = {t.id: t for t in ExecutionResult(str(run / "output.xml")).suite.all_tests}
    for href, title in found:
        log, anchor = href.split("#")
        assert log == "log.html" and tests[anchor].name == title
    parts = {tests[href.split("#")[1]].parent.parent.name for href, _ in found}
    assert parts == set(PARTS)


def test_a_link_opens_its_test_in_log_html_in_headless_chromium(run, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: run scripts/setup.sh (Debian package chromium)"
    href = next(h for h, title in links(run) if title == "Token Label Is Read" and "-s2-" in h)
    anchor = href.split("#")[1]
    doms = []
    for fragment in ("", f"#{anchor}"):
        proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--no-first-run",
                               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                               "--dump-dom", (run / "log.html").as_uri() + fragment],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        doms.append(proc.stdout)
    # Robot's log draws a test's keywords only when the test is opened: the anchor opens it (the control:
    # without the anchor the test is a closed header)
    assert f'id="{anchor}"' in doms[0] and f'id="{anchor}-k1"' not in doms[0]
    assert f'id="{anchor}-k1"' in doms[1]


def test_xunit_keeps_the_requirement_ids_for_jenkins_and_gitlab(run):
    cases = list(ET.parse(run / "xunit.xml").iter("testcase"))
    assert len(cases) == 12
    tagged = [c for c in cases if c.find("properties/property[@name='requirement']") is not None]
    assert len(tagged) == 10  # all but the two helpers
    for case in tagged:
        requirement = case.find("properties/property[@name='requirement']").get("value")
        assert requirement in TITLES  # upper-case, the lowercased part's too
        assert case.get("name") == f"{requirement} {TITLES[requirement]}"
    helper = [c for c in cases if c not in tagged]
    assert [c.get("name") for c in helper] == ["Helper Without Requirement"] * 2
    assert [c.find("failure") is not None for c in tagged].count(True) == 2  # the failures are still failures
    part_xunit = ET.parse(run / "parts" / "01-card-as-written" / "xunit.xml")
    assert len(part_xunit.findall(".//property[@name='requirement']")) == 5  # each part's own xunit too


def test_hil_matrix_rebuilds_the_same_columns_from_the_merged_output(run, tmp_path):
    from harness.cli import main

    assert main(["matrix", str(run / "output.xml"), "--outputdir", str(tmp_path / "m")]) == 0
    assert rows(tmp_path / "m") == rows(run)
    rebuilt = links(tmp_path / "m")
    assert len(rebuilt) == 2 * len(TITLES)
    assert all((tmp_path / "m" / h.split("#")[0]).resolve() == (run / "log.html").resolve() for h, _ in rebuilt)
