"""The ``hil`` command: list devices, run the conformance suites, rebuild the test PKI, serve virtual devices.

One module per job: :mod:`.run` (``run``, ``recover``; every ``run`` option in its ``register``),
:mod:`.listing` (``devices``), :mod:`.traces` (``record``, ``compare``), :mod:`.results` (``matrix``,
``trend``), :mod:`.generate` (``docs``, ``pki generate``), :mod:`.serving` (``virtual serve``,
``remote serve``). Each adds its subcommands with ``register``; every error ends here, as one line, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from devices import DeviceError
from harness import fixtures
from harness.lab import InventoryError

from . import generate, listing, results, run, serving, traces
from .common import UsageError, resolve_suites

__all__ = ["UsageError", "build_parser", "main", "resolve_suites"]

DESCRIPTION = ("The ``hil`` command: list devices, run the conformance suites, rebuild the test PKI, "
               "serve virtual devices.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hil", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (listing, run, traces, results, generate, serving):  # the order of ``hil --help``
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from harness.locks import LockBusy
    from harness.runner import RunError

    try:
        fixtures.check_environment()  # before the parser: its help lists the suites
    except fixtures.FixturesError as exc:
        print(f"hil: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    robot_args: list[str] = []
    if argv[:1] == ["run"] and "--" in argv:  # Robot's own options, passed through untouched
        cut = argv.index("--")
        argv, robot_args = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if args.command == "run":
        args.robot_args = robot_args
    try:
        return int(args.func(args))
    except (UsageError, DeviceError, InventoryError, fixtures.FixturesError, ValueError, OSError, RunError,
            LockBusy) as exc:
        print(f"hil: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hil: interrupted", file=sys.stderr)
        return 130

