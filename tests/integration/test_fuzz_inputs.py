"""Bounded fuzzing of every loader and boundary that takes hostile input: nothing but the typed one-line error
may come out. Seeded, so a failure reproduces; the large counts are in ``benchmarks/bench_fuzz_inputs.py``.

Each test also checks that the generator did its job (most cases refused, some accepted), so a generator
that only produced valid input could not pass for a clean loader.
"""

import random

import pytest
from fuzz_support import INVENTORY_SEEDS, PROTOCOL_SEEDS, Tally, file_cases, run_loader, run_uris, uri_cases
from hostile_picc import run_frames
from hostile_serial import run_serial_frames

from devices import open_device
from devices.base import DeviceError
from devices.registry import check_uri
from devices.serial.protocol import ProtocolFileError, load_protocol
from harness.lab import InventoryError, load_inventory

FILES_PER_LOADER = 2000
URIS = 5000
FRAMES = 2000
SERIAL_FRAMES = 300  # each costs a few pty round trips, some a timeout


def assert_clean(tally: Tally, least_refused: int) -> None:
    report = tally.line() + "".join(f"\n  {sample}" for sample in tally.samples)
    assert tally.uncaught == 0, report
    assert tally.untyped == 0, report
    assert tally.refused >= least_refused and tally.accepted > 0, report


def test_inventory_loader_survives_hostile_files(tmp_path):
    cases = file_cases(INVENTORY_SEEDS, random.Random(20261202), FILES_PER_LOADER)
    tally = run_loader("inventory", load_inventory, InventoryError, cases, tmp_path)
    assert tally.cases == FILES_PER_LOADER
    assert_clean(tally, FILES_PER_LOADER // 2)


def test_protocol_loader_survives_hostile_files(tmp_path):
    cases = file_cases(PROTOCOL_SEEDS, random.Random(20261203), FILES_PER_LOADER)
    tally = run_loader("protocol", load_protocol, ProtocolFileError, cases, tmp_path)
    assert tally.cases == FILES_PER_LOADER
    assert_clean(tally, FILES_PER_LOADER // 2)


OPENED: set[str] = set()
OPEN_AT_MOST = 60  # opening loads a profile and its keys: a sample is enough


def check_and_open(uri: str) -> None:
    """What check_uri accepts must also open: a sample of the in-process virtual devices is opened for real."""
    check_uri(uri)
    if uri.startswith("virtual:") and "via=" not in uri and len(OPENED) < OPEN_AT_MOST and uri not in OPENED:
        OPENED.add(uri)
        open_device(uri).close()


def test_device_uri_grammar_survives_hostile_names():
    tally = run_uris(check_and_open, DeviceError, uri_cases(random.Random(20261204), URIS))
    assert tally.cases == URIS and len(OPENED) == OPEN_AT_MOST
    assert_clean(tally, URIS // 2)


@pytest.mark.nfc
def test_nfcpy_boundary_types_every_garbage_frame_from_the_card():
    tally = run_frames(FRAMES, seed=20261205)
    assert tally.frames >= FRAMES
    assert_clean(tally, FRAMES // 10)
    assert tally.kinds["ProtocolError"] > 0  # undecodable answers are protocol errors, not removals


@pytest.mark.serial
def test_serial_boundary_types_every_garbage_answer_from_the_module():
    tally = run_serial_frames(SERIAL_FRAMES, seed=20261206)
    assert tally.frames >= SERIAL_FRAMES
    assert_clean(tally, SERIAL_FRAMES // 10)
