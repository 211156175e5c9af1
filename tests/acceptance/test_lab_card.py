"""A card the harness must treat as real: a virtual card served to pcscd by this process and opened by
``hil run`` as a plain PC/SC reader from a lab inventory. PINs come only from the environment variables the
inventory names; the guard keeps the reserve; destructive requirements are skipped; no PIN reaches a report."""

import os
import subprocess
import sys

from hil_forkserver import hil_command
from robot.api import ExecutionResult

from devices.virtual.profile import load_profile
from harness.cli import main
from harness.credentials import prompt_for_pins

pytest_plugins = ["pcsc_support"]  # fixtures: pcscd, served_card


def inventory(tmp_path, reader: str):
    path = tmp_path / "lab.toml"
    path.write_text(
        f'[devices.desk-card]\nuri = "pcsc:{reader}"\ndescription = "served like a lab card"\n'
        '[devices.desk-card.card]\nkind = "card"\nexpendable = false\nholder = "card"\n'
        'pin_env = { auth = "DESK_AUTH", sign = "DESK_SIGN", text = "DESK_TEXT" }\n',
        encoding="utf-8",
    )
    return path


def hil_run(tmp_path, lab, env, *suites):
    out = tmp_path / "out"
    proc = subprocess.run(
        [*hil_command(), "run", *suites, "--device", "desk-card", "--inventory", str(lab),
         "--outputdir", str(out)],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )
    return proc, out


def test_real_card_run_takes_pins_from_the_environment_and_keeps_them_out_of_reports(tmp_path, served_card):
    server, reader = served_card
    pins = {kind: spec.value for kind, spec in load_profile("card").pins.items()}
    env = dict(os.environ, DESK_AUTH=pins["auth"], DESK_SIGN=pins["sign"], DESK_TEXT=pins["text"])
    for name in ("HIL_AUTH_PIN", "HIL_SIGN_PIN", "HIL_TEXT_PIN"):
        env.pop(name, None)
    proc, out = hil_run(tmp_path, inventory(tmp_path, reader), env, "card")
    assert proc.returncode == 0, proc.stdout[-3000:]
    stats = ExecutionResult(str(out / "output.xml")).statistics.total
    assert stats.failed == 0 and stats.skipped == 6 and stats.passed >= 55
    card = server.slot.card
    assert card.pin("auth").tries_left == 3 and card.pin("sign").tries_left == 5  # wrong PINs restored
    for path in (p for p in out.rglob("*") if p.is_file()):  # traces/ is a folder
        text = path.read_text(encoding="utf-8", errors="replace")
        assert pins["sign"] not in text
        for pin in pins.values():
            assert pin.encode().hex(" ").upper() not in text.upper()


def test_real_card_without_pins_stops_in_pre_flight_and_sends_no_verify(tmp_path, served_card):
    server, reader = served_card
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DESK_", "HIL_"))}
    env["HIL_AUTH_PIN"] = "2580"  # set, but not the variable the inventory names: no fallback to it
    proc, out = hil_run(tmp_path, inventory(tmp_path, reader), env, "card/signing.robot")
    assert proc.returncode == 2 and not (out / "output.xml").exists()
    assert proc.stderr.strip().splitlines() == [  # pre-flight: HIL_AUTH_PIN does not stand in for DESK_AUTH
        "hil: error: desk-card: the selected tests need the auth PIN: set DESK_AUTH (or use --ask-pins)"]
    assert server.slot.card.pin("auth").tries_left == 3 and server.slot.card.pin("auth").wrong_verifies == 0


def test_prompted_pins_land_in_the_environment_only(monkeypatch):
    monkeypatch.setenv("DESK_AUTH", "")  # recorded as unset before the test, so the prompted value goes after it
    monkeypatch.delenv("DESK_AUTH")
    monkeypatch.setenv("DESK_SIGN", "ALREADYSET1")
    asked = []

    def ask(prompt):
        asked.append(prompt)
        return "9753"

    assert prompt_for_pins({"auth": "DESK_AUTH", "sign": "DESK_SIGN"}, "desk-card", ask=ask) == ["auth"]
    assert os.environ["DESK_AUTH"] == "9753" and os.environ["DESK_SIGN"] == "ALREADYSET1"
    assert asked == ["auth PIN for desk-card (Enter to leave unset): "]


def test_ask_pins_without_a_terminal_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115 - closed with the test
    assert main(["run", "card", "--device", "virtual:card", "--ask-pins"]) == 2
    assert "--ask-pins needs a terminal" in capsys.readouterr().err
