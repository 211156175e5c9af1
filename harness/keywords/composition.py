"""The library's keyword table, worked out once per process rather than once per suite.

``JPKILibrary`` has suite scope, so Robot builds one per suite (24 in the card suites alone), and
robotlibcore introspects every one of its ~260 keywords each time (argument specs, evaluated type
hints, docs): 25 ms a library, about a third of the CPU of a short in-process part. What it finds
depends only on the classes, so it is kept per class here, and each new library only binds its own
component instances to the kept names and specifications.
"""

from __future__ import annotations

from functools import cache

from robotlibcore.keywords import KeywordBuilder
from robotlibcore.keywords.specification import KeywordSpecification

_cached: dict[tuple[type, str], KeywordSpecification] = {}


@cache
def keyword_methods(cls: type) -> tuple[tuple[str, str], ...]:
    """(attribute name, keyword name) of every ``@keyword`` method of ``cls``, as robotlibcore picks them."""
    found = []
    for name in dir(cls):
        member = getattr(cls, name, None)
        if callable(member) and hasattr(member, "robot_name"):
            found.append((name, getattr(member, "robot_name", None) or name))
    return tuple(found)


def specification(component: object, name: str) -> KeywordSpecification:
    """The keyword's arguments, types and documentation (the same for every instance of its class), as a copy:
    Robot takes ``return`` out of the types it is given, so no two libraries may share one dictionary."""
    cls = type(component)
    spec = _cached.get((cls, name))
    if spec is None:
        spec = _cached[(cls, name)] = KeywordBuilder.build(getattr(component, name))
    types = spec.argument_types
    return KeywordSpecification(list(spec.argument_specification), spec.documentation,
                                dict(types) if isinstance(types, dict) else types)
