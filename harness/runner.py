"""Run Robot suites the way ``hil run`` does, and report only what this run wrote.

A run holds its output folder (lock file) and the readers it uses, clears what it owns in the
folder, checks every device in pre-flight, then runs each part as ``robot`` (or pabot) under
:mod:`harness.supervise` so that its processes end together. Ctrl-C or SIGTERM stops the whole run
(a second one at once); the partial results are rebuilt from the journal when Robot could not
write them. The closing line keeps the ``N passed, N failed`` prefix CI reads.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from robot.result import Result

from harness import fixtures, journal, matrix, pcscd_isolation, reports
from harness.locks import FileLock, LockBusy, reader_lock, show_on_stderr
from harness.part_forks import PartForker
from harness.plan import Plan, PlanError, PlannedRun, load_plan  # noqa: F401  (re-exported)
from harness.reports import report_options  # noqa: F401  (re-exported)
from harness.scheduling import blocked_pins
from harness.supervise import die_with_parent

OUTPUT_LOCK = ".hil-run.lock"
VALUE_SETS = "pool-value-sets.ini"
OWNED = ("output.xml", ".output.reduced.xml", "log.html", "report.html", "xunit.xml", "matrix.csv", "matrix.html",
         journal.JOURNAL_NAME, "parts", "pabot_results", ".pabotsuitenames", VALUE_SETS, "pabotlib.log",
         "traces", "metrics.json", "summary.html")  # traces are appended to: an old run's would count in this one
LISTENERS = ("harness.notrun.NotRunListener", "harness.scheduling.BlockedPins", "harness.journal.JournalListener")
EXIT_NOT_RUN = 3
EXIT_INTERRUPTED = 130


class RunError(RuntimeError):
    """A run that cannot start (output folder or reader held, a device not ready): one line, exit 2."""


@dataclass
class RunOptions:
    suites: list[Path]
    outputdir: Path
    device: str | None = None
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    processes: int = 1
    name: str = "JPKI HIL"
    robot_args: list[str] = field(default_factory=list)  # Robot's own options, passed through
    console: str | None = None
    wait: float = 0.0  # seconds to wait for a reader another run holds
    check_only: bool = False
    part: str | None = None  # the plan part's name: the matrix's column (harness/matrix.py)
    value_sets: str = ""  # PabotLib's resource file of a device pool (--device pool:NAME under pabot)
    variables: list[str] = field(default_factory=list)  # NAME:value for Robot, e.g. a plan's PabotLib lease
    own_pcscd: bool = False  # a pcscd of its own (harness.pcscd_isolation): set by the parallel scheduler


@dataclass(frozen=True)
class RunSummary:
    passed: int
    failed: int
    skipped: int
    not_run: int
    report: Path

    def line(self) -> str:
        return reports.Counts(self.passed, self.failed, self.skipped, self.not_run).line()


def summarise(result: Result, outputdir: Path) -> RunSummary:
    found = reports.counts(result)
    return RunSummary(found.passed, found.failed, found.skipped, found.not_run, (outputdir / "report.html").resolve())


class Interrupts:
    """SIGINT/SIGTERM while a run is on: the first stops it gracefully, the second at once (every part)."""

    def __init__(self) -> None:
        self.count = 0
        self.running: set[subprocess.Popen] = set()  # the parts' supervisors (several in a parallel plan)
        self._saved: dict[int, object] = {}

    def __enter__(self) -> Interrupts:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *_exc) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame) -> None:
        self.count += 1
        if self.count == 1:
            print("\nhil: stopping the run (Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        self.forward()

    def forward(self) -> None:
        for process in list(self.running):
            if process.poll() is None and self.count:
                process.send_signal(signal.SIGINT if self.count == 1 else signal.SIGTERM)


def robot_command(options: RunOptions, outputdir: Path) -> list[str]:
    # Robot writes output.xml only; hil writes log, report and xunit from it (one place handles ENOSPC).
    args = ["--outputdir", str(outputdir), "--output", "output.xml", "--log", "NONE", "--report", "NONE",
            "--name", options.name,
            "--consolewidth", "100", "--prerunmodifier", "harness.scheduling.DestructiveLast"]
    for path in fixtures.python_paths():
        args += ["--pythonpath", str(path)]
    if options.device:
        args += ["--variable", f"DEVICE:{options.device}", "--metadata", f"Device:{options.device}"]
    if options.part:
        args += ["--metadata", f"{matrix.PART_METADATA}:{options.part}"]
    for variable in options.variables:
        args += ["--variable", variable]
    for tag in options.include:
        args += ["--include", tag]
    for tag in options.exclude:
        args += ["--exclude", tag]
    for listener in LISTENERS:
        args += ["--listener", listener]
    if options.console:
        args += ["--console", options.console]
    args += options.robot_args
    suites = [str(Path(p).resolve()) for p in options.suites]
    if options.processes > 1:
        shared = ["--no-pabotlib"]
        if options.value_sets:  # a pool: pabot's PabotLib hands each worker one member (value sets)
            shared = ["--pabotlib", "--pabotlibport", "0", "--resourcefile", str(outputdir / VALUE_SETS)]
        return [sys.executable, "-m", "pabot.pabot", "--processes", str(options.processes), *shared,
                *args, *suites]
    return [sys.executable, "-m", "robot", *args, *suites]


def start_part(options: RunOptions, outputdir: Path, interrupts: Interrupts, forker=None):
    """One Robot (or pabot) invocation started under the supervisor; :func:`end_part` after it exits. With a
    :class:`~harness.part_forks.PartForker`, a plain Robot part is forked from its zygote instead of spawned."""
    outputdir = outputdir.resolve()  # pabot runs in the output folder
    outputdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env[journal.JOURNAL_ENV] = str(outputdir / journal.JOURNAL_NAME)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # pabot spawns 'robot'
    env.pop(pcscd_isolation.PART_ENV, None)
    if options.own_pcscd:
        env[pcscd_isolation.PART_ENV] = pcscd_isolation.PART_VALUE
    if options.processes > 1 and shutil.which("robot", path=env["PATH"]) is None:
        raise RunError("pabot needs the 'robot' command on PATH")
    if options.value_sets:
        (outputdir / VALUE_SETS).write_text(options.value_sets, encoding="utf-8")
    if options.processes > 1:  # pabot starts suites one by one: a kill before one began must not lose it
        journal.announce(outputdir / journal.JOURNAL_NAME, [str(Path(p).resolve()) for p in options.suites],
                         options.name, options.include, options.exclude)
    command = robot_command(options, outputdir)
    cwd = outputdir if options.processes > 1 else None
    process = forker.start(command[3:], env, cwd) if forker is not None and command[1:3] == ["-m", "robot"] \
        else None
    if process is None:
        sys.stdout.flush()
        process = subprocess.Popen([sys.executable, "-m", "harness.supervise", "--", *command], stdin=subprocess.PIPE,
                                   env=env, start_new_session=True, cwd=cwd,
                                   preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    interrupts.running.add(process)
    return process


def end_part(process: subprocess.Popen, interrupts: Interrupts) -> int:
    """The part's exit code, once its supervisor has ended it (its stdin's EOF would stop it early)."""
    try:
        return process.wait()
    finally:
        interrupts.running.discard(process)
        if process.stdin:
            process.stdin.close()


@dataclass
class PartOutput:
    """A part's output.xml and its tree, read once; ``rebuilt`` when it came from the journal."""

    path: Path
    result: Result
    rebuilt: bool = False


def part_output(outputdir: Path, reason: str, options: dict[str, list[str]] | None = None) -> PartOutput | None:
    """This part's output.xml, read; rebuilt from the journal when Robot could not write it (killed)."""
    output = outputdir / "output.xml"
    if output.exists():
        try:
            return PartOutput(output, reports.read(output, options))
        except Exception:  # a truncated file: Robot's DataError and XML errors alike
            pass
    records_file = outputdir / journal.JOURNAL_NAME
    if records_file.exists():
        records = journal.read_records(records_file)
        if any(r.get("event") == "suite" for r in records):
            journal.write_output(records, output, reason)
            return PartOutput(output, reports.read(output, options), rebuilt=True)
    return None


class OutputFolder:
    """The output folder held by this run: locked, then cleared of everything a run writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = FileLock(path / OUTPUT_LOCK, f"output folder {path}")

    def __enter__(self) -> OutputFolder:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"cannot create the output folder {self.path}: {exc.strerror}") from None
        taken, note = self.lock.try_acquire()
        if not taken:
            raise RunError(f"output folder {self.path} is in use by {note}; give this run another --outputdir")
        if note:
            print(f"hil: {note}", file=sys.stderr)
        for name in OWNED:
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        return self

    def __exit__(self, *_exc) -> None:
        self.lock.release()


class ReaderLocks:
    """Every reader of the run, taken in a fixed order (no deadlock between two plans)."""

    def __init__(self, readers: dict[str, str], wait: float) -> None:
        self.readers, self.wait, self.held = readers, wait, []

    def __enter__(self) -> ReaderLocks:
        locks = {}
        for device, uri in sorted(self.readers.items()):
            lock = reader_lock(uri, device)
            if lock is not None:
                locks.setdefault(lock.path, lock)
        try:
            for path in sorted(locks):
                note = locks[path].acquire(self.wait, show_on_stderr)
                self.held.append(locks[path])
                if note:
                    print(f"hil: {note}", file=sys.stderr)
        except LockBusy:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        for lock in self.held:
            lock.release()
        self.held = []


@dataclass(frozen=True)
class Guards:
    """What a run holds and checks: the readers to lock (name → URI), pools' members, whether to pre-flight."""

    readers: dict[str, str] = field(default_factory=dict)
    preflight: bool = True
    pools: dict[str, list[str]] = field(default_factory=dict)  # pool:NAME → its members' names in readers


def preflight(parts: list[tuple[str, RunOptions]], forker: PartForker | None = None) -> list[str]:
    """The pre-flight of every part with a device, in a supervised process of its own (what opening a
    device starts, a pcscd or a bridge, ends with it), forked from ``forker``'s zygote when there is one;
    raises RunError with its one line."""
    checked = [{"label": label, "device": o.device, "suites": [str(p) for p in o.suites], "include": o.include,
                "exclude": o.exclude} for label, o in parts if o.device]
    if not checked:
        return []
    read_end, write_end = os.pipe()
    try:
        process = forker.start([json.dumps(checked)], dict(os.environ), None, program="preflight",
                               output=write_end) if forker is not None else None
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if process is None:
        command = [sys.executable, "-m", "harness.supervise", "--", sys.executable, "-m", "harness.preflight",
                   json.dumps(checked)]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=write_end, stderr=write_end,
                                   start_new_session=True, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
    os.close(write_end)
    try:
        with os.fdopen(read_end, encoding="utf-8", errors="replace") as output:
            lines = output.read().splitlines()  # stdin stays open: its EOF would tell the supervisor to stop
        process.wait()
    finally:
        if process.stdin:
            process.stdin.close()
        if process.poll() is None:
            process.kill()
    problem = next((line.split(": ", 1)[1] for line in lines if line.startswith("preflight problem: ")), None)
    if process.returncode != 0 or problem:
        raise RunError(problem or f"the pre-flight stopped (exit {process.returncode}): {' '.join(lines[-3:])}")
    return [line.split(": ", 1)[1] for line in lines if line.startswith("preflight ok: ")]


def execute(plan_name: str, parts: list[tuple[str, RunOptions]], outputdir: Path, *, is_plan: bool,
            wait: float = 0.0, check_only: bool = False, guards: Guards | None = None, processes: int = 1) -> int:
    """Locks, pre-flight, every part (up to ``processes`` plan parts at once), then one report, matrix and
    closing line. The zygote (:mod:`harness.part_forks`) is forked first, before any lock is taken: its imports
    run while hil takes the locks, and the pre-flight and the parts are forked from it."""
    guards = guards or Guards()
    with PartForker(outputdir) as forker, OutputFolder(outputdir), ReaderLocks(guards.readers, wait):
        checked = preflight(parts, forker) if guards.preflight else []
        if check_only:
            for line in checked:
                print(f"ok {line}")
            print(f"pre-flight: {len(checked)} device(s) ready")
            return 0
        from harness.parallel_parts import run_parts

        return run_parts(plan_name, parts, outputdir, is_plan, processes, guards, forker)


def finish(outputs: list[PartOutput], rows: list[matrix.Outcome], outputdir: Path,
           name: str | None, options: dict[str, list[str]] | None = None) -> tuple[RunSummary, bool]:
    """Report, matrix and the closing lines from the parts' trees (``rows``: each part's own, for when the
    merged report cannot be written); False when a file could not be written (said in one line)."""
    written = True
    merged = len(outputs) > 1 or outputs[0].path != outputdir / "output.xml"
    result = reports.combine([o.result for o in outputs]) if merged else outputs[0].result
    problem = reports.write_reports(result, outputdir, merged=merged, name=name if merged else None,
                                    options=options)
    if problem:
        print(f"hil: error: the report could not be written: {problem} (output.xml and the journal are kept)",
              file=sys.stderr)
        written = False
    if written:  # the merged output: its cells link to the merged log.html; else each part's own rows
        rows = matrix.outcomes(outputdir / "output.xml", "suite default", linked_from=outputdir, result=result)
    try:
        for path in matrix.write(rows, outputdir):
            print(f"Matrix: {path.resolve()}")
    except OSError as exc:  # ENOSPC and the like: say so in one line, keep what was written
        print(f"hil: error: the matrix could not be written: {exc}", file=sys.stderr)
        written = False
    summary = summarise(result, outputdir)
    pins = blocked_pins(result.suite)
    if pins:
        print(f"PINs blocked by this run: {', '.join(pins)}")
    print(summary.line())
    if written:
        print(f"Report: {summary.report}")
    sys.stdout.flush()
    return summary, written


def run_suites(options: RunOptions, guards: Guards | None = None) -> int:
    """One run of some suites on one device (or the suites' defaults)."""
    return execute(options.name, [(options.name, options)], options.outputdir, is_plan=False,
                   wait=options.wait, check_only=options.check_only, guards=guards)


def run_plan(plan: Plan, outputdir: Path, *, wait: float = 0.0, check_only: bool = False,
             robot_args: list[str] | None = None, console: str | None = None, guards: Guards | None = None,
             processes: int = 1) -> int:
    """Each planned run into its own folder, then one merged report and the device × requirement matrix.

    ``processes``: how many parts may run at once (:mod:`harness.parallel_parts`); each part is one Robot
    process, its suites in series."""
    parts = [(part.name, RunOptions(part.suites, outputdir, part.device, part.include, part.exclude,
                                    name=part.name, robot_args=list(robot_args or []), console=console,
                                    part=part.name))
             for part in plan.runs]
    return execute(plan.name, parts, outputdir, is_plan=True, wait=wait, check_only=check_only, guards=guards,
                   processes=processes)


def recover(outputdir: Path) -> int:
    """Rebuilds output.xml, log, report, xunit and matrix of a killed run from its journal(s)."""
    with _Held(outputdir):
        parts = sorted(p for p in (outputdir / "parts").glob("*") if p.is_dir()) if (outputdir / "parts").is_dir() \
            else []
        folders = parts or [outputdir]
        outputs, rows = [], []
        for number, folder in enumerate(folders, 1):
            output = part_output(folder, "the run was killed")
            if output is None:
                print(f"hil: {folder}: nothing to recover (no journal)", file=sys.stderr)
                continue
            outputs.append(output)
            rows += matrix.outcomes(output.path, number=number, linked_from=outputdir, result=output.result)
        if not outputs:
            raise RunError(f"{outputdir}: no results journal to recover from")
        _, written = finish(outputs, rows, outputdir, outputdir.name if parts else None)
    return 0 if written else 2


class _Held:
    """The output folder's lock for the time of a recovery."""

    def __init__(self, outputdir: Path) -> None:
        if not outputdir.is_dir():
            raise RunError(f"{outputdir}: no such output folder")
        self.lock = FileLock(outputdir / OUTPUT_LOCK, f"output folder {outputdir}")

    def __enter__(self) -> _Held:
        taken, note = self.lock.try_acquire()
        if not taken:
            raise RunError(f"output folder {self.lock.path.parent} is in use by {note}")
        return self

    def __exit__(self, *_exc) -> None:
        self.lock.release()
