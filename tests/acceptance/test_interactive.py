"""``hil record --interactive``: keywords and hex APDUs typed against a device, kept as a recording.

Each session is a real ``hil`` process reading its lines from stdin, on the in-process virtual card; the
recording it writes is compared with the card by ``hil compare``. PINs only pass through the guard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from leak_scan import profile_secrets, scan, scan_text

from devices.virtual.profile import load_holder

SECRETS = profile_secrets()
SELECT_JPKI = "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"
RAW_VERIFY = "00 20 00 80 04 32 35 38 30"  # the virtual card's auth PIN as bytes


def session(tmp_path: Path, device: str, *lines: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, HIL_LOCK_DIR=str(tmp_path / ".locks"))
    return subprocess.run([sys.executable, "-m", "harness.cli", "record", "--interactive", "--device", device,
                           "--out", "session.jsonl", *extra], input="\n".join(lines) + "\n", cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def exchanges(path: Path) -> list[dict]:
    return [r for r in map(json.loads, path.read_text("utf-8").splitlines()) if r["type"] == "exchange"]


def test_keywords_and_apdus_are_answered_and_recorded(tmp_path):
    proc = session(tmp_path, "virtual:card", "Select Applet    jpki", "00 A4 02 0C 02 00 06", "00 B0 00 00 20",
                   "query pin tries    auth", "Verify PIN    auth", "help verify", "quit", "00 B0 00 00 04")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert out[0] == "Opened virtual:card: ATR 3B E0 00 FF 81 31 FE 45 14"
    assert out[1:4] == ["9000 (OK)", "9000 (OK)",
                        "4A 50 4B 49 41 50 49 43 43 54 4F 4B 45 4E 32" + " 20" * 17 + " 9000 (OK)"]
    assert out[4:6] == ["3", "ok"]  # tries, then the guarded VERIFY
    assert out[6].startswith("keywords: ") and "Verify Pin" in out[6] and "Select Applet" not in out[6]
    assert out[-1].startswith(f"Recording: {tmp_path / 'session.jsonl'} (") and "0 lines refused" in out[-1]
    sent = exchanges(tmp_path / "session.jsonl")
    assert [r["command"] for r in sent][:3] == [SELECT_JPKI, "00 A4 02 0C 02 00 06", "00 B0 00 00 20"]
    assert sent[-1]["command"] == "00 20 00 80 04 ****(4 digits)" and sent[-1]["sw"] == "9000"
    assert all(r["test"] == "interactive session" for r in sent)
    assert not any(r["command"] == "00 B0 00 00 04" for r in sent)  # nothing after quit


def test_a_raw_pin_is_refused_and_never_sent_or_written(tmp_path):
    proc = session(tmp_path, "virtual:card", "Select Applet    jpki", "Select EF    0018", RAW_VERIFY,
                   "Change Reference Data", "00 24 01 80 08 32 35 38 30 31 32 33 34")
    assert proc.returncode == 0, proc.stderr[-2000:]
    refused = [line for line in proc.stdout.splitlines() if line.startswith("refused: ")]
    assert len(refused) == 3 and refused[0].startswith("refused: RawSecretRefused: Send APDU refuses VERIFY")
    assert "no keyword 'Change Reference Data'" in refused[1] and "CHANGE REFERENCE DATA" in refused[2]
    assert "3 lines refused" in proc.stdout
    sent = exchanges(tmp_path / "session.jsonl")
    assert [r["name"] for r in sent] == ["SELECT AID", "SELECT EF"]  # the refused commands never reached the card
    findings = scan(tmp_path / "session.jsonl", SECRETS)[0] + [f for f in scan_text(proc.stdout, SECRETS)
                                                              if "PIN" in f[0].label]
    assert not findings, findings


def test_on_a_card_that_is_not_expendable_the_guard_keeps_the_reserve(tmp_path):
    proc = session(tmp_path, "virtual:card?expendable=0", "Verify Wrong PIN    auth", "Verify Wrong PIN    auth",
                   "Query PIN Tries    auth")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout.splitlines()
    assert out[1] == "63C2"  # the configured PIN proven first, then one wrong try: 2 left, the reserve
    assert out[2].startswith("refused: NeedsExpendableCard: a failing auth PIN VERIFY") and "reserve 2" in out[2]
    assert out[3] == "2"
    verifies = [r for r in exchanges(tmp_path / "session.jsonl") if "****" in r["command"]]
    assert [r["sw"] for r in verifies] == ["9000", "63C2"]  # nothing was sent for the refused line


def test_holder_data_is_masked_at_the_prompt_and_in_the_recording(tmp_path):
    proc = session(tmp_path, "virtual:card", "Verify PIN    text", "Read My Number")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<My Number: 12 digits, check digit valid" in proc.stdout
    assert load_holder("card").my_number not in proc.stdout
    assert not scan(tmp_path / "session.jsonl", SECRETS)[0]
    assert any(r.get("masked") for r in exchanges(tmp_path / "session.jsonl"))


def test_the_session_replays_as_a_recording(tmp_path):
    proc = session(tmp_path, "virtual:card", "Select Applet    jpki", "Read Token Label", "Verify PIN    auth",
                   "Verify Wrong PIN    sign", "Power Cycle Card", "Read Certificate    auth",
                   extra=("--show-holder-data",))  # a synthetic holder: its certificate is compared byte for byte
    assert proc.returncode == 0 and "0 lines refused" in proc.stdout, proc.stdout[-2000:]
    assert "holder data shown" in proc.stdout
    assert not any(r.get("masked") for r in exchanges(tmp_path / "session.jsonl"))
    compared = subprocess.run([sys.executable, "-m", "harness.cli", "compare", "session.jsonl", "--device",
                               "virtual:card"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              check=False)
    assert compared.returncode == 0, compared.stdout[-2000:]
    assert "virtual:card answers like recording session.jsonl on all" in compared.stdout


def test_bad_usage_is_one_line_and_exit_2(tmp_path):
    from harness.cli import main

    assert main(["record", "card", "--interactive", "--device", "virtual:card", "--out", str(tmp_path / "x")]) == 2
    assert main(["record", "--interactive", "--out", str(tmp_path / "x")]) == 2
    assert main(["record", "--interactive", "--device", "nosuch:x", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
