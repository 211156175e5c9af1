"""The replay: device: answers by command and state reached, PIN markers match by shape, unknown commands fail."""

from pathlib import Path

import pytest

from devices import ProtocolError, open_device
from devices.registry import known_schemes
from devices.replay import RecordingError, load_recording
from harness.tracefile import CURRENT, TraceWriter, attach

SELECT_JPKI = "00A4040C0AD392F000260100000001"
SELECT_TOKEN, SELECT_AUTH_CERT, SELECT_AUTH_PIN = "00A4020C020006", "00A4020C02000A", "00A4020C020018"
SELECT_TEXT, SELECT_MY_NUMBER, SELECT_TEXT_PIN = "00A4040C0AD3921000310001010408", "00A4020C020001", "00A4020C020011"
READ4 = "00B0000004"
AUTH_PIN = b"2580"  # fixtures/cards/card.toml: a test value of the virtual card


def apdu(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def verify(pin: bytes) -> bytes:
    return apdu("00200080") + bytes([len(pin)]) + pin


def record(tmp_path: Path, tests: dict[str, list[bytes]], holder_data: str = "shown") -> tuple[Path, dict]:
    """Runs each 'test' (a power-on and its commands) on the in-process virtual card into a recording."""
    reader = open_device("virtual:card")
    path = tmp_path / "recording.jsonl"
    writer = TraceWriter(path, "virtual:card", holder_data)
    attach(reader, writer)
    reader.wait_for_card(1)
    writer.open({"kind": "card", "expendable": True})
    answers = {}
    for name, commands in tests.items():
        CURRENT.begin(name, [])
        reader.power_on()
        answers[name] = [reader.transmit(c) for c in commands]
        CURRENT.end()
    reader.close()
    return path, answers


def replay(path: Path):
    reader = open_device(f"replay:{path}")
    reader.wait_for_card(1)
    return reader


def test_the_scheme_is_registered_by_entry_point():
    assert "replay" in known_schemes()


def test_answers_follow_the_state_reached_not_the_order(tmp_path):
    path, answers = record(tmp_path, {"token": [apdu(SELECT_JPKI), apdu(SELECT_TOKEN), apdu(READ4)],
                                      "cert": [apdu(SELECT_JPKI), apdu(SELECT_AUTH_CERT), apdu(READ4)]})
    assert answers["token"][-1] != answers["cert"][-1]  # the same READ BINARY, two answers
    reader = replay(path)
    for name in ("cert", "token", "cert"):  # not the recorded order
        reader.power_on()
        commands = [SELECT_JPKI, SELECT_AUTH_CERT if name == "cert" else SELECT_TOKEN, READ4]
        assert [reader.transmit(apdu(c)) for c in commands] == answers[name]


def test_a_verify_marker_matches_any_pin_of_the_same_length_and_class(tmp_path):
    path, answers = record(tmp_path, {"verify": [apdu(SELECT_JPKI), apdu(SELECT_AUTH_PIN), verify(AUTH_PIN)]})
    assert answers["verify"][-1] == b"\x90\x00"
    reader = replay(path)
    reader.power_on()
    reader.transmit(apdu(SELECT_JPKI))
    reader.transmit(apdu(SELECT_AUTH_PIN))
    assert reader.transmit(verify(b"0000")) == b"\x90\x00"
    reader.power_on()
    reader.transmit(apdu(SELECT_JPKI))
    reader.transmit(apdu(SELECT_AUTH_PIN))
    with pytest.raises(ProtocolError, match=r"VERIFY 00 20 00 80 05 \*\*\*\*\(5 digits\) was never recorded"):
        reader.transmit(verify(b"00000"))


def test_right_and_wrong_pins_answer_in_recorded_order_on_the_same_path(tmp_path):
    steps = [apdu(SELECT_JPKI), apdu(SELECT_AUTH_PIN)]
    path, answers = record(tmp_path, {"wrong": [*steps, verify(b"2581")], "right": [*steps, verify(AUTH_PIN)]})
    assert answers["wrong"][-1] == b"\x63\xc2" and answers["right"][-1] == b"\x90\x00"
    reader = replay(path)
    got = []
    for _ in range(2):
        reader.power_on()
        got.append([reader.transmit(c) for c in [*steps, verify(b"1111")]][-1])
    assert got == [b"\x63\xc2", b"\x90\x00"]


def test_an_unrecorded_command_is_a_protocol_error_naming_it(tmp_path):
    path, _ = record(tmp_path, {"one": [apdu(SELECT_JPKI)]})
    reader = replay(path)
    reader.power_on()
    with pytest.raises(ProtocolError, match=r"GET CHALLENGE 00 84 00 00 08 was never recorded in .*recording.jsonl"):
        reader.transmit(apdu("0084000008"))


def test_a_command_recorded_only_elsewhere_says_which_selection_it_lacks(tmp_path):
    path, _ = record(tmp_path, {"one": [apdu(SELECT_JPKI), apdu(SELECT_TOKEN), apdu(READ4)]})
    reader = replay(path)
    reader.power_on()
    with pytest.raises(ProtocolError, match="was recorded, but not with applet none / EF none selected"):
        reader.transmit(apdu(READ4))


def test_a_masked_holder_file_cannot_be_replayed_and_says_how_to_record_it(tmp_path):
    commands = [apdu(SELECT_TEXT), apdu(SELECT_TEXT_PIN), verify(AUTH_PIN), apdu(SELECT_MY_NUMBER), apdu("00B0000011")]
    path, _ = record(tmp_path, {"number": commands}, holder_data="masked")
    reader = replay(path)
    reader.power_on()
    for command in commands[:-1]:
        reader.transmit(command)
    with pytest.raises(ProtocolError, match=r"recorded masked .*--anonymise"):
        reader.transmit(commands[-1])


def test_the_replay_gives_the_recorded_atr_and_needs_a_power_on(tmp_path):
    path, _ = record(tmp_path, {"one": [apdu(SELECT_JPKI)]})
    reader = replay(path)
    with pytest.raises(Exception, match="not powered"):
        reader.transmit(apdu(SELECT_JPKI))
    assert reader.power_on() == apdu("3B E0 00 FF 81 31 FE 45 14")


@pytest.mark.parametrize(("content", "message"), [
    (None, "no recording"), ("", "holds no exchanges"), ("not json\n", ":1 is not a trace record"),
])
def test_a_bad_recording_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    if content is not None:
        path.write_text(content, "utf-8")
    with pytest.raises(RecordingError, match=message):
        load_recording(path)
