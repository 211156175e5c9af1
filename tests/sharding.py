"""Which shard of the test command runs which test: units of work every shard computes alike.

The test command (``scripts/run-tests.sh``) starts N pytest processes, each told ``HIL_TEST_SHARD=i/N``. Each
collects every test. Most of the tests wait (pcscd's presence poll, a served card's process, a Robot run in a
subprocess) rather than compute, so shards run side by side even on two cores.

Units of work are whole modules (their module-scoped fixtures, such as the main job a report test reads, must
run once), except the modules in :data:`SPLIT_MODULES`, whose parametrised cells are independent and go one by
one. Units are weighed with the durations recorded in ``tests/durations.json`` (refresh with
``--record-durations``; a test not in it weighs :data:`UNKNOWN_SECONDS`) and taken largest first. Under the
test command the shards take them from one queue as each becomes free (``tests/work_queue.py``): recorded
seconds are only a guide, since a test's time depends on what runs beside it. With ``HIL_TEST_SHARD`` alone,
:func:`plan` deals them ahead to the least loaded shard. Tests marked ``index`` (they need the package index)
go to shard 0, the only shard outside a network namespace.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DURATIONS_FILE = Path(__file__).with_name("durations.json")
SPLIT_MODULES = ("tests/acceptance/test_guard_matrix.py",)
UNKNOWN_SECONDS = 0.5
QUEUE_FD_ENV = "HIL_TEST_QUEUE_FD"  # the work queue's descriptor, set by tests/run_shards.py
SECONDS_ENV = "HIL_TEST_SHARD_SECONDS"  # how long a shard may run (tests/shard_watchdog.py)
LOG_FD_ENV = "HIL_TEST_SHARD_LOG_FD"  # the shard's log, for the watchdog's stacks
DUMP_SIGNAL = signal.SIGUSR2  # on it a shard's pytest writes every thread's stack to that log


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


def queue_descriptor() -> int | None:
    """The work queue's descriptor under the test command (``HIL_TEST_SHARD`` and ``HIL_TEST_QUEUE_FD``)."""
    value = os.environ.get(QUEUE_FD_ENV, "")
    return int(value) if value.isdigit() and os.environ.get("HIL_TEST_SHARD") else None


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


@dataclass(frozen=True)
class Unit:
    """Tests that run together in one shard, in collection order: a module, or one cell of a split module."""

    key: str
    nodeids: tuple[str, ...]
    seconds: float
    needs_index: bool


def units(tests: Iterable[CollectedTest], durations: dict[str, float]) -> list[Unit]:
    """The units of work, largest first (ties by key): the same list in every shard, whatever the order."""
    members: dict[str, list[CollectedTest]] = {}
    for test in tests:
        members.setdefault(test.nodeid if test.module in SPLIT_MODULES else test.module, []).append(test)
    found = [Unit(key, tuple(t.nodeid for t in group), sum(durations.get(t.nodeid, UNKNOWN_SECONDS) for t in group),
                  any(t.needs_index for t in group)) for key, group in members.items()]
    return sorted(found, key=lambda unit: (-unit.seconds, unit.key))


def plan(tests: Iterable[CollectedTest], count: int, durations: dict[str, float]) -> list[Shard]:
    """Deal the tests to ``count`` shards ahead of the run (``HIL_TEST_SHARD`` alone, no queue): every test lands
    in exactly one, in the same way on every call."""
    shards = [Shard(i) for i in range(count)]

    def give(shard: Shard, unit: Unit) -> None:
        shard.nodeids.extend(unit.nodeids)
        shard.seconds += unit.seconds

    every = units(tests, durations)
    for unit in (u for u in every if u.needs_index):
        give(shards[0], unit)
    for unit in (u for u in every if not u.needs_index):
        give(min(shards, key=lambda s: (s.seconds, s.index)), unit)
    return shards
