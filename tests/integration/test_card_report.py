"""The served card's own report: pre-set counters (``--tries``) and the state file written after every APDU."""

from __future__ import annotations

import pytest

from devices.virtual.card import VirtualCard
from devices.virtual.card_report import StateFile, TriesError, parse_tries, preset_tries, read_state
from harness.cli import main


def test_tries_are_preset_within_the_pins_limits():
    card = VirtualCard.from_profile("card")
    preset_tries(card, parse_tries(["auth=1,sign=3", "number_a=2"], card))
    assert (card.pin("auth").tries_left, card.pin("sign").tries_left, card.pin("number_a").tries_left) == (1, 3, 2)
    for bad, message in (("auth=4", "must be 0..3"), ("auth", "PIN=N"), ("pin=1", "PIN=N"), ("auth=x", "not a number")):
        with pytest.raises(TriesError, match=message):
            parse_tries([bad], card)


def test_the_state_file_counts_what_the_card_saw(tmp_path):
    card = VirtualCard.from_profile("card")
    card.power_on()
    path = tmp_path / "state.json"
    StateFile(path).attach(card)
    assert read_state(path)["pins"]["auth"] == {"tries_left": 3, "max_tries": 3, "start": 3, "lowest": 3,
                                                "wrong_verifies": 0, "changes": 0}
    for apdu in ("00A4040C0AD392F000260100000001", "00A4020C020018", "0020008004" + b"1111".hex(),
                 "0020008004" + b"2580".hex()):
        card.process(bytes.fromhex(apdu))
    state = read_state(path)
    assert state["apdus"] == 4
    assert state["pins"]["auth"] == {"tries_left": 3, "max_tries": 3, "start": 3, "lowest": 2, "wrong_verifies": 1,
                                     "changes": 0}
    assert "2580" not in path.read_text() and "1111" not in path.read_text()


def test_a_bad_tries_option_is_one_line_and_exit_2(capsys):
    assert main(["virtual", "serve", "card", "--serial", "kiosk", "--tries", "auth=7"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["hil: error: --tries auth=7: must be 0..3"]
