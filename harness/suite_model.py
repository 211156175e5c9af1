"""The suites as Robot reads them, once per process.

A plan runs the same folders on many devices (the card suites on nine), and both the pre-flight (what the
tests need) and the journal's announcement (which tests will run) read them. Parsing the card folder takes
about 50 ms; a copy of the parsed tree, which callers filter and rename, takes a few.
"""

from __future__ import annotations

import functools

from robot.running import TestSuite


def parsed(sources: list[str]) -> TestSuite:
    """A fresh copy of the suites read from ``sources`` (files or folders), for the caller to change."""
    return _read(tuple(str(s) for s in sources)).deepcopy()


@functools.lru_cache(maxsize=32)
def _read(sources: tuple[str, ...]) -> TestSuite:
    from robot.api import TestSuiteBuilder

    return TestSuiteBuilder().build(*sources)
