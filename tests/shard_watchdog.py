"""A shard that runs past its time says where it was: every thread's stack in its log, on ``SIGUSR2``.

``tests/run_shards.py`` gives each shard ``HIL_TEST_SHARD_SECONDS`` (default 1800). A hung test (a wait without a
bound, a deadlock) would otherwise hold the whole test command until CI's limit, with nothing in the log to say
which test it was. At the deadline run_shards sends the shard's pytest ``SIGUSR2``, then ends the shard.

faulthandler answers the signal in C, so the stacks come even while the main thread is blocked; they go to the
descriptor of the shard's log that run_shards hands over (pytest captures descriptor 2 while a test runs). A
timer thread in pytest would have been simpler, but a second thread changes what the tests see: the harness
forks its zygote only from a process with one thread (``harness.part_forks``).
"""

from __future__ import annotations

import faulthandler
import os

import pytest
from sharding import DUMP_SIGNAL, LOG_FD_ENV


def pytest_configure(config: pytest.Config) -> None:
    log = os.environ.get(LOG_FD_ENV, "")
    if os.environ.get("HIL_TEST_SHARD") and log.isdigit():
        faulthandler.register(DUMP_SIGNAL, file=int(log), all_threads=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.unregister(DUMP_SIGNAL)  # False, and nothing done, when this shard never registered it
