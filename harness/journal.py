"""The results journal: one fsync'd JSON line per suite started and per test started or finished.

Robot writes output.xml only at the end of a run, so a killed run leaves nothing readable. The
listener appends to the journal (``HIL_JOURNAL``) as the run goes; ``hil recover DIR`` rebuilds
output.xml, log, report, xunit and the matrix from it: every finished test as it ended, the test
that was running and those never reached as not run. pabot's workers append to the same file (one
``write`` per record on an ``O_APPEND`` descriptor).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from robot.result import Result, TestSuite

from harness.notrun import NOT_RUN_TAG
from harness.suite_model import parsed

JOURNAL_ENV = "HIL_JOURNAL"
JOURNAL_NAME = "journal.jsonl"


def _suite_path(suite) -> list[str]:
    names = []
    while suite is not None:
        names.append(suite.name)
        suite = suite.parent
    return names[::-1]


def _suite_record(data, result) -> dict[str, Any]:
    return {"event": "suite", "suite": _suite_path(result), "source": str(data.source or ""), "doc": result.doc,
            "metadata": dict(result.metadata), "tests": [{"name": t.name, "tags": list(t.tags)} for t in data.tests]}


class JournalListener:
    """Robot listener (API 3): ``--listener harness.journal.JournalListener`` with ``HIL_JOURNAL`` set."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, path: str | None = None) -> None:
        target = path or os.environ.get(JOURNAL_ENV)
        self.fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644) if target else None

    def _write(self, record: dict[str, Any]) -> None:
        if self.fd is None:
            return
        os.write(self.fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self.fd)

    def start_suite(self, data, result) -> None:
        self._write(_suite_record(data, result))

    def start_test(self, data, result) -> None:
        self._write({"event": "start", "suite": _suite_path(result.parent), "test": result.name,
                     "tags": list(result.tags), "start": result.start_time.isoformat() if result.start_time else None})

    def end_test(self, data, result) -> None:
        self._write({
            "event": "end", "suite": _suite_path(result.parent), "test": result.name, "tags": list(result.tags),
            "doc": result.doc, "status": result.status, "message": result.message,
            "start": result.start_time.isoformat() if result.start_time else None,
            "elapsed": result.elapsed_time.total_seconds(),
        })

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class _Suite:
    source: str = ""
    doc: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    announced: dict[str, list[str]] = field(default_factory=dict)  # test name → tags


def announce(target: Path, sources: list[str], name: str, include: list[str], exclude: list[str],
             metadata: dict[str, str] | None = None) -> None:
    """Writes every suite the run will start, with its tests, before a parallel run begins.

    pabot starts a worker per suite; a run killed before a worker began would leave that suite out of the
    journal, and ``hil recover`` would report fewer tests than the run had. Announced here, they come back
    as not run. The workers' own suite records follow and agree (same ``--name``, same tag filters, and
    ``metadata`` as the run's ``--metadata`` gives its top suite).
    """
    from robot.errors import DataError

    from harness.scheduling import DestructiveLast

    try:
        suite = parsed(sources)
        suite.name = name
        suite.metadata.update(metadata or {})
        suite.configure(include_tags=include or None, exclude_tags=exclude or None)
        suite.visit(DestructiveLast())  # the run's own order and twin suites, so its records agree
    except DataError:
        return  # Robot itself reports what is wrong with the suites, in its own words
    lines = []
    pending = [suite]
    while pending:
        current = pending.pop(0)
        if current.tests:
            lines.append(json.dumps(_suite_record(current, current), ensure_ascii=False) + "\n")
        pending[0:0] = list(current.suites)
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:  # one write and one fsync for the whole announcement (a plan announces all its parts at once)
        os.write(fd, "".join(lines).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The journal's whole records; a last line cut short by a kill is dropped."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def _node(root: TestSuite | None, path: list[str], suites: dict[tuple[str, ...], _Suite]) -> TestSuite:
    assert root is not None
    node = root
    for depth in range(1, len(path)):
        found = next((s for s in node.suites if s.name == path[depth]), None)
        if found is None:
            info = suites.get(tuple(path[: depth + 1]), _Suite())
            found = node.suites.create(name=path[depth], source=info.source or None, doc=info.doc,
                                       metadata=info.metadata)
        node = found
    return node


def rebuild(records: list[dict[str, Any]], reason: str = "the run was stopped") -> TestSuite:
    """The result tree the journal describes."""
    suites: dict[tuple[str, ...], _Suite] = {}
    ended: dict[tuple[tuple[str, ...], str], dict] = {}
    started: dict[tuple[tuple[str, ...], str], dict] = {}
    order: list[tuple[tuple[str, ...], str]] = []
    for record in records:
        path = tuple(record.get("suite") or ())
        if not path:
            continue
        if record.get("event") == "suite":
            info = suites.setdefault(path, _Suite())
            info.source, info.doc, info.metadata = record.get("source", ""), record.get("doc", ""), \
                record.get("metadata", {})
            for test in record.get("tests", []):
                info.announced.setdefault(test["name"], test.get("tags", []))
                order.append((path, test["name"]))
        elif record.get("event") == "start":
            started[(path, record["test"])] = record
        elif record.get("event") == "end":
            ended[(path, record["test"])] = record
    if not suites:
        raise ValueError("the journal names no suite")
    root_path = min(suites, key=len)
    root_info = suites[root_path]
    root = TestSuite(name=root_path[0], source=root_info.source or None, doc=root_info.doc,
                     metadata=root_info.metadata)
    for key in list(dict.fromkeys(order + list(ended))):
        path, name = key
        parent = _node(root, list(path), suites)
        done = ended.get(key)
        if done is not None:
            start = datetime.fromisoformat(done["start"]) if done.get("start") else None
            parent.tests.create(name=name, doc=done.get("doc", ""), tags=done.get("tags", []),
                                status=done["status"], message=done.get("message", ""), start_time=start,
                                elapsed_time=timedelta(seconds=float(done.get("elapsed", 0))))
            continue
        tags = list(suites.get(path, _Suite()).announced.get(name, []))
        if key in started:
            tags, why = started[key].get("tags", tags), f"not run: {reason} while this test ran"
        else:
            why = f"not run: {reason} before this test"
        parent.tests.create(name=name, tags=[*tags, NOT_RUN_TAG], status="SKIP", message=why)
    return root


def write_output(records: list[dict[str, Any]], output: Path, reason: str = "the run was stopped") -> Path:
    """Writes Robot's output.xml for the journal's records."""
    result = Result(source=None, suite=rebuild(records, reason))
    result.save(str(output))
    return output
