"""Run Robot suites the way ``hil run`` does, and summarise the result."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from robot.api import ExecutionResult

from harness import fixtures, matrix
from robot import rebot
from robot import run as robot_run

ROBOT_DIR = fixtures.suites_dir()


class PlanError(ValueError):
    """A malformed run plan; one line naming the file."""


@dataclass(frozen=True)
class PlannedRun:
    """One part of a lab run: some suites on one device."""

    name: str
    suites: list[Path]
    device: str | None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Plan:
    name: str
    runs: list[PlannedRun]


@dataclass
class RunOptions:
    suites: list[Path]
    outputdir: Path
    device: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    processes: int = 1
    name: str = "JPKI HIL"


@dataclass(frozen=True)
class RunSummary:
    passed: int
    failed: int
    skipped: int
    report: Path

    def line(self) -> str:
        # The plain closing line CI readers recognise (PLATFORM-NOTES: Robot's own summary is not it).
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


def robot_arguments(options: RunOptions) -> dict:
    variables = [f"DEVICE:{options.device}"] if options.device else []
    return {
        "outputdir": str(options.outputdir),
        "output": "output.xml",
        "log": "log.html",
        "report": "report.html",
        "xunit": "xunit.xml",
        "name": options.name,
        "variable": variables,
        "include": options.include,
        "exclude": options.exclude,
        "pythonpath": [str(path) for path in fixtures.python_paths()],
        "consolewidth": 100,
    }


def _run_pabot(options: RunOptions) -> int:
    """Parallel run: pabot spawns ``robot`` from PATH, so the venv's bin goes first."""
    args = robot_arguments(options)
    command = [sys.executable, "-m", "pabot.pabot", "--processes", str(options.processes)]
    for key, value in args.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            command += [f"--{key}", str(item)]
    command += [str(p) for p in options.suites]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if shutil.which("robot", path=env["PATH"]) is None:
        raise OSError("pabot needs the 'robot' command on PATH")
    return subprocess.run(command, env=env, check=False).returncode


def summarise(outputdir: Path) -> RunSummary:
    result = ExecutionResult(str(outputdir / "output.xml"))
    total = result.statistics.total
    return RunSummary(total.passed, total.failed, total.skipped, (outputdir / "report.html").resolve())


def run_suites(options: RunOptions) -> int:
    """Runs the suites, prints the ``N passed, N failed`` line and the report path; returns Robot's code."""
    options.outputdir.mkdir(parents=True, exist_ok=True)
    if options.processes > 1:
        code = _run_pabot(options)
    else:
        code = robot_run(*[str(p) for p in options.suites], **robot_arguments(options))
    output = options.outputdir / "output.xml"
    if not output.exists():
        print(f"hil: Robot wrote no {output} (exit {code})", file=sys.stderr)
        return code or 252
    summary = summarise(options.outputdir)
    print(summary.line())
    print(f"Report: {summary.report}")
    return code


def load_plan(path: Path) -> Plan:
    """A TOML plan: ``name`` and ``[[run]]`` tables with ``name``, ``suites``, ``device``, ``include``, ``exclude``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: {exc}") from None
    runs = data.get("run")
    if not isinstance(runs, list) or not runs:
        raise PlanError(f"{path}: no [[run]] tables")
    planned = []
    for index, run in enumerate(runs, 1):
        where = f"{path}: run {index}"
        if not isinstance(run.get("suites"), list) or not run["suites"]:
            raise PlanError(f"{where}: 'suites' must be a non-empty list of suite folders or .robot files")
        suites = []
        for suite in run["suites"]:
            candidate = ROBOT_DIR / str(suite)
            if not candidate.exists():
                raise PlanError(f"{where}: no suite '{suite}' under {ROBOT_DIR}")
            suites.append(candidate)
        device = run.get("device")
        if device is not None and not isinstance(device, str):
            raise PlanError(f"{where}: 'device' must be a string")
        name = str(run.get("name") or f"{', '.join(map(str, run['suites']))} on {device or 'default devices'}")
        planned.append(PlannedRun(name, suites, device, list(run.get("include", [])), list(run.get("exclude", []))))
    return Plan(str(data.get("name", path.stem)), planned)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40]


def run_plan(plan: Plan, outputdir: Path) -> int:
    """Each planned run into its own folder, then one merged report and the device × requirement matrix."""
    outputdir.mkdir(parents=True, exist_ok=True)
    outputs, rows, worst = [], [], 0
    for index, part in enumerate(plan.runs, 1):
        part_dir = outputdir / "parts" / f"{index:02d}-{_slug(part.name)}"
        options = RunOptions(part.suites, part_dir, part.device, part.include, part.exclude, name=part.name)
        print(f"== {index}/{len(plan.runs)}: {part.name}", flush=True)
        part_dir.mkdir(parents=True, exist_ok=True)
        code = robot_run(*[str(p) for p in part.suites], **robot_arguments(options))
        worst = max(worst, code)
        output = part_dir / "output.xml"
        if output.exists():
            outputs.append(str(output))
            rows += matrix.outcomes(output, part.device or "suite default")
        else:
            print(f"hil: run '{part.name}' wrote no output.xml (exit {code})", file=sys.stderr)
            worst = max(worst, 252)
    if not outputs:
        return worst or 252
    rebot(*outputs, outputdir=str(outputdir), output="output.xml", log="log.html", report="report.html",
          xunit="xunit.xml", name=plan.name, stdout=sys.stderr)
    csv_path, html_path = matrix.write(rows, outputdir)
    print(f"Matrix: {csv_path.resolve()}")
    summary = summarise(outputdir)
    print(f"Matrix: {html_path.resolve()}")
    print(summary.line())
    print(f"Report: {summary.report}")
    return 1 if summary.failed else worst
