"""What every ``hil`` subcommand shares: the one-line usage error, the suite names, argument types."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from harness import fixtures

ROBOT_DIR = fixtures.suites_dir()
NON_SUITE_DIRS = {"resources"}
OPT_IN_SUITES = {"soak"}  # long runs for labs: only when named (``hil run soak``), never in the default set


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


def suite_names() -> list[str]:
    return sorted(p.name for p in ROBOT_DIR.iterdir() if p.is_dir() and p.name not in NON_SUITE_DIRS)


def resolve_suites(names: Sequence[str]) -> list[Path]:
    if not names:
        return [ROBOT_DIR / name for name in suite_names() if name not in OPT_IN_SUITES]
    paths = []
    for name in names:
        candidate = ROBOT_DIR / name
        path = candidate if candidate.exists() else Path(name)
        if not path.exists():
            raise UsageError(f"no suite '{name}'; known: {', '.join(suite_names())} (or a .robot path)")
        paths.append(path.resolve())
    return paths


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments are one line (``hil virtual serve: error: …``) and exit 2, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def port_number(lowest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if not text.strip().isdigit() or not lowest <= int(text) <= 65535:
            raise argparse.ArgumentTypeError(f"{text!r} is not a port ({lowest}-65535)")
        return int(text)
    return parse
