"""Record the card suite through pcscd + vpcd, replay it with replay:, compare it with the virtual card.

Everything is real: ``hil record`` and ``hil run`` as subprocesses, pcscd and vpcd behind
``virtual:card?via=pcsc`` (run inside the isolation wrapper), nfcpy's UDP link. Every byte of the traces
and recordings is scanned for PINs and holder data by :mod:`leak_scan`.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from leak_scan import profile_secrets, scan

from devices.virtual.profile import PROFILES_DIR, load_holder
from harness import fixtures

pytestmark = [pytest.mark.pcsc, pytest.mark.slow]
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed, (\d+) skipped(?:, 0 not run)?$", re.M)
SECRETS = profile_secrets()
PIN_SECRETS = [s for s in SECRETS if "PIN" in s.label or "照合番号B" in s.label]
COMMITTED = fixtures.recordings_dir() / "card-pcsc.jsonl"
TOKEN_LABEL = "4A 50 4B 49 41 50 49 43 43 54 4F 4B 45 4E 32"  # JPKIAPICCTOKEN2


def hil(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # reader locks of this test's runs only (the machine's lock folder is shared with every other run)
    env = dict(os.environ, HIL_LOCK_DIR=str(cwd / ".locks"))
    return subprocess.run([*hil_command(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


def counts(proc: subprocess.CompletedProcess) -> tuple[int, int, int]:
    match = SUMMARY.search(proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr[-2000:]
    return int(match[1]), int(match[2]), int(match[3])


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, tuple[int, int, int]]:
    """The whole card suite on the virtual card behind pcscd and vpcd, kept as a recording."""
    work = tmp_path_factory.mktemp("record")
    proc = hil("record", "card", "--device", "virtual:card?via=pcsc", "--show-holder-data",
               "--out", "card-pcsc.jsonl", "--outputdir", "run", cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "Recording:" in proc.stdout
    return work / "card-pcsc.jsonl", counts(proc)


def test_the_recording_holds_the_atr_every_exchange_and_no_pin(recorded):
    path, (passed, _, _) = recorded
    lines = records(path)
    assert lines[0]["type"] == "header" and lines[0]["device"] == "virtual:card?via=pcsc"
    assert any(r["type"] == "power_on" and r["atr"] for r in lines)
    exchanges = [r for r in lines if r["type"] == "exchange"]
    assert len({r["requirement"] for r in lines if r.get("requirement")}) == passed  # each test powers the card
    verifies = [r for r in exchanges if r["name"] == "VERIFY"]
    assert verifies and all("****(" in r["command"] for r in verifies)
    assert not scan(path, [s for s in SECRETS if "PIN" in s.label or "照合番号B" in s.label])[0]


def test_the_card_suite_replays_from_the_recording_and_passes(recorded, tmp_path):
    path, (passed, failed, skipped) = recorded
    assert passed > 50 and failed == 0 and skipped == 0
    proc = hil("run", "card", "--device", f"replay:{path}", "--show-holder-data", "--outputdir", "replayed",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert counts(proc) == (passed, 0, 0)


def test_the_in_process_virtual_card_answers_like_the_recording(recorded, tmp_path):
    path, _ = recorded
    commands = sum(1 for r in records(path) if r["type"] == "exchange" and r["by"] == "harness")
    proc = hil("compare", str(path), "--device", "virtual:card", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert f"virtual:card answers like recording card-pcsc.jsonl on all {commands} commands" in proc.stdout


def test_a_profile_changed_on_purpose_is_reported_and_fails(recorded, tmp_path):
    path, _ = recorded
    profile = (PROFILES_DIR / "card.toml").read_text("utf-8")
    changed = profile.replace('"JPKIAPICCTOKEN2"', '"JPKIAPICCTOKEN9"').replace(
        'max_tries = 5', 'max_tries = 4')
    assert changed.count("JPKIAPICCTOKEN9") == 1 and "max_tries = 4" in changed
    (tmp_path / "changed.toml").write_text(changed, "utf-8")
    proc = hil("compare", str(path), "--device", f"virtual:{tmp_path / 'changed.toml'}", "--json", "diff.json",
               cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr
    assert re.search(r"differs from recording card-pcsc\.jsonl on \d+ of \d+ commands: .*status word", proc.stdout)
    report = json.loads((tmp_path / "diff.json").read_text("utf-8"))
    aspects = {(d["name"], d["aspect"]) for d in report["differences"]}
    assert ("READ BINARY", "data") in aspects  # the token label
    assert ("VERIFY (retry query)", "status word") in aspects  # 63C5 became 63C4
    assert all(d["test"] for d in report["differences"])


@pytest.mark.parametrize("backend", ["virtual:card?via=nfc", "virtual:card?via=kiosk"])
def test_a_recording_through_another_backend_compares_equal_with_the_in_process_card(backend, tmp_path):
    """A bridge that changed an answer (nfcpy's link, the serial reader module) would show here."""
    proc = hil("record", "card", "--include", "JPKI-*", "--include", "TXT-*", "--device", backend,
               "--show-holder-data", "--out", "other.jsonl", "--outputdir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    compared = hil("compare", "other.jsonl", "--device", "virtual:card", cwd=tmp_path)
    assert compared.returncode == 0, compared.stdout[-3000:]
    assert re.search(r"answers like recording other\.jsonl on all \d{3} commands", compared.stdout)


def test_a_t0_card_behind_pcscd_traces_the_readers_own_exchanges(tmp_path):
    proc = hil("run", "card", "--include", "JPKI-TOK-*", "--include", "JPKI-CRT-*",
               "--device", "virtual:card?via=pcsc&t0=1", "--outputdir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    trace = tmp_path / "run" / "traces" / "virtual-card-via-pcsc-t0-1.jsonl"
    own = [r for r in records(trace) if r["type"] == "exchange" and r["by"] == "reader"]
    assert {r["name"] for r in own} >= {"GET RESPONSE", "READ BINARY"}  # 61xx chaining and the 6Cxx re-send
    assert not scan(tmp_path / "run", SECRETS)[0]


def test_no_pin_and_no_holder_datum_in_an_anonymised_recording_or_a_run_trace(tmp_path):
    proc = hil("record", "card", "--include", "TXT-*", "--include", "JPKI-PIN-*", "--include", "JPKI-CRT-*",
               "--include", "JPKI-SIG-*", "--device", "virtual:card?via=pcsc", "--anonymise",
               "--out", "recordings/anonymous.jsonl", "--outputdir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    recording = tmp_path / "recordings" / "anonymous.jsonl"
    lines = records(recording)
    assert lines[0]["holder_data"] == "anonymised"
    rewritten = [r for r in lines if r.get("anonymised")]
    assert {r["applet"] for r in rewritten} >= {"text", "jpki"}  # My Number, basic four, sign certificate
    findings, files, _ = scan(tmp_path, SECRETS)  # the recording, the run's trace files, log, report
    assert files >= 6 and (tmp_path / "run" / "traces" / "virtual-card-via-pcsc.jsonl").exists()
    assert not findings, "\n".join(map(str, findings[:20]))
    # the control: the same scan finds the synthetic holder in a recording that keeps it
    shown = hil("record", "card", "--include", "TXT-NUM-*", "--device", "virtual:card", "--show-holder-data",
                "--out", "shown.jsonl", "--outputdir", "shown-run", cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout[-2000:]
    found = {f.secret.value for f in scan(tmp_path / "shown.jsonl", SECRETS)[0]}
    assert load_holder("card").my_number in found


# -- the committed recording (fixtures/recordings/card-pcsc.jsonl) against every bridge, as the main job runs it --
def test_the_committed_recording_is_the_card_suite_through_pcscd_with_no_pin():
    lines = records(COMMITTED)
    assert lines[0]["device"] == "virtual:card?via=pcsc" and lines[0]["holder_data"] == "shown"
    assert lines[0]["holder_record"] == "card" and load_holder("card").synthetic  # made-up data only
    assert sum(1 for r in lines if r["type"] == "exchange" and r["by"] == "harness") > 400
    assert not scan(COMMITTED, PIN_SECRETS)[0]


def test_every_bridge_answers_like_the_committed_recording(tmp_path):
    proc = hil("run", "transport/recorded_answers.robot", "--outputdir", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert counts(proc) == (8, 0, 0)
    assert not scan(tmp_path / "run", PIN_SECRETS)[0]


def test_a_changed_answer_fails_every_bridge_naming_the_command(tmp_path):
    """The control: one byte of one recorded answer changed, as a bridge that changed it would show."""
    text = COMMITTED.read_text("utf-8")
    assert TOKEN_LABEL in text
    changed = tmp_path / "changed.jsonl"
    changed.write_text(text.replace(TOKEN_LABEL, TOKEN_LABEL[:-2] + "39", 1), "utf-8")
    proc = hil("run", "transport/recorded_answers.robot", "--outputdir", "run", "--",
               "--variable", f"RECORDING:{changed}", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert counts(proc) == (1, 7, 0)  # every card fails; the replay of the changed recording answers like it
    from robot.api import ExecutionResult

    tests = list(ExecutionResult(str(tmp_path / "run" / "output.xml")).suite.all_tests)
    assert [t.name for t in tests if t.passed] == ["A Replay Of The Recording Answers Like It"]
    for test in (t for t in tests if t.failed):
        assert re.match(r"\S+ differs from recording changed\.jsonl on 1 of \d+ commands: 1 data \(READ BINARY\)",
                        test.message), test.message
