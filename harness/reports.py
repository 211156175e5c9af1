"""Robot's log, report and xunit, written from result trees that are read once.

A part's output.xml is parsed once, when the part ends. That tree gives the part's log and report, its
closing line, and later its place in the merged report. The merged tree then gives the matrix, the closing
line and the PINs the run blocked without reading a file again. Before, a 22-part main job parsed an
output.xml 159 times, and parsing was the largest cost of the ``hil`` process.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from robot.api import ExecutionResult
from robot.result import Result
from robot.result.executionresult import CombinedResult

from harness import matrix
from harness.notrun import is_not_run

# Robot applies these to the outputs it builds from output.xml, which under ``hil run`` is this module's job
# (Robot itself writes output.xml only): taken from the options after ``--``.
REPORT_OPTIONS = ("removekeywords", "flattenkeywords", "expandkeywords")
REDUCING_OPTIONS = ("removekeywords", "flattenkeywords")  # these also make output.xml smaller
REDUCED = ".output.reduced.xml"


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    skipped: int  # not counting the tests that were not run
    not_run: int

    def line(self) -> str:
        # The plain closing line CI readers recognise (PLATFORM-NOTES: Robot's own summary is not it).
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped, {self.not_run} not run"


def counts(result: Result) -> Counts:
    tests = list(result.suite.all_tests)
    not_run = sum(1 for t in tests if is_not_run(t))
    return Counts(sum(1 for t in tests if t.status == "PASS"), sum(1 for t in tests if t.status == "FAIL"),
                  sum(1 for t in tests if t.status == "SKIP") - not_run, not_run)


def report_options(robot_args: list[str]) -> dict[str, list[str]]:
    """``--removekeywords``, ``--flattenkeywords`` and ``--expandkeywords`` of Robot's options, by name."""
    found: dict[str, list[str]] = {}
    args = iter(robot_args)
    for arg in args:
        name, equals, value = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or name.lower() not in REPORT_OPTIONS:
            continue
        value = value if equals else next(args, "")
        if value:
            found.setdefault(name.lower(), []).append(value)
    return found


def read(output: Path, options: dict[str, list[str]] | None = None) -> Result:
    """One output.xml as a tree; ``--flattenkeywords`` applies while reading, as in rebot (less memory)."""
    return ExecutionResult(str(output), flattened_keywords=(options or {}).get("flattenkeywords", []))


def combine(results: list[Result]) -> Result:
    """The parts' trees under one root, as rebot combines several outputs (the parts' trees move into it)."""
    return CombinedResult(results)


def write_reports(result: Result, outputdir: Path, *, merged: bool, name: str | None = None,
                  options: dict[str, list[str]] | None = None) -> str | None:
    """log, report and xunit of ``result`` (and output.xml when ``merged``); the problem in one line, or None.

    A part's own output.xml is Robot's and stays, unless ``--removekeywords``/``--flattenkeywords`` ask for a
    reduced one: it is then rewritten through a temporary file (a failed rewrite leaves Robot's)."""
    from robot.conf import RebotSettings
    from robot.errors import DataError

    from robot import rebot

    options = options or {}
    reduced = not merged and any(options.get(key) for key in REDUCING_OPTIONS)
    output = "output.xml" if merged else (REDUCED if reduced else None)
    settings = dict(outputdir=str(outputdir), output=output, log="log.html", report="report.html",
                    xunit="xunit.xml", name=name, **options)
    try:
        configured = RebotSettings(dict(settings))
        result.configure(configured.status_rc, configured.suite_config, configured.statistics_config)  # as rebot
    except DataError as exc:  # a result without tests (a run stopped before its first), a bad option
        return str(exc).splitlines()[0]
    errors = io.StringIO()
    code = rebot(result, stdout=io.StringIO(), stderr=errors, **settings)
    text = errors.getvalue()
    if code < 250 and "[ ERROR ]" not in text:
        if reduced:
            (outputdir / REDUCED).replace(outputdir / "output.xml")
        try:  # the requirement IDs into xunit.xml, which Robot writes without tags (Jenkins, GitLab keep them)
            matrix.tag_xunit(result, outputdir / "xunit.xml")
        except (OSError, ET.ParseError) as exc:
            return f"xunit.xml: the requirement IDs could not be written: {exc}"
        return None
    (outputdir / REDUCED).unlink(missing_ok=True)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if re.match(r"^\w+(Error|Exception): ", line)), None)
    return reason or next((line for line in lines if "[ ERROR ]" in line), f"rebot exit {code}")
