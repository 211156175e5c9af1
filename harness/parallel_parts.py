"""A plan's parts, up to ``--processes`` of them at once, each its own Robot process in its own folder.

A part starts only when what it needs alone is free. Needs are counted against capacities:

- its device (the inventory name or URI; what :func:`harness.locks.reader_key` calls one reader is one
  need, so every ``virtual:…?via=pcsc`` part and every suite that opens ``via=pcsc`` itself share
  ``vpcd``: pcscd's two vpcd slots, and parked card servers holding them for 15 s, are one machine's;
  where a part can have a pcscd of its own, :func:`give_own_pcscd` drops that need);
- a pool part (``pool:NAME``) one unit of the pool, whose capacity is its member count; the member
  itself is leased from pabot's PabotLib server (value sets), which this module starts when a plan
  uses a pool: taken under the part's ``${CALLER_ID}`` before the part starts, freed after it ended,
  and read by the part's process (:mod:`harness.pools`); a part naming a member directly takes the
  whole pool. The CLI gives the members (:class:`harness.runner.Guards`): the runner reads no inventory.

The other virtual bridges cannot collide between processes: the nfcpy UDP link, the RFC 2217 port
server and the relying-party, OCSP and authority HTTP servers bind port 0, serial firmware opens its
own pty, and an in-process card lives in its process. The merged report, matrix, closing line and
exit code are built from the parts in plan order, so they match a serial run's but for the times.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import journal, matrix, part_history, pcscd_isolation, reports
from harness.locks import reader_key
from harness.part_forks import ForkedPart, PartForker
from harness.runner import (
    EXIT_INTERRUPTED,
    EXIT_NOT_RUN,
    VALUE_SETS,
    Guards,
    Interrupts,
    PartOutput,
    RunError,
    RunOptions,
    end_part,
    finish,
    part_output,
    start_part,
)
from harness.supervise import die_with_parent
from harness.value_sets import POOL_PREFIX, TAG_PREFIX, is_pool, value_sets_text

VPCD = "vpcd"  # reader_key's name for the vpcd slots every via=pcsc bridge shares
PABOTLIB_LOG = "pabotlib.log"  # in runner.OWNED: a new run clears it
PABOTLIB_START_SECONDS = 15.0


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:40]


def _suite_files(suites: list[Path]) -> list[Path]:
    found: list[Path] = []
    for suite in suites:
        found += sorted(suite.rglob("*.robot")) + sorted(suite.rglob("*.resource")) if suite.is_dir() else [suite]
    return found


def _opens_vpcd(suites: list[Path]) -> bool:
    """Whether a suite names a ``via=pcsc`` device itself (a default ``${DEVICE}``, a bridge comparison)."""
    return any("via=pcsc" in path.read_text(encoding="utf-8", errors="replace") for path in _suite_files(suites))


PRIVATE_DEVICE = "device:"  # the need of a device no other process can reach (in-process, its own bridge)


def _key(device: str, uri: str) -> str:
    return reader_key(uri) or f"{PRIVATE_DEVICE}{device}"


@dataclass
class Needs:
    """What each part holds alone while it runs (need → units) and how much of each there is."""

    parts: list[dict[str, int]]
    capacity: dict[str, int] = field(default_factory=dict)

    def fits(self, index: int, held: dict[str, int]) -> bool:
        return all(held.get(need, 0) + units <= self.capacity.get(need, 1) for need, units in self.parts[index].items())


def needs_of(parts: list[RunOptions], guards: Guards) -> Needs:
    """The needs of every part; ``guards`` maps inventory names (or URIs) to URIs and pools to members."""
    pool_keys = {pool: {_key(name, guards.readers.get(name, name)) for name in names}
                 for pool, names in guards.pools.items()}
    capacity = {pool: len(names) for pool, names in guards.pools.items()}
    found = []
    for options in parts:
        need: dict[str, int] = {}
        device = options.device
        if device and is_pool(device):
            if device not in capacity:
                raise RunError(f"{device}: the run was given no members of this pool")
            need[device] = 1
            if VPCD in pool_keys[device]:
                need[VPCD] = 1
        elif device:
            key = _key(device, guards.readers.get(device, device))
            need[key] = 1
            for pool, keys in pool_keys.items():
                if key in keys:  # a member named directly: no other part may lease from its pool meanwhile
                    need[pool] = capacity[pool]
        if _opens_vpcd(options.suites):
            need[VPCD] = 1
        found.append(need)
    return Needs(found, capacity)


def give_own_pcscd(parts: list[tuple[str, RunOptions]], needs: Needs) -> list[tuple[str, RunOptions]]:
    """Parts whose one shared need is vpcd get a pcscd of their own (:mod:`harness.pcscd_isolation`) where the
    machine allows it, and so no longer wait for each other. A part that also names a real reader, or a pool,
    keeps the machine's pcscd and its turn on vpcd."""
    chosen = [i for i, need in enumerate(needs.parts)
              if VPCD in need and all(key == VPCD or key.startswith(PRIVATE_DEVICE) for key in need)]
    if not chosen:
        return parts
    problem = pcscd_isolation.unavailable()
    if problem:
        if not problem.startswith(pcscd_isolation.SWITCH_ENV):
            print(f"hil: parts behind vpcd run one at a time: they cannot have a pcscd of their own ({problem})",
                  file=sys.stderr)
        return parts
    given = list(parts)
    for index in chosen:
        del needs.parts[index][VPCD]
        label, options = given[index]
        given[index] = (label, replace(options, own_pcscd=True))
    return given


class LeaseServer:
    """pabot's own PabotLib server (``python -m pabot.pabotlib``) with the value sets of the plan's pools, under
    the supervisor; parts lease a pool member from it through ``${PABOTLIBURI}`` and ``${CALLER_ID}``."""

    def __init__(self, outputdir: Path, value_sets: str) -> None:
        self.outputdir, self.value_sets = outputdir.resolve(), value_sets
        self.process: subprocess.Popen | None = None
        self.uri = ""

    def __enter__(self) -> LeaseServer:
        sets, log = self.outputdir / VALUE_SETS, self.outputdir / PABOTLIB_LOG
        sets.write_text(self.value_sets, encoding="utf-8")
        command = [sys.executable, "-m", "harness.supervise", "--", sys.executable, "-u", "-m", "pabot.pabotlib",
                   str(sets), "127.0.0.1", "0"]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        deadline = time.monotonic() + PABOTLIB_START_SECONDS
        while time.monotonic() < deadline and self.process.poll() is None:
            found = re.search(r"remote server at (127\.0\.0\.1:\d+) started", log.read_text(errors="replace"))
            if found:
                self.uri = found.group(1)
                return self
            select.select([], [], [], 0.05)
        self.__exit__()
        raise RunError(f"pabot's PabotLib server did not start within {PABOTLIB_START_SECONDS:g} s (see {log})")

    def acquire(self, caller: str, pool_device: str) -> str:
        """A free member of the pool for a part about to start (the needs guarantee one is free)."""
        from robot.libraries.Remote import Remote

        tag = f"{TAG_PREFIX}{pool_device[len(POOL_PREFIX):]}"
        name, _values = Remote(f"http://{self.uri}").run_keyword("acquire_value_set", [caller, tag], {})
        if not name:
            raise RunError(f"{pool_device}: PabotLib has no free member although the plan counted one")
        return str(name)

    def release(self, caller: str) -> None:
        """Frees a part's member once its process has ended (PabotLib ignores a caller holding none)."""
        from robot.libraries.Remote import Remote

        with contextlib.suppress(Exception):
            Remote(f"http://{self.uri}").run_keyword("release_value_set", [caller], {})

    def __exit__(self, *_exc) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the supervisor ends the server and anything it left
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdin:
            process.stdin.close()


@dataclass
class _Running:
    index: int
    process: subprocess.Popen | ForkedPart
    started: float
    caller: str = ""
    pidfd: int = -1


@dataclass
class _Progress:
    """What the parts did, by plan index: exit codes, and how long each one ran."""

    codes: dict[int, int] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)
    outputs: dict[int, PartOutput] = field(default_factory=dict)  # read once when the part ended


def _part_dir(outputdir: Path, index: int, label: str, is_plan: bool) -> Path:
    return outputdir / "parts" / f"{index:02d}-{_slug(label)}" if is_plan else outputdir


def run_parts(plan_name: str, parts: list[tuple[str, RunOptions]], outputdir: Path, is_plan: bool,
              processes: int = 1, guards: Guards | None = None, forker: PartForker | None = None) -> int:
    """Every part (``processes`` at a time at most), then the report, matrix and closing line in plan order.
    ``forker``: a zygote the caller started already (it imports while the pre-flight runs); else one of its own."""
    guards = guards or Guards()
    processes = max(1, min(processes, len(parts)))
    parallel = processes > 1
    needs = needs_of([o for _, o in parts], guards) if parallel else Needs([{} for _ in parts])
    if parallel:
        parts = give_own_pcscd(parts, needs)
    pooled = dict.fromkeys(o.device for _, o in parts if o.device and is_pool(o.device))
    sets = "".join(value_sets_text(device, guards.pools[device]) for device in pooled) if parallel else ""
    with Interrupts() as interrupts:
        with LeaseServer(outputdir, sets) if parallel and sets else contextlib.nullcontext() as server, \
                PartForker(outputdir) if parallel and is_plan and forker is None \
                else contextlib.nullcontext(forker) as forker:
            progress = _schedule(parts, outputdir, is_plan, processes, needs, interrupts, server, forker)
        if is_plan and not interrupts.count:
            part_history.save(outputdir, {parts[i][0]: s for i, s in progress.seconds.items()
                                          if progress.codes.get(i, 255) < 250})
        return _report(plan_name, parts, outputdir, is_plan, progress, interrupts)  # PabotLib stopped first


def _announce(parts: list[tuple[str, RunOptions]], indices: list[int], outputdir: Path) -> None:
    """Every test of parts not started yet into their journals: killed before it began, a part comes back as
    not run (``hil recover``, and the partial report of an interrupted run)."""
    for index in indices:
        label, options = parts[index]
        folder = _part_dir(outputdir, index + 1, label, True)
        folder.mkdir(parents=True, exist_ok=True)
        metadata = {key: value for key, value in (("Device", options.device), (matrix.PART_METADATA, options.part))
                    if value}
        journal.announce(folder / journal.JOURNAL_NAME, [str(p.resolve()) for p in options.suites],
                         options.name, options.include, options.exclude, metadata)


def _schedule(parts: list[tuple[str, RunOptions]], outputdir: Path, is_plan: bool, processes: int, needs: Needs,
              interrupts: Interrupts, server: LeaseServer | None, forker: PartForker | None = None) -> _Progress:
    pending = part_history.longest_first([label for label, _ in parts], part_history.load(outputdir)) \
        if processes > 1 else list(range(len(parts)))
    announce = is_plan and processes > 1  # once the first parts are on their way (it takes ~0.1 s a part)
    running: list[_Running] = []
    held: dict[str, int] = {}
    progress = _Progress()
    started = time.monotonic()
    try:
        while pending or running:
            while pending and len(running) < processes and not interrupts.count:
                index = next((i for i in pending if needs.fits(i, held)), None if running else pending[0])
                if index is None:
                    break
                pending.remove(index)
                running.append(_start(index, parts, outputdir, is_plan, interrupts, server, forker))
                for need, units in needs.parts[index].items():
                    held[need] = held.get(need, 0) + units
            if announce:
                _announce(parts, pending, outputdir)
                announce = False
            if not running:
                break  # interrupted: what has not started stays not run
            for done in _wait_any(running):
                running.remove(done)
                _end(done, parts, outputdir, is_plan, interrupts, server, progress)
                for need, units in needs.parts[done.index].items():
                    held[need] -= units
                _say_done(done.index, parts, outputdir, is_plan, progress, interrupts, started)
    finally:
        for left in running:  # only after an error here: a supervisor ends its part when its stdin closes
            if left.process.stdin:
                left.process.stdin.close()
            end_part(left.process, interrupts)
            os.close(left.pidfd)
    return progress


def _start(index: int, parts: list[tuple[str, RunOptions]], outputdir: Path, is_plan: bool, interrupts: Interrupts,
           server: LeaseServer | None, forker: PartForker | None = None) -> _Running:
    label, options = parts[index]
    caller = member = ""
    if server is not None and is_pool(options.device):
        caller = f"hil-part-{index + 1}-{uuid.uuid4().hex[:12]}"
        member = server.acquire(caller, options.device or "")  # held from before the part starts until it ended
        options = RunOptions(**{**options.__dict__, "variables": [*options.variables, f"PABOTLIBURI:{server.uri}",
                                                                  f"CALLER_ID:{caller}"]})
    if is_plan:
        print(f"== {index + 1}/{len(parts)}: {label}" + (f" (on {member})" if member else ""), flush=True)
    process = start_part(options, _part_dir(outputdir, index + 1, label, is_plan), interrupts, forker)
    return _Running(index, process, time.monotonic(), caller, os.pidfd_open(process.pid))


def _wait_any(running: list[_Running]) -> list[_Running]:
    """The parts whose supervisor has exited (blocks until one has; signals interrupt and are retried)."""
    ready = select.select([r.pidfd for r in running], [], [], 1.0)[0]
    return [r for r in running if r.pidfd in ready and r.process.poll() is not None]


def _end(done: _Running, parts: list[tuple[str, RunOptions]], outputdir: Path, is_plan: bool,
         interrupts: Interrupts, server: LeaseServer | None, progress: _Progress) -> None:
    progress.codes[done.index] = end_part(done.process, interrupts)
    progress.seconds[done.index] = time.monotonic() - done.started
    os.close(done.pidfd)
    if server is not None and done.caller:
        server.release(done.caller)


def _say_done(index: int, parts: list[tuple[str, RunOptions]], outputdir: Path, is_plan: bool,
              progress: _Progress, interrupts: Interrupts, started: float) -> None:
    """The part's own log and report, and its closing line, as soon as it ends (its tree is kept for the
    merged report)."""
    if not is_plan:
        return
    label, options = parts[index]
    part_dir = _part_dir(outputdir, index + 1, label, is_plan)
    options_of_reports = reports.report_options(options.robot_args)
    output = part_output(part_dir, "the run was interrupted" if interrupts.count else "Robot stopped",
                         options_of_reports)
    if output is None:
        return  # said in the report's pass, in plan order
    progress.outputs[index] = output
    problem = reports.write_reports(output.result, part_dir, merged=False, options=options_of_reports)
    if problem:
        print(f"hil: error: {label}: its report could not be written: {problem}", file=sys.stderr)
    finished = len(progress.codes)
    left = len(parts) - finished
    done = time.monotonic() - started
    estimate = f", about {done / finished * left:.0f} s left" if left and not interrupts.count else ""
    line = reports.counts(output.result).line()
    print(f"== {index + 1}/{len(parts)} {label}: {line} ({progress.seconds[index]:.1f} s){estimate}", flush=True)


def _report(plan_name: str, parts: list[tuple[str, RunOptions]], outputdir: Path, is_plan: bool,
            progress: _Progress, interrupts: Interrupts) -> int:
    outputs: list[PartOutput] = []
    rows: list[matrix.Outcome] = []
    reason = "the run was interrupted" if interrupts.count else "Robot stopped"
    options_of_reports = reports.report_options(parts[0][1].robot_args)
    for index, (label, options) in enumerate(parts):
        part_dir = _part_dir(outputdir, index + 1, label, is_plan)
        if index not in progress.codes:
            print(f"== {index + 1}/{len(parts)} {label}: not run (interrupted)", flush=True)
            if not (part_dir / journal.JOURNAL_NAME).exists():
                continue  # announced only before a parallel plan: then its tests come back as not run
        output = progress.outputs.get(index) or part_output(part_dir, reason, options_of_reports)
        if output is None:
            print(f"hil: {label}: not run (Robot wrote no output, exit {progress.codes.get(index)})",
                  file=sys.stderr)
            continue
        outputs.append(output)
        rows += matrix.outcomes(output.path, options.device or "suite default", number=index + 1,
                                linked_from=outputdir, result=output.result)
    worst = max(progress.codes.values(), default=0)
    if not outputs:
        print("hil: no part of the run wrote results", file=sys.stderr)
        return EXIT_INTERRUPTED if interrupts.count else (worst or 252)
    summary, written = finish(outputs, rows, outputdir, plan_name, options_of_reports)
    if interrupts.count:
        print("hil: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if summary.failed:
        return 1
    if not written:
        return 2
    return EXIT_NOT_RUN if summary.not_run else 0
