"""Reader and output-folder locks: one holder at a time, a visible wait, a dead holder's lock taken over."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hil_forkserver import hil_command

from harness.locks import FileLock, LockBusy, lock_dir, reader_key, reader_lock


def test_a_held_lock_names_its_holder_and_a_released_one_is_free(tmp_path):
    first, second = FileLock(tmp_path / "r.lock", "reader r"), FileLock(tmp_path / "r.lock", "reader r")
    assert first.try_acquire() == (True, None)
    taken, holder = second.try_acquire()
    assert not taken and f"PID {os.getpid()}" in holder and os.uname().nodename in holder
    with pytest.raises(LockBusy, match=r"reader r is in use by .* use --wait SECONDS"):
        second.acquire(0)
    first.release()
    assert second.try_acquire() == (True, None)
    second.release()


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_note(tmp_path):
    path = tmp_path / "r.lock"
    path.write_text(json.dumps({"host": "bench", "pid": 999999, "user": "lab", "start": "2026-01-01"}))
    note = FileLock(path, "reader r").acquire(0)
    assert note == ("took over the lock on reader r left by lab on bench, PID 999999, since 2026-01-01 "
                    "(that run is gone)")


def test_the_lock_directory_is_sticky_and_symlinks_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    mode = os.stat(lock_dir()).st_mode
    assert mode & stat.S_ISVTX and mode & 0o777 == 0o777
    (tmp_path / "link").symlink_to(tmp_path / "locks")
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "link"))
    with pytest.raises(LockBusy, match="not a directory"):
        lock_dir()


def test_only_shared_readers_are_locked():
    assert reader_key("virtual:card") is None and reader_key("virtual:card?via=nfc") is None
    assert reader_key("virtual:card?via=pcsc&t0=1") == "vpcd"
    assert reader_key("pcsc:ACS ACR1252?share=exclusive") == "pcsc:ACS ACR1252"


def test_a_second_run_on_a_held_reader_waits_with_a_countdown_then_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    device = "virtual:card?via=pcsc"
    other_run = reader_lock(device)
    assert other_run is not None and other_run.try_acquire()[0]
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "card/selection.robot", "--device", device,
                             "--wait", "120", "--outputdir", str(tmp_path / "out")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # the countdown is the event: the run is waiting for the reader
    assert "reader vpcd is in use by" in line and f"PID {os.getpid()}" in line and "waiting" in line
    other_run.release()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert out.strip().splitlines()[-2] == "12 passed, 0 failed, 0 skipped, 0 not run"


def test_without_wait_a_held_reader_fails_at_once_naming_the_holder(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_LOCK_DIR", str(tmp_path / "locks"))
    other_run = reader_lock("nfc:udp:127.0.0.1:9")
    assert other_run is not None and other_run.try_acquire()[0]
    try:
        proc = subprocess.run([*hil_command(), "run", "card", "--device",
                               "nfc:udp:127.0.0.1:9", "--outputdir", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        other_run.release()
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hil: error: reader nfc:udp:127.0.0.1:9 is in use by ")
    assert not Path(tmp_path / "out" / "output.xml").exists()
