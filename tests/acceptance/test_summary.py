"""summary.html, metrics.json and hil trend: the figures of real runs, the page opened in headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hil_forkserver import hil_command

from harness import summary

pytestmark = pytest.mark.slow
SUBSET = ["--include", "JPKI-SIG-*", "--include", "JPKI-CRT-*", "--include", "JPKI-TOK-*"]


def hil(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # reader locks of this test's runs only (the machine's lock folder is shared with every other run)
    env = dict(os.environ, HIL_LOCK_DIR=str(cwd / ".locks"))
    return subprocess.run([*hil_command(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    work = tmp_path_factory.mktemp("runs")
    dirs = []
    for name in ("first", "second"):
        proc = hil("run", "card", *SUBSET, "--outputdir", name, cwd=work)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        assert f"Summary: {work / name / 'summary.html'}" in proc.stderr
        assert proc.stdout.strip().splitlines()[-1].startswith("Report: ")
        dirs.append(work / name)
    return dirs


def passed_count(run: Path) -> int:
    from robot.api import ExecutionResult

    return ExecutionResult(str(run / "output.xml")).statistics.total.passed


def test_metrics_hold_the_figures_per_device(runs):
    figures = json.loads((runs[0] / "metrics.json").read_text("utf-8"))
    card = figures["devices"]["virtual:card"]
    assert card["tests"] == {"passed": passed_count(runs[0]), "failed": 0, "not run": 0}
    assert card["apdus"] > 50 and card["latency_ms"]["READ BINARY"]["count"] > 5
    assert card["read_binary_bytes"] > 4000 and card["read_binary_bytes_per_s"] > 0
    assert card["sign_ms"]["count"] >= 2 and card["sign_ms"]["max"] >= card["sign_ms"]["median"] > 0
    slowest = figures["slowest_test"]
    assert slowest["device"] == "virtual:card" and slowest["exchanges"]
    assert [e["at_ms"] for e in slowest["exchanges"]] == sorted(e["at_ms"] for e in slowest["exchanges"])


def test_the_summary_opens_offline_in_headless_chromium_with_its_plots(runs, tmp_path):
    page = runs[0] / "summary.html"
    text = page.read_text("utf-8")
    assert not re.search(r"""(src|href)=["'](?!#)""", text)  # nothing to fetch: offline
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: run scripts/setup.sh (Debian package chromium)"
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert dom.count("<svg") >= 3  # outcomes, latency of the device, timeline of the slowest test
    for title in ("Tests passed, failed and not run per device", "APDU latency by command on virtual:card",
                  "Timeline of the slowest test"):
        assert title in dom
    assert "READ BINARY" in dom and "PSO: COMPUTE DIGITAL SIGNATURE" in dom


def test_without_matplotlib_the_summary_still_draws_and_the_trend_says_how_to_install_it(runs):
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from pathlib import Path; from harness import metrics, summary\n"
            f"print(summary.render(metrics.collect(Path({str(runs[0])!r}))))\n"
            "print('=====')\n"
            f"print(summary.render_trend(summary.trend_series([Path({str(runs[0])!r})])))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page, trend = proc.stdout.split("=====")
    assert page.count("<svg") == 3 and summary.INSTALL_HINT not in page  # the run's charts are drawn here
    assert summary.INSTALL_HINT in trend and "<svg" not in trend
    assert "virtual:card" in trend  # the table stays


def test_trend_plots_pass_rate_and_latency_across_runs(runs, tmp_path):
    proc = hil("trend", *map(str, runs), "--out", str(tmp_path / "trend.html"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^virtual:card: first: 100\.0% / [\d.]+ ms, second: 100\.0% / [\d.]+ ms$", proc.stdout, re.M)
    page = (tmp_path / "trend.html").read_text("utf-8")
    assert page.count("<svg") == 2 and "pass rate % per device across runs" in page


def test_trend_of_a_folder_that_is_no_run_is_one_line_and_exit_2(tmp_path):
    proc = hil("trend", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith("not a run folder (no metrics.json, output.xml or traces/)")
    assert len(proc.stderr.strip().splitlines()) == 1
