"""The figures of a run, from its output.xml and its trace files: what ``metrics.json`` holds.

Per device: tests passed, failed and not run; APDU latency by command; READ BINARY throughput; sign time.
For the run: the slowest test and its exchanges (the summary page draws them as a timeline). Tests are
put on the device whose trace file names them; a test that sent nothing counts under ``no device``.

The trace files are read a line at a time and only the latencies stay (8 bytes an exchange, in an
``array``), so the figures of a million-APDU soak need megabytes, not gigabytes; the slowest test's
timeline keeps its first :data:`TIMELINE_KEEP` exchanges and their count.
"""

from __future__ import annotations

import json
import statistics
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.tracefile import iter_trace

SIGN = "PSO: COMPUTE DIGITAL SIGNATURE"
NO_DEVICE = "no device"
TIMELINE_KEEP = 1000  # exchanges of the slowest test kept for its timeline (the plot shows fewer)


def _figures(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 3)

    return {"count": len(ordered), "min": round(ordered[0], 3), "q1": at(0.25),
            "median": round(statistics.median(ordered), 3), "q3": at(0.75), "p90": at(0.9),
            "max": round(ordered[-1], 3)}


def trace_files(run_dir: Path) -> list[Path]:
    """Every trace file of a run, plan parts included."""
    return sorted(run_dir.rglob("traces/*.jsonl"))


def test_outcomes(output: Path) -> dict[str, tuple[str, float]]:
    """Full test name → (PASS/FAIL/SKIP/NOT RUN, seconds), from output.xml."""
    from robot.api import ExecutionResult

    outcomes: dict[str, tuple[str, float]] = {}

    def visit(suite: Any) -> None:
        for test in suite.tests:
            outcomes[test.full_name] = (test.status, test.elapsed_time.total_seconds())
        for child in suite.suites:
            visit(child)

    visit(ExecutionResult(str(output), include_keywords=False).suite)  # statuses and times only: 10× faster
    return outcomes


@dataclass
class DeviceFigures:
    """What the figures of one device need, gathered one exchange at a time."""

    by_name: dict[str, array] = field(default_factory=lambda: defaultdict(lambda: array("d")))
    count: int = 0
    read_bytes: int = 0
    read_ms: float = 0.0
    signs: array = field(default_factory=lambda: array("d"))

    def add(self, record: dict[str, Any]) -> None:
        ms = float(record.get("ms") or 0.0)
        self.count += 1
        self.by_name[str(record.get("name", "?"))].append(ms)
        if record.get("name") == "READ BINARY" and record.get("sw") == "9000":
            self.read_bytes += int(record.get("length") or 0)
            self.read_ms += ms
        if record.get("name") == SIGN and record.get("sw") == "9000":
            self.signs.append(ms)

    def figures(self) -> dict[str, Any]:
        latency = {name: _figures(values) for name, values in sorted(self.by_name.items())}
        all_ms = [ms for values in self.by_name.values() for ms in values]
        return {"apdus": self.count, "latency_ms": latency,
                "median_ms": round(statistics.median(all_ms), 3) if all_ms else None,
                "read_binary_bytes_per_s": round(self.read_bytes / (self.read_ms / 1000)) if self.read_ms > 0 else None,
                "read_binary_bytes": self.read_bytes,
                "sign_ms": _figures(self.signs) if self.signs else None}  # signatures made (9000), not refusals


def collect(run_dir: Path) -> dict[str, Any]:
    """The figures of the run in ``run_dir`` (its output.xml and traces/)."""
    output = run_dir / "output.xml"
    outcomes = test_outcomes(output) if output.exists() else {}
    slowest = max(outcomes.items(), key=lambda item: item[1][1], default=None)
    figures: dict[str, DeviceFigures] = defaultdict(DeviceFigures)
    test_device: dict[str, str] = {}
    steps: list[dict[str, Any]] = []  # the slowest test's first exchanges
    steps_total = 0
    for path in trace_files(run_dir):
        device = path.stem
        for record in iter_trace(path):
            if record["type"] == "header":
                device = str(record.get("device") or path.stem)  # the name the suites opened it by
            if record["type"] != "exchange" or record.get("by", "harness") != "harness":
                continue
            figures[device].add(record)
            test = str(record.get("test") or "")
            if test:
                test_device.setdefault(test, device)
            if slowest is not None and test == slowest[0] and test_device[test] == device:
                steps_total += 1
                if len(steps) < TIMELINE_KEEP:
                    steps.append({"name": record["name"], "ms": record.get("ms", 0.0), "sent": record["sent"]})
    devices: dict[str, dict[str, Any]] = {}
    for device in sorted({*figures, *({NO_DEVICE} if set(outcomes) - set(test_device) else set())}):
        devices[device] = figures[device].figures() if device in figures else DeviceFigures().figures()
        devices[device]["tests"] = {"passed": 0, "failed": 0, "not run": 0}
    for test, (status, _) in outcomes.items():
        key = {"PASS": "passed", "FAIL": "failed"}.get(status, "not run")
        devices[test_device.get(test, NO_DEVICE)]["tests"][key] += 1
    return {"run": str(run_dir), "devices": devices, "slowest_test": _timeline(slowest, test_device, steps,
                                                                                 steps_total)}


def _timeline(slowest: tuple[str, tuple[str, float]] | None, test_device: dict[str, str],
              steps: list[dict[str, Any]], total: int) -> dict[str, Any]:
    if slowest is None:
        return {}
    name, (status, seconds) = slowest
    start = datetime.fromisoformat(steps[0]["sent"]) if steps else None

    def since_start(record: dict[str, Any]) -> float:
        return round((datetime.fromisoformat(record["sent"]) - start).total_seconds() * 1000, 3)

    timeline = {"test": name, "status": status, "seconds": round(seconds, 3),
                "device": test_device.get(name, NO_DEVICE),
                "exchanges": [{"name": r["name"], "ms": r["ms"], "at_ms": since_start(r)} for r in steps]
                if start else []}
    if total > len(steps):
        timeline["exchange_count"] = total
    return timeline


def device_figures(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    gathered = DeviceFigures()
    for record in records:
        gathered.add(record)
    return gathered.figures()


def write(metrics: dict[str, Any], run_dir: Path) -> Path:
    path = run_dir / "metrics.json"
    path.write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def load(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.json, or the figures computed now from its files."""
    path = run_dir / "metrics.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    if not (run_dir / "output.xml").exists() and not trace_files(run_dir):
        raise ValueError(f"{run_dir}: not a run folder (no metrics.json, output.xml or traces/)")
    return collect(run_dir)
