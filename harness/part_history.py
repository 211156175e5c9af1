"""How long each plan part took in the last run into the same output folder, to start the longest first.

With parts in plan order, a long part near the end of a plan runs alone after the others are done. The
scheduler starts parts in order of the seconds they took last time (longest first; a part never seen, as
long as the longest); a folder without history keeps the plan's order. The file is the folder's, like its
lock, and outlives the clearing of a new run's outputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HISTORY = ".hil-part-seconds.json"


def load(outputdir: Path) -> dict[str, float]:
    """Part name → seconds of its last run into ``outputdir``; nothing when there is no readable history."""
    try:
        found = json.loads((outputdir / HISTORY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float) and v >= 0}


def save(outputdir: Path, seconds: dict[str, float]) -> None:
    """Adds this run's parts to the history (a part not run this time keeps its old figure)."""
    merged = {**load(outputdir), **{name: round(s, 2) for name, s in seconds.items()}}
    temporary = outputdir / f"{HISTORY}.{os.getpid()}"
    try:
        temporary.write_text(json.dumps(merged, ensure_ascii=False, indent=1), encoding="utf-8")
        temporary.replace(outputdir / HISTORY)
    except OSError:
        temporary.unlink(missing_ok=True)  # a full disk costs the next run its order, nothing else


def longest_first(names: list[str], history: dict[str, float]) -> list[int]:
    """Indices of ``names`` in the order to start them: by last seconds, longest first, unknown ones as long as
    the longest known; ties (and a folder without history) in plan order."""
    if not history:
        return list(range(len(names)))
    unknown = max(history.values())
    return sorted(range(len(names)), key=lambda i: -history.get(names[i], unknown))
