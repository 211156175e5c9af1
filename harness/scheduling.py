"""Destructive requirements last: a real expendable card is tested fully before it is used up.

``DestructiveLast`` is a Robot pre-run modifier. Every test tagged ``destructive`` moves behind every
other test of the run (a run is one device): a suite that mixes both keeps its other tests in place
and gets a twin at the end of the run holding its destructive ones (same file, same set-up). Among
the destructive tests, those that change a PIN and give it back come first, those that block a PIN
for good (tagged ``blocks:auth``, ``blocks:sign``…) come last. ``BlockedPins`` is a listener that
writes which PINs the run blocked into the report's metadata.
"""

from __future__ import annotations

from robot.api import SuiteVisitor
from robot.running import TestSuite

DESTRUCTIVE_TAG = "destructive"
BLOCKS_PREFIX = "blocks:"
TWIN_SUFFIX = " (destructive, run last)"


def _is_destructive(test) -> bool:
    return DESTRUCTIVE_TAG in test.tags


def _blocks(test) -> list[str]:
    return [tag[len(BLOCKS_PREFIX):] for tag in test.tags if tag.startswith(BLOCKS_PREFIX)]


def _last_order(tests: list) -> list:
    """Non-destructive first, then PIN changes, then blocking; stable otherwise."""
    return sorted(tests, key=lambda t: (_is_destructive(t), bool(_blocks(t))))


class DestructiveLast(SuiteVisitor):
    """``--prerunmodifier harness.scheduling.DestructiveLast``."""

    def start_suite(self, suite: TestSuite) -> bool:
        if suite.parent is not None:
            return False
        tail: list[TestSuite] = []
        for child in list(suite.suites):
            self._split(child, tail)
        suite.tests = _last_order(list(suite.tests))
        tail.sort(key=lambda s: any(_blocks(t) for t in s.all_tests))
        suite.suites.extend(tail)
        return False

    def _split(self, suite: TestSuite, tail: list[TestSuite]) -> None:
        for child in list(suite.suites):
            self._split(child, tail)
        destructive = _last_order([t for t in suite.tests if _is_destructive(t)])
        if not destructive:
            return
        keep = [t for t in suite.tests if not _is_destructive(t)]
        twin = suite.deepcopy()
        twin.suites = []
        twin.tests = destructive
        twin.name = suite.name + TWIN_SUFFIX
        suite.tests = keep
        tail.append(twin)
        if not keep and not suite.suites and suite.parent is not None:
            suite.parent.suites.remove(suite)


class BlockedPins:
    """Listener (API 3): the report's root suite gets metadata ``PINs blocked``."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self) -> None:
        self.blocked: dict[str, list[str]] = {}

    def end_test(self, data, result) -> None:
        if result.status in ("PASS", "FAIL"):  # it ran, so it sent the wrong PINs
            for pin in _blocks(result):
                self.blocked.setdefault(pin, []).append(result.name)

    def end_suite(self, data, result) -> None:
        if result.parent is None:
            text = "; ".join(f"{pin} ({', '.join(tests)})" for pin, tests in self.blocked.items())
            result.metadata["PINs blocked"] = text or "none"


def blocked_pins(suite) -> list[str]:
    """The PINs a finished run blocked, read from its result tree."""
    pins: list[str] = []
    for test in suite.all_tests:
        if test.status in ("PASS", "FAIL"):
            pins += [p for p in _blocks(test) if p not in pins]
    return pins
