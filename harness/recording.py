"""``hil record``: run suites against a device and keep its trace as a recording (``fixtures/recordings/``).

A recording is a trace file (:mod:`harness.tracefile`) a lab may commit, so it keeps what a replay needs
and nothing of a person: PINs as length-and-class markers always; the holder's data masked (those reads
do not replay), shown for a synthetic holder under ``--show-holder-data``, or replaced by the anonymous
holder's values under ``--anonymise`` (lengths and TLV structure kept).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.keywords.trace_files import RECORD_ANONYMISE_ENV, RECORD_FILE_ENV
from harness.tracefile import read_trace


@dataclass
class RecordOptions:
    suites: list[Path]
    out: Path
    outputdir: Path
    device: str | None = None
    anonymise: bool = False
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)


def record(options: RecordOptions) -> int:
    """Runs the suites with every exchange going to ``options.out``; returns Robot's exit code."""
    from harness.runner import RunOptions, run_suites

    out = options.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # a recording is one run, never appended to an older one
    saved = {name: os.environ.get(name) for name in (RECORD_FILE_ENV, RECORD_ANONYMISE_ENV)}
    os.environ[RECORD_FILE_ENV] = str(out)
    os.environ[RECORD_ANONYMISE_ENV] = "1" if options.anonymise else "0"
    try:
        code = run_suites(RunOptions(suites=options.suites, outputdir=options.outputdir, device=options.device,
                                     include=options.include, exclude=options.exclude, name="JPKI HIL recording"))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    if not out.exists():
        print(f"hil: no device was opened, nothing recorded (exit {code})")
        return code or 252
    records = read_trace(out)
    exchanges = sum(1 for r in records if r["type"] == "exchange")
    holder = next((r.get("holder_data") for r in records if r["type"] == "header"), "masked")
    print(f"Recording: {out} ({exchanges} exchanges; holder data {holder})")
    return code
