"""The library's keyword table kept per class is the table robotlibcore would build itself."""

from __future__ import annotations

from robotlibcore import DynamicCore

from harness.keywords import JPKILibrary


class _AsRobotlibcoreBuildsIt(JPKILibrary):
    add_library_components = DynamicCore.add_library_components


def _table(library: JPKILibrary) -> dict[str, tuple]:
    return {name: (spec.argument_specification, spec.documentation, spec.argument_types)
            for name, spec in library.keywords_spec.items()}


def test_the_kept_table_is_robotlibcores_own():
    ours, theirs = JPKILibrary(), _AsRobotlibcoreBuildsIt()
    assert len(ours.keywords) > 200
    assert sorted(ours.keywords) == sorted(theirs.keywords)
    assert _table(ours) == _table(theirs)
    assert sorted(ours.attributes) == sorted(theirs.attributes)


def test_each_library_calls_its_own_components():
    first, second = JPKILibrary(), JPKILibrary()
    name = "open_device"
    assert first.keywords[name].__self__ is not second.keywords[name].__self__
    assert first.keywords[name].__self__.ctx is first.ctx  # the keyword acts on its own library's device
    assert second.keywords[name].__self__.ctx is second.ctx


def test_robot_changing_one_librarys_types_leaves_the_next_ones_alone():
    first = JPKILibrary()
    name = next(n for n, spec in first.keywords_spec.items() if "return" in (spec.argument_types or {}))
    first.get_keyword_types(name).pop("return")  # what Robot does with the types it reads
    assert "return" in JPKILibrary().get_keyword_types(name)
