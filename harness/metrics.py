"""The figures of a run, from its output.xml and its trace files: what ``metrics.json`` holds.

Per device: tests passed, failed and not run; APDU latency by command; READ BINARY throughput; sign time.
For the run: the slowest test and its exchanges (the summary page draws them as a timeline). Tests are
put on the device whose trace file names them; a test that sent nothing counts under ``no device``.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.tracefile import read_trace

SIGN = "PSO: COMPUTE DIGITAL SIGNATURE"
NO_DEVICE = "no device"


def _figures(values: list[float]) -> dict[str, float]:
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

    visit(ExecutionResult(str(output)).suite)
    return outcomes


def collect(run_dir: Path) -> dict[str, Any]:
    """The figures of the run in ``run_dir`` (its output.xml and traces/)."""
    exchanges: dict[str, list[dict[str, Any]]] = defaultdict(list)
    test_device: dict[str, str] = {}
    for path in trace_files(run_dir):
        records = read_trace(path)
        header = next((r for r in records if r["type"] == "header"), {})
        device = str(header.get("device") or path.stem)  # the name the suites opened it by
        for record in records:
            if record["type"] != "exchange" or record.get("by", "harness") != "harness":
                continue
            exchanges[device].append(record)
            if record.get("test"):
                test_device.setdefault(str(record["test"]), device)
    output = run_dir / "output.xml"
    outcomes = test_outcomes(output) if output.exists() else {}
    devices: dict[str, dict[str, Any]] = {}
    for device in sorted({*exchanges, *({NO_DEVICE} if set(outcomes) - set(test_device) else set())}):
        devices[device] = device_figures(exchanges.get(device, []))
        devices[device]["tests"] = {"passed": 0, "failed": 0, "not run": 0}
    for test, (status, _) in outcomes.items():
        key = {"PASS": "passed", "FAIL": "failed"}.get(status, "not run")
        devices[test_device.get(test, NO_DEVICE)]["tests"][key] += 1
    slowest = max(outcomes.items(), key=lambda item: item[1][1], default=None)
    timeline: dict[str, Any] = {}
    if slowest is not None:
        name, (status, seconds) = slowest
        device = test_device.get(name, NO_DEVICE)
        steps = [r for r in exchanges.get(device, []) if r.get("test") == name]
        start = datetime.fromisoformat(steps[0]["sent"]) if steps else None

        def since_start(record: dict[str, Any]) -> float:
            return round((datetime.fromisoformat(record["sent"]) - start).total_seconds() * 1000, 3)

        timeline = {"test": name, "status": status, "seconds": round(seconds, 3), "device": device,
                    "exchanges": [{"name": r["name"], "ms": r.get("ms", 0.0), "at_ms": since_start(r)}
                                  for r in steps] if start else []}
    return {"run": str(run_dir), "devices": devices, "slowest_test": timeline}


def device_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    by_name: dict[str, list[float]] = defaultdict(list)
    read_bytes, read_ms, signs = 0, 0.0, []
    for record in records:
        ms = float(record.get("ms") or 0.0)
        by_name[str(record.get("name", "?"))].append(ms)
        if record.get("name") == "READ BINARY" and record.get("sw") == "9000":
            read_bytes += int(record.get("length") or 0)
            read_ms += ms
        if record.get("name") == SIGN and record.get("sw") == "9000":
            signs.append(ms)
    latency = {name: _figures(values) for name, values in sorted(by_name.items())}
    all_ms = [ms for values in by_name.values() for ms in values]
    return {"apdus": len(records), "latency_ms": latency,
            "median_ms": round(statistics.median(all_ms), 3) if all_ms else None,
            "read_binary_bytes_per_s": round(read_bytes / (read_ms / 1000)) if read_ms > 0 else None,
            "read_binary_bytes": read_bytes,
            "sign_ms": _figures(signs) if signs else None}  # signatures made (9000), not refusals


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
