"""Run Robot suites the way ``hil run`` does, and summarise the result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from robot.api import ExecutionResult

from devices.virtual.profile import REPO_ROOT
from robot import run as robot_run


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
        "pythonpath": [str(REPO_ROOT)],
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
