"""Soaks: ``Repeat Exchange`` checks every answer and keeps bounded figures; the soak suite's artefacts stay
the same size whatever the count (the million-APDU figures are benchmarks/bench_soak.py's, not a test's)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult

from harness.cli import resolve_suites
from harness.keywords import JPKILibrary
from harness.keywords.soak import SoakKeywords
from harness.pin_guard import RawSecretRefused
from harness.soak import MAX_TIMES, Exchange, SoakStats, bucket_upper_ms, check_times, parse_step, verdict

REPO = Path(__file__).resolve().parents[2]
SELECT_JPKI = "00A4040C0AD392F000260100000001"


def test_figures_stay_bounded_and_percentiles_fall_within_a_bucket():
    stats = SoakStats(keep=3)
    for index in range(1, 10_001):  # 0.01 ms … 100 ms, evenly
        stats.add(Exchange(index, "00 B0 00 00 04", "90 00", "9000", index / 100,
                           "expected SW 9000, got 6A82" if index % 1000 == 0 else ""))
    assert stats.count == 10_000 and stats.failures == 10 and stats.by_sw == {"9000": 10_000}
    assert [e.index for e in stats.first] == [1, 2, 3] and [e.index for e in stats.last] == [9998, 9999, 10_000]
    assert [e.index for e in stats.first_failures] == [1000, 2000, 3000]
    width = bucket_upper_ms(1) / bucket_upper_ms(0)  # one bucket's relative width
    for share, exact in ((0.5, 50.0), (0.9, 90.0), (0.99, 99.0)):
        assert exact <= stats.percentile_ms(share) <= exact * width
    assert stats.summary()["min_ms"] == 0.01 and stats.summary()["max_ms"] == 100.0
    table = stats.as_html()
    assert table.count("<tr><td>") == 3 + 3 + 3 and "… 9,994 exchanges between" in table and "… 7 more" in table


@pytest.mark.parametrize(("text", "command", "sw", "response"), [
    ("00B0000004", "00b0000004", 0x9000, None),
    ("00 B0 00 00 04 -> 6982", "00b0000004", 0x6982, None),
    ("00B0000004 -> 3082061F 9000", "00b0000004", 0x9000, "3082061f9000"),
])
def test_a_step_names_its_command_and_expected_answer(text, command, sw, response):
    step = parse_step(text)
    assert (step.command.hex(), step.expected_sw) == (command, sw)
    assert (step.expected_response.hex() if step.expected_response else None) == response


@pytest.mark.parametrize(("text", "message"), [
    ("00B0", "at least the 4-byte header"), ("00B0000004 -> 90", "needs a status word"),
    ("00B00000ZZ", "not hex"),
])
def test_a_bad_step_is_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse_step(text)


def test_times_must_be_a_bounded_whole_number():
    assert check_times("1000000") == 1_000_000
    for bad in ("0", "lots", str(MAX_TIMES + 1)):
        with pytest.raises(ValueError, match="times must be"):
            check_times(bad)


def test_every_answer_is_checked_against_its_step():
    step = parse_step("00B0000004 -> 3082061F9000")
    assert verdict(step, bytes.fromhex("3082061F9000"), None) == ""
    assert "6A82" in verdict(step, bytes.fromhex("6A82"), None)
    assert "data bytes" in verdict(step, bytes.fromhex("3082061E9000"), None)
    loose = parse_step("00840000 08")
    assert "differs from the first" in verdict(loose, bytes.fromhex("01020304050607089000"),
                                               bytes.fromhex("08070605040302019000"))


@pytest.fixture
def soak():
    library = JPKILibrary()
    library.devices.open_device("virtual:card")
    library.ctx.require_channel().transmit(bytes.fromhex(SELECT_JPKI))
    yield SoakKeywords(library.ctx), library.ctx
    library.devices.close_device()


def test_the_keyword_fails_at_the_first_wrong_answer_unless_some_are_allowed(soak):
    keywords, ctx = soak
    figures = keywords.repeat_exchange("00A4020C02000A", "00B0000004", times=300, same_answer=True)
    assert figures["count"] == 600 and figures["failures"] == 0 and figures["by_sw"] == {"9000": 600}
    assert len(ctx.trace.entries) <= ctx.trace.head_rows + 2 * ctx.trace.tail_rows
    with pytest.raises(AssertionError, match=r"1 of 2 exchanges .* #2: expected SW 9000, got 6982"):
        keywords.repeat_exchange("00A4020C020001", "00B0000004", times=50)
    figures = keywords.repeat_exchange("00A4020C020001", "00B0000004 -> 9000", times=5, allowed_failures=5)
    assert figures["failures"] == 5 and figures["by_sw"] == {"9000": 5, "6982": 5}


def test_the_keyword_refuses_pin_data_and_bad_counts(soak):
    keywords, _ = soak
    with pytest.raises(RawSecretRefused):
        keywords.repeat_exchange("00200080083131313131313131", times=1)
    with pytest.raises(ValueError, match="times must be between"):
        keywords.repeat_exchange("00B0000004", times=0)
    with pytest.raises(ValueError, match="at least one command"):
        keywords.repeat_exchange(times=3)


def test_the_soak_suite_runs_only_when_named():
    assert all(path.name != "soak" for path in resolve_suites([]))
    assert [path.name for path in resolve_suites(["soak"])] == ["soak"]


def run_soak(out: Path, apdus: int) -> subprocess.CompletedProcess:
    return subprocess.run([*hil_command(), "run", "soak", "--outputdir", str(out),
                           "--", "--variable", f"SOAK_APDUS:{apdus}"],
                          capture_output=True, text=True, timeout=300, check=False)


def test_the_soak_suite_writes_the_same_bounded_log_for_ten_times_the_apdus(tmp_path):
    sizes = {}
    for apdus in (400, 4000):
        out = tmp_path / str(apdus)
        proc = run_soak(out, apdus)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        result = ExecutionResult(str(out / "output.xml"))
        assert [t.status for t in result.suite.all_tests] == ["PASS", "PASS"]
        xml = (out / "output.xml").read_text(encoding="utf-8")
        assert f"Repeat Exchange: {apdus:,} exchanges, 0 unexpected" in xml
        assert xml.count("rows elided") == 2  # each test's table: its first and last rows and a count
        lines = (out / "traces" / "virtual-card.jsonl").read_text(encoding="utf-8").splitlines()
        exchanges = [json.loads(line) for line in lines if '"type": "exchange"' in line]
        assert len(exchanges) >= apdus + apdus // 4 * 4  # the trace file has every exchange
        sizes[apdus] = (out / "output.xml").stat().st_size
    assert abs(sizes[4000] - sizes[400]) < 2000, sizes  # not one byte more per APDU


def test_ctrl_c_stops_a_soak_and_the_log_keeps_what_it_saw(tmp_path):
    """A lab stops a night's soak: the keyword's figures so far are in the log, the run ends as interrupted."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "soak", "--outputdir", str(out),
                             "--include", "SOAK-READ-001", "--", "--variable", "SOAK_APDUS:50000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trace = out / "traces" / "virtual-card.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not trace.exists() or trace.stat().st_size < 300_000):
        time.sleep(0.1)  # bounded poll: the trace file's growth is the only sign the loop is running
    assert trace.exists() and trace.stat().st_size >= 300_000
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    xml = (out / "output.xml").read_text(encoding="utf-8")
    assert "Repeat Exchange: " in xml and " exchanges, 0 unexpected" in xml
    [test] = ExecutionResult(str(out / "output.xml")).suite.all_tests
    assert test.status == "SKIP" and "not-run" in test.tags, (test.status, test.message)  # interrupted: not run
