"""The test command's shard plan: every test in exactly one shard, alike in every shard, balanced by weight."""

import pytest
import sharding
from run_shards import summary_counts
from sharding import CollectedTest, parse_shard, plan

GUARD = "tests/acceptance/test_guard_matrix.py"


def refs() -> list[CollectedTest]:
    tests = [CollectedTest(f"tests/unit/test_m{m}.py::test_{t}") for m in range(7) for t in range(5)]
    tests += [CollectedTest(f"{GUARD}::test_cell[{c}]") for c in range(6)]
    tests += [CollectedTest("tests/acceptance/test_wheel_install.py::test_a", needs_index=True),
              CollectedTest("tests/acceptance/test_wheel_install.py::test_b", needs_index=True)]
    return tests


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_test_lands_in_exactly_one_shard(count):
    shards = plan(refs(), count, {})
    placed = [nodeid for shard in shards for nodeid in shard.nodeids]
    assert sorted(placed) == sorted(t.nodeid for t in refs())
    assert len(placed) == len(set(placed))


def test_the_plan_is_the_same_whatever_the_collection_order():
    durations = {t.nodeid: (i % 4) + 0.5 for i, t in enumerate(refs())}
    first = plan(refs(), 3, durations)
    second = plan(list(reversed(refs())), 3, durations)
    assert [sorted(s.nodeids) for s in first] == [sorted(s.nodeids) for s in second]


def test_modules_stay_whole_but_the_guard_matrix_is_dealt_cell_by_cell():
    durations = {f"{GUARD}::test_cell[{c}]": 30.0 for c in range(6)}
    shards = plan(refs(), 3, durations)
    for m in range(7):
        holders = {s.index for s in shards for n in s.nodeids if n.startswith(f"tests/unit/test_m{m}.py::")}
        assert len(holders) == 1, f"module {m} split over shards {holders}"
    cells = [sum(n.startswith(GUARD) for n in s.nodeids) for s in shards]
    assert cells == [2, 2, 2]


def test_tests_that_need_the_package_index_run_in_shard_0():
    shards = plan(refs(), 3, {})
    assert {"tests/acceptance/test_wheel_install.py::test_a",
            "tests/acceptance/test_wheel_install.py::test_b"} <= set(shards[0].nodeids)


def test_weights_balance_the_shards():
    durations = {t.nodeid: 1.0 for t in refs()}
    durations["tests/unit/test_m0.py::test_0"] = 20.0
    shards = plan(refs(), 2, durations)
    assert abs(shards[0].seconds - shards[1].seconds) <= 5.0


@pytest.mark.parametrize("text", ["3", "a/b", "3/3", "-1/2", "0/0"])
def test_a_bad_shard_spec_is_refused(text):
    with pytest.raises(ValueError, match="HIL_TEST_SHARD must be i/N"):
        parse_shard(text)


def test_a_missing_durations_file_weighs_every_test_alike(tmp_path):
    assert sharding.load_durations(tmp_path / "absent.json") == {}
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert sharding.load_durations(tmp_path / "bad.json") == {}


def test_the_summary_line_is_read_from_a_shard_log():
    log = ("....F\n=== short test summary info ===\nFAILED x\n"
           "==== 1 failed, 40 passed, 2 errors, 900 deselected in 12.3s ===\n")
    assert summary_counts(log) == {"failed": 1, "passed": 40, "error": 2, "deselected": 900}
    assert summary_counts("1100 passed in 999.92s (0:16:39)\n") == {"passed": 1100}
