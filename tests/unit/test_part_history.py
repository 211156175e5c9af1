"""The seconds each plan part took last time, and the longest-first order the scheduler starts parts in."""

from __future__ import annotations

from harness import part_history


def test_a_folder_without_history_keeps_the_plan_order(tmp_path):
    assert part_history.load(tmp_path) == {}
    assert part_history.longest_first(["a", "b", "c"], {}) == [0, 1, 2]


def test_the_longest_part_of_the_last_run_starts_first_and_ties_keep_the_plan_order():
    history = {"card": 2.0, "serial timeouts": 12.5, "phone": 2.0, "ceremony": 5.0}
    assert part_history.longest_first(["card", "phone", "serial timeouts", "ceremony"], history) == [2, 3, 0, 1]


def test_a_part_never_seen_counts_as_long_as_the_longest():
    order = part_history.longest_first(["card", "new part", "slow"], {"card": 1.0, "slow": 9.0})
    assert order == [1, 2, 0]


def test_a_run_adds_its_parts_and_keeps_the_others(tmp_path):
    part_history.save(tmp_path, {"card": 1.234, "phone": 0.5})
    part_history.save(tmp_path, {"card": 2.0})
    assert part_history.load(tmp_path) == {"card": 2.0, "phone": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == [part_history.HISTORY]  # no temporary file left


def test_an_unreadable_history_is_no_history(tmp_path):
    for text in ("{not json", "[1, 2]", '{"card": "slow", "phone": -1}'):
        (tmp_path / part_history.HISTORY).write_text(text, encoding="utf-8")
        assert part_history.load(tmp_path) == {}
