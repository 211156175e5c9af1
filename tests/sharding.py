"""Which shard of the test command runs which test: one deterministic plan every shard computes alike.

The test command (``scripts/run-tests.sh``) starts N pytest processes, each told ``HIL_TEST_SHARD=i/N``. Each
collects every test and keeps its own share. Most of the tests wait (pcscd's presence poll, a served card's
process, a Robot run in a subprocess) rather than compute, so shards run side by side even on two cores.

Units of work are whole modules (their module-scoped fixtures, such as the main job a report test reads, must
run once), except the modules in :data:`SPLIT_MODULES`, whose parametrised cells are independent and share
out one by one. Units are weighed with the durations recorded in ``tests/durations.json`` (refresh with
``--record-durations``; a test not in it weighs :data:`UNKNOWN_SECONDS`) and dealt largest first to the least
loaded shard. Tests marked ``index`` (they need the package index) go to shard 0, the only shard outside a
network namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DURATIONS_FILE = Path(__file__).with_name("durations.json")
SPLIT_MODULES = ("tests/acceptance/test_guard_matrix.py",)
UNKNOWN_SECONDS = 0.5


@dataclass(frozen=True)
class CollectedTest:
    """What the plan needs of a collected test: its node id and whether it needs the package index."""

    nodeid: str
    needs_index: bool = False

    @property
    def module(self) -> str:
        return self.nodeid.split("::", 1)[0]


@dataclass
class Shard:
    index: int
    nodeids: list[str] = field(default_factory=list)
    seconds: float = 0.0


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` → (i, N), with 0 ≤ i < N; a ValueError with the expected form otherwise."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"HIL_TEST_SHARD must be i/N (e.g. 0/3), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"HIL_TEST_SHARD must be i/N with 0 <= i < N, got {text!r}")
    return index, count


def load_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    """Recorded seconds per node id; an absent or unreadable file weighs every test alike."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, int | float)}


def plan(tests: Iterable[CollectedTest], count: int, durations: dict[str, float]) -> list[Shard]:
    """Deal the tests to ``count`` shards; every test lands in exactly one, in the same way on every call."""
    units: dict[str, list[CollectedTest]] = {}
    for test in tests:
        key = test.nodeid if test.module in SPLIT_MODULES else test.module
        units.setdefault(key, []).append(test)
    shards = [Shard(i) for i in range(count)]

    def weight(members: list[CollectedTest]) -> float:
        return sum(durations.get(t.nodeid, UNKNOWN_SECONDS) for t in members)

    def give(shard: Shard, members: list[CollectedTest]) -> None:
        shard.nodeids.extend(t.nodeid for t in members)
        shard.seconds += weight(members)

    pinned = {key: members for key, members in units.items() if any(t.needs_index for t in members)}
    for members in pinned.values():
        give(shards[0], members)
    rest = sorted((key for key in units if key not in pinned), key=lambda k: (-weight(units[k]), k))
    for key in rest:
        give(min(shards, key=lambda s: (s.seconds, s.index)), units[key])
    return shards
