"""A shard that runs past its time ends itself, saying where it was: every thread's stack, then exit 1.

``tests/run_shards.py`` gives each shard ``HIL_TEST_SHARD_SECONDS`` (default 1800). A hung test (a wait without a
bound, a deadlock) would otherwise hold the whole test command until CI's limit, with nothing in the log to say
which test it was. faulthandler's timer writes the stacks from its own thread, so it works while the main thread
is blocked, to the descriptor of the shard's log that run_shards hands over (pytest captures descriptor 2 while a
test runs); run_shards ends a shard that outlives even that.
"""

from __future__ import annotations

import faulthandler
import os
import sys

import pytest
from sharding import LOG_FD_ENV, SECONDS_ENV


def pytest_configure(config: pytest.Config) -> None:
    seconds = os.environ.get(SECONDS_ENV, "")
    if os.environ.get("HIL_TEST_SHARD") and seconds:
        try:
            timeout = float(seconds)
        except ValueError:
            raise pytest.UsageError(f"{SECONDS_ENV} must be a number of seconds, got {seconds!r}") from None
        log = os.environ.get(LOG_FD_ENV, "")  # the shard's log as run_shards opened it; descriptor 2 is captured
        faulthandler.dump_traceback_later(timeout, exit=True, file=int(log) if log.isdigit() else sys.__stderr__)


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
