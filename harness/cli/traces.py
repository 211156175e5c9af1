"""``hil record`` and ``hil compare``: trace files as data (a run kept as a recording, a device checked
against one)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from devices.registry import check_uri
from harness.iso.redact import SHOW_HOLDER_DATA_ENV
from harness.lab import resolve

from .common import UsageError, resolve_suites


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``hil record`` and ``hil compare``."""
    rec = sub.add_parser("record", help="run suites against a device and keep its trace as a recording")
    rec.add_argument("suites", nargs="*", help="suite folders or .robot files (default: all)")
    rec.add_argument("--device", help="device URI or inventory name (default: each suite's own)")
    rec.add_argument("--out", required=True, help="the recording to write, e.g. fixtures/recordings/x.jsonl")
    rec.add_argument("--outputdir", default="results/record", help="where Robot's log and report of the run go")
    rec.add_argument("--anonymise", action="store_true",
                     help="replace the holder's data by an anonymous holder's (lengths and TLV structure kept)")
    rec.add_argument("--show-holder-data", action="store_true",
                     help="keep the holder data of a card whose holder record says synthetic = true")
    rec.add_argument("--include", action="append", help="only tests with this tag (repeatable)")
    rec.add_argument("--exclude", action="append", help="skip tests with this tag (repeatable)")
    rec.add_argument("--interactive", action="store_true",
                     help="a prompt of keywords (Select Applet    jpki) and hex APDUs against --device, recorded; "
                          "PINs only through the guarded keywords (Verify PIN    auth)")
    rec.set_defaults(func=cmd_record)


    cmp_ = sub.add_parser("compare", help="send a recording's commands to a device; report where it answers otherwise")
    cmp_.add_argument("recording", help="a recording or trace file (JSON lines)")
    cmp_.add_argument("--device", required=True, help="device URI or inventory name to compare")
    cmp_.add_argument("--json", help="also write every difference to this JSON file")
    cmp_.add_argument("--limit", type=int, default=20, help="differences printed (default 20)")
    cmp_.set_defaults(func=cmd_compare)


def cmd_record(args: argparse.Namespace) -> int:
    from harness.recording import RecordOptions, record

    if args.show_holder_data and args.anonymise:
        raise UsageError("give --anonymise or --show-holder-data, not both")
    if args.interactive:
        given = [flag for flag, value in (("suites", args.suites), ("--include", args.include),
                                          ("--exclude", args.exclude)) if value]
        if given:
            raise UsageError(f"--interactive records what is typed, not suites; {', '.join(given)} cannot go with it")
        if not args.device:
            raise UsageError("--interactive needs --device: the reader to talk to")
    if args.device:
        check_uri(resolve(args.device)[0])
    os.environ.pop(SHOW_HOLDER_DATA_ENV, None)  # lifted only when asked for on this command line
    if args.show_holder_data:
        os.environ[SHOW_HOLDER_DATA_ENV] = "1"
    if args.interactive:
        from harness.interactive import record_interactive

        return record_interactive(args.device, Path(args.out), args.anonymise)
    options = RecordOptions(resolve_suites(args.suites), Path(args.out), Path(args.outputdir), args.device,
                            args.anonymise, args.include or [], args.exclude or [])
    return record(options)


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.compare import compare, write_json

    recording = Path(args.recording)
    if not recording.is_file():
        raise UsageError(f"no recording {recording}")
    check_uri(resolve(args.device)[0])
    result = compare(recording, args.device)
    for difference in result.differences[: args.limit]:
        print(difference.line())
    if len(result.differences) > args.limit:
        print(f"… and {len(result.differences) - args.limit} more (--json keeps them all)")
    for note in result.notes:
        print(f"note: {note}")
    if args.json:
        write_json(result, Path(args.json))
    print(result.summary())
    return 1 if result.differences else 0
