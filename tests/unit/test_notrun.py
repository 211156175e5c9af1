"""The third outcome: which failure messages describe the set-up (not run) and which the card (FAIL)."""

from __future__ import annotations

import pytest

from harness.notrun import set_up_problem


@pytest.mark.parametrize(("message", "reason"), [
    ("Parent suite setup failed:\nNoCard: no card in nfc:udp:127.0.0.1:9", "NoCard: no card in nfc:udp:127.0.0.1:9"),
    ("DeviceGone: the reader went away", "DeviceGone: the reader went away"),
    ("Parent suite setup failed:\nBadDeviceUri: x: unknown option y", "BadDeviceUri: x: unknown option y"),
    ("MissingSecret: no auth PIN for bench", "MissingSecret: no auth PIN for bench"),
    ("Test execution stopped due to a fatal error.", "the run was interrupted"),
    ("Execution terminated by signal", "the run was interrupted"),
])
def test_set_up_problems_are_not_run(message, reason):
    assert set_up_problem(message) == reason


@pytest.mark.parametrize("message", [
    "CardStatusError: VERIFY AUTH failed: 6984 reference data blocked",
    "expected SW 6A82, got 9000",
    "DeviceTimeout: no answer within 2 s",
    "ProtocolError: bad frame after 3 retries",
    "the message mentions DeviceGone: but not as the error",
])
def test_a_card_answering_wrongly_stays_a_failure(message):
    assert set_up_problem(message) is None
