"""The shards' work queue: each unit taken once among processes sharing one descriptor, a different list refused."""

import os
import tempfile

import pytest
from sharding import Unit
from work_queue import QueueMismatch, WorkQueue

UNITS = [Unit(f"tests/unit/test_m{n}.py", (f"tests/unit/test_m{n}.py::test_a",), 1.0, False) for n in range(5)]


def test_processes_sharing_the_descriptor_take_every_index_once():
    with tempfile.TemporaryFile() as shared:
        children = []
        for _ in range(3):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # a shard: takes 40 indexes, and never returns into pytest
                try:
                    os.close(read_end)
                    queue = WorkQueue(shared.fileno(), UNITS)
                    os.write(write_end, " ".join(str(queue.take()) for _ in range(40)).encode())
                finally:
                    os._exit(0)
            os.close(write_end)
            children.append((pid, read_end))
        taken = []
        for pid, read_end in children:
            with os.fdopen(read_end, "rb") as pipe:
                taken += [int(n) for n in pipe.read().split()]
            os.waitpid(pid, 0)  # this one only: the session's helpers (pcscd, the fork server) are children too
    assert sorted(taken) == list(range(120))


def test_a_shard_with_another_unit_list_is_refused():
    with tempfile.TemporaryFile() as shared:
        assert WorkQueue(shared.fileno(), UNITS).take() == 0
        assert WorkQueue(shared.fileno(), UNITS).take() == 1
        with pytest.raises(QueueMismatch, match="collected other tests"):
            WorkQueue(shared.fileno(), UNITS[:4]).take()
