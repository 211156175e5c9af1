"""Destructive requirements last: the pre-run modifier's order, on the real card and phone suites."""

from __future__ import annotations

from pathlib import Path

from robot.running import TestSuiteBuilder as SuiteBuilder

from harness.scheduling import TWIN_SUFFIX, DestructiveLast

ROBOT = Path(__file__).resolve().parents[2] / "robot"


def scheduled(*paths: Path):
    suite = SuiteBuilder().build(*[str(p) for p in paths])
    before = [t.name for t in suite.all_tests]
    suite.visit(DestructiveLast())
    return before, list(suite.all_tests), suite


def test_every_destructive_test_runs_after_every_other_test_of_the_run():
    before, after, _ = scheduled(ROBOT / "card", ROBOT / "phone")
    assert sorted(before) == sorted(t.name for t in after)  # nothing lost, nothing doubled
    flags = ["destructive" in t.tags for t in after]
    first = flags.index(True)
    assert first > 0 and all(flags[first:]) and flags.count(True) == 8  # JPKI-PIN-008…013, phone PIN-008/009


def test_pin_changes_come_before_the_pins_are_blocked():
    _, after, _ = scheduled(ROBOT / "card")
    assert [t.name for t in after[-6:]] == ["Auth PIN Can Be Changed", "Sign Password Can Be Changed",
                                         "PIN Change Without VERIFY Is Refused With 6982",
                                         "Malformed New PIN Is Refused With 6A80",
                                         "Auth PIN Blocks After Three Wrong Tries For Good",
                                         "Sign Password Blocks After Five Wrong Tries"]


def test_the_destructive_twin_keeps_the_suite_set_up_and_the_rest_stays_in_place():
    _, _, suite = scheduled(ROBOT / "card")
    names = [s.name for s in suite.suites]
    assert names[-1] == "Access And Pins" + TWIN_SUFFIX and "Access And Pins" in names[:-1]
    twin, original = suite.suites[-1], suite.suites[names.index("Access And Pins")]
    assert twin.setup.name == original.setup.name == "Open Card Under Test"
    assert twin.source == original.source
    assert not any("destructive" in t.tags for t in original.tests)


def test_a_single_file_run_orders_its_own_tests():
    _, after, suite = scheduled(ROBOT / "card" / "access_and_pins.robot")
    assert not suite.suites or all(s.name.endswith(TWIN_SUFFIX) for s in suite.suites[1:])
    assert ["destructive" in t.tags for t in after][-4:] == [True] * 4
