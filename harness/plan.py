"""Run plans: a TOML file of ``[[run]]`` parts, each some suites on one device, read strictly.

Unknown keys, wrong types and empty values are errors naming the file and the line, so a typo
(``devcie =``) never silently runs the suites on the default device.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness import fixtures

PLAN_KEYS = {"name", "run"}
RUN_KEYS = {"name", "suites", "device", "include", "exclude"}


class PlanError(ValueError):
    """A malformed run plan; one line naming the file and line."""


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


def _run_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*run\s*\]\]", line)]


def _key_line(text: str, key: str, start: int) -> int:
    lines = text.splitlines()
    for number in range(start, len(lines) + 1):
        line = lines[number - 1]
        if number > start and line.strip().startswith("["):
            break
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return start


def _strings(value, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PlanError(f"{where}: '{key}' must be a list of strings, e.g. {key} = [\"JPKI-SIG-001\"]")
    return list(value)


def load_plan(path: Path) -> Plan:
    """Reads and checks a plan; every suite must exist under ``robot/``."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: cannot read the plan: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{path}: {exc}") from None
    for key in data:
        if key not in PLAN_KEYS:
            raise PlanError(f"{path}:{_key_line(text, key, 1)}: unknown key '{key}' (known: name, [[run]])")
    runs = data.get("run")
    if not isinstance(runs, list) or not runs:
        raise PlanError(f"{path}: no [[run]] tables")
    headers = _run_lines(text)
    planned = []
    for index, run in enumerate(runs, 1):
        start = headers[index - 1] if index <= len(headers) else 1
        where = f"{path}:{start}: run {index}"
        for key in run:
            if key not in RUN_KEYS:
                raise PlanError(f"{path}:{_key_line(text, key, start)}: run {index}: unknown key '{key}' "
                                f"(known: {', '.join(sorted(RUN_KEYS))})")
        if "suites" not in run:
            raise PlanError(f"{where}: 'suites' is missing")
        names = _strings(run["suites"], where, "suites")
        if not names:
            raise PlanError(f"{where}: 'suites' must name at least one suite folder or .robot file")
        suites = []
        for suite in names:
            candidate = fixtures.suites_dir() / suite
            if not candidate.exists():
                raise PlanError(f"{where}: no suite '{suite}' under {fixtures.suites_dir()}")
            suites.append(candidate)
        device = run.get("device")
        if device is not None and (not isinstance(device, str) or not device):
            raise PlanError(f"{where}: 'device' must be a device URI or inventory name")
        name = run.get("name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise PlanError(f"{where}: 'name' must be a non-empty string")
        include = _strings(run.get("include", []), where, "include")
        exclude = _strings(run.get("exclude", []), where, "exclude")
        name = name or f"{', '.join(names)} on {device or 'default devices'}"
        planned.append(PlannedRun(name, suites, device, include, exclude))
    plan_name = data.get("name", path.stem)
    if not isinstance(plan_name, str) or not plan_name.strip():
        raise PlanError(f"{path}: 'name' must be a non-empty string")
    return Plan(plan_name, planned)
