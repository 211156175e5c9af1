"""hil compare: which aspect of an answer differs, PIN markers refilled safely, one-line errors."""

import os
from pathlib import Path

import pytest

from devices import open_device
from harness.cli import main
from harness.compare import SecretFiller, compare, first_difference
from harness.credentials import DeviceFacts
from harness.tracefile import CURRENT, TraceWriter, attach

OK = b"\x90\x00"


@pytest.mark.parametrize(("recorded", "actual", "aspect"), [
    (b"\x01\x02" + OK, b"\x01\x02\x6a\x82", "status word"),
    (b"\x01\x02" + OK, b"\x01" + OK, "length"),
    (bytes.fromhex("DF2102AAAA") + OK, bytes.fromhex("DF2202AAAA") + OK, "TLV structure"),
    (bytes.fromhex("DF2102AAAA") + OK, bytes.fromhex("DF2102AABB") + OK, "data"),
])
def test_the_first_aspect_that_differs_counts(recorded, actual, aspect):
    assert first_difference(0xB0, recorded, actual)[0] == aspect


def test_challenges_and_signatures_differ_by_nature():
    assert first_difference(0x84, b"\x01" * 8 + OK, b"\x02" * 8 + OK) is None
    assert first_difference(0x2A, b"\x01" * 256 + OK, b"\x02" * 256 + OK) is None
    assert first_difference(0x84, b"\x01" * 8 + OK, b"\x02" * 4 + OK)[0] == "length"


def filler(expendable: bool) -> SecretFiller:
    f = SecretFiller(DeviceFacts(expendable=expendable, pins={"auth": "2580"}))
    f.context.command(bytes.fromhex("00A4040C0AD392F000260100000001"))
    f.context.command(bytes.fromhex("00A4020C020018"))
    return f


def test_markers_become_the_devices_pin_a_wrong_one_or_a_value_of_the_recorded_shape():
    header = bytes.fromhex("0020008004")
    assert filler(True).value(header, 4, "digits", "9000") == ("2580", "")
    assert filler(True).value(header, 4, "digits", "63C2") == ("2581", "")
    assert filler(True).value(bytes.fromhex("0020008005"), 5, "A-Z0-9", "6A80") == ("AAAA1", "")


def test_no_pin_command_at_all_reaches_a_card_that_is_not_expendable():
    why = "auth PIN: card not expendable (compare sends PIN commands only to expendable cards)"
    guarded = filler(False)
    assert guarded.value(bytes.fromhex("0020008004"), 4, "digits", "63C2") == (None, why)  # a wrong PIN
    assert guarded.value(bytes.fromhex("0020008004"), 4, "digits", "9000")[0] is None  # the right one: no counter check
    assert guarded.value(bytes.fromhex("0020008005"), 5, "digits", "6A80")[0] is None  # a made-up malformed one
    assert guarded.value(bytes.fromhex("0024018004"), 4, "digits", "9000")[0] is None  # a change
    assert filler(True).value(bytes.fromhex("0020008004"), 4, "digits", "63C2")[0] is not None


def record_wrong_pin(path: Path) -> None:
    reader = open_device("virtual:card")
    writer = TraceWriter(path, "virtual:card", "shown")
    attach(reader, writer)
    reader.wait_for_card(1)
    writer.open({"kind": "card", "expendable": False, "pins": {"auth": {"length": 4, "class": "digits"}}})
    CURRENT.begin("wrong pin", [])
    reader.power_on()
    for apdu in ("00A4040C0AD392F000260100000001", "00A4020C020018", "002000800431323334", "00200080"):
        reader.transmit(bytes.fromhex(apdu))
    CURRENT.end()
    reader.close()


def test_the_expendable_virtual_card_gets_every_command_and_answers_alike(tmp_path):
    record_wrong_pin(tmp_path / "r.jsonl")
    result = compare(tmp_path / "r.jsonl", "virtual:card")
    assert result.compared == 4 and not result.differences and not result.not_sent
    assert "answers like recording r.jsonl on all 4 commands" in result.summary()


def test_a_card_not_marked_expendable_gets_no_wrong_pin(tmp_path):
    record_wrong_pin(tmp_path / "r.jsonl")  # its header: not expendable, so a replay of it is a guarded card
    result = compare(tmp_path / "r.jsonl", f"replay:{tmp_path / 'r.jsonl'}")
    why = "auth PIN: card not expendable (compare sends PIN commands only to expendable cards)"
    assert [d.recorded for d in result.not_sent] == [why]
    assert result.compared == 3 and f"1 not sent ({why})" in result.summary()


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing.jsonl"), "--device", "virtual:card"]) == 2
    assert "no recording" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{oops\n", "utf-8")
    assert main(["compare", str(broken), "--device", "virtual:card"]) == 2
    assert "broken.jsonl:1: not a JSON line" in capsys.readouterr().err
    assert main(["compare", str(broken), "--device", "nosuch:x"]) == 2
    assert main(["record", "card", "--out", str(tmp_path / "x.jsonl"), "--anonymise", "--show-holder-data"]) == 2
    assert "not both" in capsys.readouterr().err
    assert "HIL_SHOW_HOLDER_DATA" not in os.environ  # refused before anything was lifted
    assert not Path(tmp_path / "x.jsonl").exists()
