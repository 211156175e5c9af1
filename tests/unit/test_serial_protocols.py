"""Protocol files: the reference files load, and a malformed file is one line naming the file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devices.serial.framing import LengthFraming, LineFraming, StxEtxFraming
from devices.serial.protocol import ProtocolFileError, available_protocols, load_protocol

KIOSK = Path(__file__).resolve().parents[2] / "fixtures" / "protocols" / "kiosk.toml"


def variant(tmp_path: Path, old: str, new: str, name: str = "bad.toml") -> Path:
    """The kiosk file with one edit, written to ``tmp_path``."""
    text = KIOSK.read_text("utf-8")
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), "utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ProtocolFileError) as info:
        load_protocol(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text("utf-8").splitlines(), 1) if needle in line)


def test_reference_protocols_load_with_their_shapes() -> None:
    assert {"kiosk", "stb", "line"} <= set(available_protocols())
    kiosk, stb, line = (load_protocol(n) for n in ("kiosk", "stb", "line"))
    assert isinstance(kiosk.framing, StxEtxFraming) and kiosk.framing.has_ack_nak
    assert isinstance(stb.framing, LengthFraming) and not stb.framing.has_ack_nak and stb.codec.layouts.has_seq
    assert isinstance(line.framing, LineFraming) and not line.codec.binary
    assert (kiosk.serial.baudrate, stb.serial.baudrate, line.serial.baudrate) == (38400, 57600, 115200)
    assert kiosk.terminal == "kiosk" and stb.terminal == "stb"
    assert kiosk.limits.extended_apdu and not stb.limits.extended_apdu
    assert stb.timing.retries == 2 and kiosk.timing.apdu_timeout == 5.0
    assert kiosk.framing.inter_byte_timeout == kiosk.timing.inter_byte_timeout


def test_uri_options_override_line_settings_and_timing() -> None:
    spec = load_protocol("kiosk").with_options({"baudrate": "115200", "retries": "5", "apdu_timeout": "0.5",
                                                "inter_byte_timeout": "0.02", "parity": "e"}, "serial:/dev/x")
    assert (spec.serial.baudrate, spec.serial.parity, spec.timing.retries) == (115200, "E", 5)
    assert spec.timing.apdu_timeout == 0.5 and spec.framing.inter_byte_timeout == 0.02
    with pytest.raises(ProtocolFileError, match=r"serial:/dev/x: option retries='many'"):
        load_protocol("kiosk").with_options({"retries": "many"}, "serial:/dev/x")


def test_unknown_protocol_lists_the_known_ones() -> None:
    with pytest.raises(ProtocolFileError, match=r"no protocol file 'nosuch'.*known: .*kiosk"):
        load_protocol("nosuch")


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = variant(tmp_path, "baudrate = 38400", "baudrate = = 38400")
    message = error_of(path)
    assert re.search(rf"{re.escape(str(path))}:{line_of(path, 'baudrate = =')}: not valid TOML", message)


@pytest.mark.parametrize(("old", "new", "needle", "expected"), [
    ("retries = 3 ", "retries = \"three\" ", "retries =", r"\[timing\] retries must be int"),
    ("retries = 3 ", "retries = 42 ", "retries =", r"\[timing\] retries 42 is outside 0\.\.10"),
    ("checksum = \"bcc\"", "checksum = \"crc32\"", "checksum =", r"\[framing\] checksum 'crc32' is not one of"),
    ("stx = 0x02", "stx = 0x102", "stx =", r"\[framing\] stx 258 is not a byte"),
    ("retries = 3 ", "retires = 3 ", "retires", r"\[timing\] retires is not a known key"),
    ("parity = \"N\"", "parity = \"X\"", "parity =", r"\[serial\] parity 'X' is not one of"),
    ("card_removed = 0x41", "card_removed = 0x20", "card_removed = 0x20",
     r"\[events\] card_removed code 32 is also a command code"),
    ("bad_command = 0x05", "bad_command = 0x00", "bad_command", r"\[status\] bad_command repeats the code of ok"),
    ('response = ["code", "seq", "status", "data"]', 'response = ["data", "status"]', 'response = ["data",',
     r"\[layout\] response must name each field once, with data last"),
    ("max_payload = 2100", "max_payload = 70000", "max_payload", r"does not fit a 2-byte length field"),
])
def test_bad_values_name_file_line_and_key(tmp_path: Path, old: str, new: str, needle: str, expected: str) -> None:
    path = variant(tmp_path, old, new)
    message = error_of(path)
    assert re.search(expected, message), message
    assert f"{path}:{line_of(path, needle)}:" in message


def test_missing_key_and_section(tmp_path: Path) -> None:
    message = error_of(variant(tmp_path, "transmit = 0x20 ", "# transmit removed "))
    assert "[commands] transmit is missing" in message
    path = tmp_path / "tiny.toml"
    path.write_text('[protocol]\nname = "tiny"\n', "utf-8")
    assert "missing section [framing]" in error_of(path)


def test_unknown_section(tmp_path: Path) -> None:
    path = variant(tmp_path, "\n[card_state]\n", "\n[card_states]\n")
    assert f"{path}:{line_of(path, '[card_states]')}: unknown section [card_states]" in error_of(path)


def test_a_protocol_without_ack_nak_must_number_its_commands(tmp_path: Path) -> None:
    text = (Path(KIOSK).parent / "stb.toml").read_text("utf-8")
    path = tmp_path / "noseq.toml"
    path.write_text(text.replace('command = ["code", "seq", "data"]', 'command = ["code", "data"]'), "utf-8")
    assert "needs seq in command and response" in error_of(path)


def test_ack_byte_without_sync_is_refused(tmp_path: Path) -> None:
    text = (Path(KIOSK).parent / "stb.toml").read_text("utf-8")
    path = tmp_path / "acknosync.toml"
    path.write_text(text.replace('sync = "A5"', 'ack = 0x06\nnak = 0x15'), "utf-8")
    assert "[framing] ack needs a sync header" in error_of(path)


def test_a_newcomers_minimal_file_loads_with_defaults(tmp_path: Path) -> None:
    """What the README shows: only framing, commands, events and statuses are required."""
    path = tmp_path / "acme.toml"
    path.write_text("""
[protocol]
name = "acme"

[framing]
kind = "stx_etx"
ack = 0x06
nak = 0x15

[commands]
power_on = 0x31
power_off = 0x32
status = 0x33
transmit = 0x34

[events]
card_inserted = 0x51
card_removed = 0x52

[status]
ok = 0x00
no_card = 0x01
card_removed = 0x02
card_error = 0x03
""", "utf-8")
    spec = load_protocol(path)
    assert spec.name == "acme" and spec.serial.baudrate == 9600 and spec.timing.retries == 3
    assert spec.codec.layouts.command == ("code", "seq", "data")


def test_frames_must_carry_the_largest_apdu_the_reader_allows(tmp_path: Path) -> None:
    path = variant(tmp_path, "max_payload = 2100", "max_payload = 1024")
    message = error_of(path)
    assert f"{path}:{line_of(path, 'max_payload = 1024')}: [framing] max_payload 1024 cannot carry" in message
    assert "largest command" in message and "needs at least 1035" in message
