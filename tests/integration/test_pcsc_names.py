"""Which PC/SC reader a name means, and the stable name ``hil devices`` prints for an inventory.

The rules are pure functions over reader names (first part); the rest runs them against a real pcscd
with vpcd: the session's (its one vpcd reader has two slots, ``Virtual PCD 00 00`` and ``00 01``), and a
private pcscd whose reader.conf adds three readers, two of them of one name, in two plug orders.
Nothing is mocked.
"""

from __future__ import annotations

import contextlib
import io
import os

import pytest

from devices.base import NoReader
from devices.pcsc.names import ReaderName, discover, select_reader, stable_name
from devices.pcsc.reader import open_pcsc
from harness.cli import main

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card, isolated

VPCD = ["Virtual PCD 00 00", "Virtual PCD 00 01"]
LAB = ["ACS ACR1252 1S CL Reader [ACR1252 Dual Reader PICC] 00 00",
       "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader SAM] 00 01",
       "Identiv uTrust 3700 F CL Reader 01 00",
       "SCM Microsystems Inc. SCR 3310 (21120830206530) 02 00"]


# -- the rules ------------------------------------------------------------------------------------
def test_a_name_is_taken_apart_into_friendly_name_index_and_slot():
    assert ReaderName.parse("Virtual PCD 00 01") == ReaderName("Virtual PCD 00 01", "Virtual PCD", "00", "01")
    assert ReaderName.parse("Odd reader") == ReaderName("Odd reader", "Odd reader")


@pytest.mark.parametrize(("pattern", "expected"), [
    ("Virtual PCD 00 01", "Virtual PCD 00 01"),  # exact
    ("virtual pcd 00 00", "Virtual PCD 00 00"),  # exact, any case
    ("Virtual PCD * 01", "Virtual PCD 00 01"),  # glob: any index, slot 01
    ("*PCD 0? 00", "Virtual PCD 00 00"),  # ? is one character
])
def test_exact_names_and_globs_pick_one_vpcd_slot(pattern, expected):
    assert select_reader(pattern, VPCD) == expected


@pytest.mark.parametrize(("pattern", "expected"), [
    ("Identiv uTrust 3700 F CL Reader", LAB[2]),  # the friendly name without the plug-order index
    ("ACS ACR1252 1S CL Reader [ACR1252 Dual Reader PICC]", LAB[0]),  # [ is literal
    ("ACS*PICC*", LAB[0]),
    ("(21120830206530)", LAB[3]),  # the serial number libccid puts in the name: a part of it
    ("3700", LAB[2]),
])
def test_lab_readers_by_friendly_name_glob_and_part(pattern, expected):
    assert select_reader(pattern, LAB) == expected


def test_a_pattern_that_fits_two_readers_names_both_on_one_line():
    for pattern in ("Virtual PCD", "Virtual PCD *", "*PCD 00 0?", "virtual"):
        with pytest.raises(NoReader) as ambiguous:
            select_reader(pattern, VPCD)
        assert str(ambiguous.value) == (f"'{pattern}' matches 2 PC/SC readers: 'Virtual PCD 00 00'; "
                                        "'Virtual PCD 00 01'; name one by its full name or a pattern that fits only it")


def test_a_pattern_that_fits_none_lists_the_readers_present_on_one_line():
    with pytest.raises(NoReader) as missing:
        select_reader("Bench ACR122U*", VPCD)
    assert str(missing.value) == ("no PC/SC reader matches 'Bench ACR122U*'; "
                                  "readers present: 'Virtual PCD 00 00'; 'Virtual PCD 00 01'")
    with pytest.raises(NoReader, match="pcscd lists none"):
        select_reader("anything", [])


def test_the_stable_name_drops_the_plug_order_index_where_it_still_picks_one_reader():
    assert [stable_name(r, LAB) for r in LAB] == [
        "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader PICC]", "ACS ACR1252 1S CL Reader [ACR1252 Dual Reader SAM]",
        "Identiv uTrust 3700 F CL Reader", "SCM Microsystems Inc. SCR 3310 (21120830206530)"]
    assert [stable_name(r, VPCD) for r in VPCD] == ["Virtual PCD * 00", "Virtual PCD * 01"]  # two slots
    twins = ["Twin Reader 00 00", "Twin Reader 01 00"]  # same model, no serial: only the index differs
    assert [stable_name(r, twins) for r in twins] == twins
    for readers in (LAB, VPCD, twins):
        for reader in readers:
            assert select_reader(stable_name(reader, readers), readers) == reader


# -- against the session's pcscd and vpcd ---------------------------------------------------------
def test_vpcd_slots_open_by_exact_name_and_by_glob(pcscd):
    for uri, name in (("pcsc:Virtual PCD 00 01", "Virtual PCD 00 01"),
                      ("pcsc:Virtual PCD * 01", "Virtual PCD 00 01"),
                      ("pcsc:virtual pcd * 00", "Virtual PCD 00 00"),
                      ("pcsc:Virtual%20PCD%20*%2000", "Virtual PCD 00 00"),
                      ("pcsc:*PCD 00 0%3F?share=shared", None)):
        if name is None:
            with pytest.raises(NoReader, match=r"^'\*PCD 00 0\?' matches 2 PC/SC readers: 'Virtual PCD 00 00'; "):
                open_pcsc(uri)
            continue
        with open_pcsc(uri) as reader:
            assert reader.name == name, uri


def test_ambiguous_and_missing_readers_are_one_line_errors_from_pcscd(pcscd):
    with pytest.raises(NoReader) as ambiguous:
        open_pcsc("pcsc:Virtual PCD")
    with pytest.raises(NoReader) as missing:
        open_pcsc("pcsc:Bench*")
    assert str(ambiguous.value).startswith("'Virtual PCD' matches 2 PC/SC readers: 'Virtual PCD 00 00'; "
                                           "'Virtual PCD 00 01'")
    assert str(missing.value) == ("no PC/SC reader matches 'Bench*'; readers present: 'Virtual PCD 00 00'; "
                                  "'Virtual PCD 00 01'")
    assert "\n" not in str(ambiguous.value) + str(missing.value)


def test_hil_devices_prints_the_stable_name_and_that_name_opens_the_reader(pcscd):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["devices"]) == 0
    lines = out.getvalue().splitlines()
    for full in VPCD:
        at = next(i for i, line in enumerate(lines) if line.startswith(f"pcsc:{full} "))
        assert lines[at + 1].strip() == f'inventory: uri = "pcsc:Virtual PCD * {full[-2:]}"'
    found = {info.uri: info.stable_uri for info in discover()}
    for full in VPCD:
        with open_pcsc(found[f"pcsc:{full}"]) as reader:
            assert reader.name == full


PLUG_ORDER = r"""
import contextlib, io, json, os
from pathlib import Path
from pcsc_support import VPCD_DRIVER, free_port_pair
from devices.pcsc.names import discover
from devices.pcsc.reader import open_pcsc
from devices.virtual.pcscd import PcscDaemon
from harness.cli import main

work = Path(os.environ["HIL_TEST_DIR"])
ports = [free_port_pair()]
for _ in range(2):
    ports.append(free_port_pair(ports[-1] + 2))
readers = [("Desk A", ports[0]), ("Desk B", ports[1]), ("Desk C", ports[2])]
out = {}
for label, order in (("A first", readers), ("A last", readers[::-1])):
    conf = work / "reader.conf"  # one file: pcscd adds its readers in this order, as if plugged so
    conf.write_text("".join(f'FRIENDLYNAME "{name}"\nDEVICENAME /dev/null:0x{port:X}\n'
                            f"LIBPATH {VPCD_DRIVER}\nCHANNELID 0x{port:X}\n\n" for name, port in order))
    daemon = PcscDaemon(config=conf, log_path=work / "pcscd.log")
    daemon.start(timeout=15)
    try:
        seen = {"stable": {i.uri: i.stable_uri for i in discover()}}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            main(["devices"])
        seen["printed"] = sorted(line.split("= ", 1)[1] for line in printed.getvalue().splitlines()
                                 if "inventory: uri" in line)
        with open_pcsc("pcsc:Desk A * 01") as reader:
            seen["desk"] = reader.name
        try:
            open_pcsc("pcsc:Desk * 00")
        except Exception as exc:
            seen["ambiguous"] = [type(exc).__name__, str(exc)]
    finally:
        daemon.stop()
    out[label] = seen
print(json.dumps(out))
"""


def test_stable_names_from_a_private_pcscd_do_not_move_with_the_plug_order(isolated, tmp_path):
    """pcscd numbers readers per friendly name, so another model plugged before or after changes neither
    the full names nor the stable ones (two readers of one name differ only by that number: the unit
    tests above; pcscd does not take two reader.conf entries of one name)."""
    os.environ["HIL_TEST_DIR"] = str(tmp_path)
    try:
        result = isolated(PLUG_ORDER, timeout=180)
    finally:
        del os.environ["HIL_TEST_DIR"]
    expected = {f"pcsc:Desk {x} 00 {s}": f"pcsc:Desk {x} * {s}" for x in "ABC" for s in ("00", "01")}
    for label, plugged in (("A first", "ABC"), ("A last", "CBA")):
        seen = result[label]
        assert seen["stable"] == expected, label
        assert seen["printed"] == sorted(f'"{uri}"' for uri in expected.values())
        assert seen["desk"] == "Desk A 00 01"
        assert seen["ambiguous"] == ["NoReader", "'Desk * 00' matches 3 PC/SC readers: "  # listed as plugged
                                                 + "; ".join(f"'Desk {x} 00 00'" for x in plugged)
                                                 + "; name one by its full name or a pattern that fits only it"]
