"""Where the suites and fixtures live: the one module that knows, in a checkout and in an installed wheel.

In a checkout ``robot/`` and ``fixtures/`` sit beside ``harness/``. A wheel carries the same two folders
as package data under ``harness/_data/`` (see ``setup.py``), because a top-level ``robot`` package would
shadow Robot Framework's. A lab points at its own files with two environment variables, read on each call:

- ``HIL_SUITES=/path``: a folder of suites used instead of ``robot/`` (it brings its own resources).
- ``HIL_FIXTURES=/path``: a folder laid out like ``fixtures/``; each of its sub-folders that exists
  (``cards``, ``pki``, ``protocols``, ``relying_party``, ``lab``, ``recordings``) is used instead of the
  built-in one, the others stay built in, so a lab can add one reader protocol and keep the test PKI.

Imports nothing of ours: the device layer may use it (DESIGN.md, dependency rule 1).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

SUITES_ENV = "HIL_SUITES"
FIXTURES_ENV = "HIL_FIXTURES"
PACKAGED_DATA = "_data"  # inside the harness package of a wheel; must match setup.py
FIXTURE_KINDS = ("cards", "pki", "protocols", "relying_party", "lab", "recordings")


class FixturesError(ValueError):
    """A suites or fixtures folder that is not there; one line naming the variable or the install."""


def _package_dir() -> Path:
    where = resources.files(__package__ or "harness")
    if not isinstance(where, Path):  # a zip import: Robot and pcscd need real files
        raise FixturesError(f"the harness package is not installed as files ({where}); install the wheel unpacked")
    return where


def checkout_root() -> Path | None:
    """The source checkout this harness runs from, or None when it runs from an installed wheel."""
    package = _package_dir()
    if (package / PACKAGED_DATA).is_dir():
        return None
    root = package.parent
    return root if (root / "pyproject.toml").is_file() and (root / "fixtures").is_dir() else None


def data_root() -> Path:
    """The built-in folder holding ``robot/`` and ``fixtures/``: the checkout's root, or the wheel's data."""
    return checkout_root() or _package_dir() / PACKAGED_DATA


def python_paths() -> list[Path]:
    """Folders Robot adds to ``sys.path`` to import the harness: the checkout, nothing once installed."""
    root = checkout_root()
    return [root] if root else []


def _override(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser().resolve() if value else None


def suites_dir() -> Path:
    """The suites: ``HIL_SUITES`` when set, else the built-in ``robot/``."""
    return _override(SUITES_ENV) or data_root() / "robot"


def fixtures_dir() -> Path:
    """The fixtures root: ``HIL_FIXTURES`` when set, else the built-in ``fixtures/``."""
    return _override(FIXTURES_ENV) or data_root() / "fixtures"


def fixture_dir(kind: str) -> Path:
    """One kind of fixture: the lab's ``$HIL_FIXTURES/<kind>`` if that folder exists, else the built-in one."""
    if kind not in FIXTURE_KINDS:
        raise FixturesError(f"unknown fixture kind '{kind}'; known: {', '.join(FIXTURE_KINDS)}")
    own = lab_fixture_dir(kind)
    return own if own.is_dir() else data_root() / "fixtures" / kind


def lab_fixture_dir(kind: str) -> Path:
    """Where a lab's own files of one kind go (e.g. ``hil pki generate``): never the built-in copy when
    ``HIL_FIXTURES`` is set, so rebuilding a lab's PKI cannot overwrite the shipped one."""
    return fixtures_dir() / kind


def cards_dir() -> Path:
    return fixture_dir("cards")


def pki_dir() -> Path:
    return fixture_dir("pki")


def protocols_dir() -> Path:
    return fixture_dir("protocols")


def relying_party_dir() -> Path:
    return fixture_dir("relying_party")


def lab_dir() -> Path:
    return fixture_dir("lab")


def recordings_dir() -> Path:
    return fixture_dir("recordings")


def check_environment() -> None:
    """Raises FixturesError when an override names no folder or the built-in data is missing (a broken install)."""
    for variable in (SUITES_ENV, FIXTURES_ENV):
        path = _override(variable)
        if path is not None and not path.is_dir():
            raise FixturesError(f"{variable}={os.environ[variable]}: no such folder")
    root = data_root()
    missing = [name for name in ("robot", "fixtures") if not (root / name).is_dir()]
    if missing:
        raise FixturesError(f"{root}: no {' or '.join(missing)} folder (a harness installed without its data?)")
