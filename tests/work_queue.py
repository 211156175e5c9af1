"""The shards of one test command take their units of work from one queue, each unit once, as they become free.

A plan dealt ahead (``sharding.plan``) balances recorded seconds, but a test's time depends on what runs beside
it: with five to seven shards on two cores the shards ended up to 40 s apart. Here every shard collects every
test and computes the same units (``sharding.units``, largest first); ``tests/run_shards.py`` opens one
anonymous file and hands its descriptor to every shard (``HIL_TEST_QUEUE_FD``: a descriptor reaches a shard
through its private mounts, a path under ``/tmp`` would not). The file holds the number of units taken so
far and a digest of the unit list, changed under a POSIX record lock (``lockf``: per process, so it excludes
the shards from each other although they share one open file). A shard whose collection differs from the
first shard's stops with one line instead of running a different share.

The shard runs its units with pytest's own protocol. The next unit is taken before the last test of the
current one starts, so that test's tear-down knows what follows: the session's fixtures (pcscd) stay up
between units, a module's fixtures end with its unit. Shard 0 first runs the units that need the package
index (only it has the machine's network). The tests a shard did not run are reported as deselected, so
each shard's summary line still adds up to the collection.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator

import pytest
import sharding

_DIGEST = 32  # sha256
_UNITS = pytest.StashKey[tuple[int, list[sharding.Unit]]]()


class QueueMismatch(RuntimeError):
    """This shard's units are not the ones the first shard queued (a different collection)."""


class WorkQueue:
    """A counter of units taken, shared by the processes holding one descriptor of one file."""

    def __init__(self, fd: int, units: list[sharding.Unit]) -> None:
        self.fd = fd
        self.digest = hashlib.sha256("\n".join(u.key for u in units).encode()).digest()

    def take(self) -> int:
        """The index of the next unit no shard has taken yet (it may be past the end)."""
        fcntl.lockf(self.fd, fcntl.LOCK_EX)
        try:
            data = os.pread(self.fd, 8 + _DIGEST, 0)
            taken = int.from_bytes(data[:8], "big") if len(data) == 8 + _DIGEST else 0
            if taken and data[8:] != self.digest:
                raise QueueMismatch("this shard collected other tests than the shard that filled the queue")
            os.pwrite(self.fd, (taken + 1).to_bytes(8, "big") + self.digest, 0)
            return taken
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if sharding.queue_descriptor() is None:
        return
    try:
        index, _count = sharding.parse_shard(os.environ["HIL_TEST_SHARD"])
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    refs = [sharding.CollectedTest(item.nodeid, item.get_closest_marker("index") is not None) for item in items]
    config.stash[_UNITS] = (index, sharding.units(refs, sharding.load_durations()))


def _my_units(index: int, units: list[sharding.Unit], queue: WorkQueue) -> Iterator[sharding.Unit]:
    if index == 0:
        yield from (unit for unit in units if unit.needs_index)
    shared = [unit for unit in units if not unit.needs_index]
    while (taken := queue.take()) < len(shared):
        yield shared[taken]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    if _UNITS not in session.config.stash:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} errors during collection")
    if session.config.option.collectonly:
        return True
    index, units = session.config.stash[_UNITS]
    by_id = {item.nodeid: item for item in session.items}
    ran: set[str] = set()
    mine = _my_units(index, units, WorkQueue(sharding.queue_descriptor(), units))  # type: ignore[arg-type]
    try:
        current = next(mine, None)
        while current is not None:
            following = None
            for position, nodeid in enumerate(current.nodeids):
                if position + 1 < len(current.nodeids):
                    nextitem = by_id[current.nodeids[position + 1]]
                else:  # taken now, so this test's tear-down keeps what the next unit shares with it
                    following = next(mine, None)
                    nextitem = by_id[following.nodeids[0]] if following else None
                ran.add(nodeid)
                session.config.hook.pytest_runtest_protocol(item=by_id[nodeid], nextitem=nextitem)
                if session.shouldfail:
                    raise session.Failed(session.shouldfail)
                if session.shouldstop:
                    raise session.Interrupted(session.shouldstop)
            current = following
    except QueueMismatch as error:
        pytest.exit(f"work queue: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
    finally:
        session.config.hook.pytest_deselected(items=[item for item in session.items if item.nodeid not in ran])
    return True
