"""Reading Robot's results in tests: every log message of a suite, which devices its suites opened, what failed;
and the suite files the pool tests run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

# four of the card suite's files: two pabot workers lease pool members for them at the same time and one after
# the other (a suite per worker process, so each file costs a Robot process; the whole suite is nine)
POOL_SUITES = ("card/selection.robot", "card/access_and_pins.robot", "card/signing.robot", "card/text_ap.robot")


def messages(item) -> Iterator:
    """Every MESSAGE under a result suite, test or keyword: bodies, set-ups, teardowns, child suites and tests."""
    for step in getattr(item, "body", ()):
        if getattr(step, "type", "") == "MESSAGE":
            yield step
        else:
            yield from messages(step)
    for part in (getattr(item, "setup", None), *getattr(item, "suites", ()), *getattr(item, "tests", ()),
                 getattr(item, "teardown", None)):
        if part:
            yield from messages(part)


def opened_devices(item) -> set[str]:
    """The device names of the ``Opened NAME: …`` lines that ``Open Device`` logs under ``item``."""
    return {m.message.split()[1].rstrip(":") for m in messages(item) if m.message.startswith("Opened ")}


def failed_tests(output_xml: Path) -> str:
    """Each failed test with its message: the tail of a run's console hides which one of a thousand failed."""
    from robot.api import ExecutionResult

    if not output_xml.exists():
        return "no output.xml"
    failed = [t for t in ExecutionResult(str(output_xml)).suite.all_tests if t.status == "FAIL"]
    return "\n".join(f"FAIL {t.longname}: {t.message[:500]}" for t in failed)
