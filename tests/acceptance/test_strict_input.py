"""Every bad input at the command line gets exactly one line naming the file and line (or the option) and exit 2,
through ``hil``'s own ``main`` (forked warm by ``tests/hil_forkserver.py``, whose tests hold it to the real
command's output and exit), before anything runs.

A case names the input file it writes (``{F}`` in the arguments and the expected line is its path) and the
exact line ``hil`` must print on stderr.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

import pytest
from hil_forkserver import hil_command

from devices.virtual.profile import REPO_ROOT, available_profiles

KIOSK = (REPO_ROOT / "fixtures" / "protocols" / "kiosk.toml").read_text("utf-8")
HOLDERS = REPO_ROOT / "fixtures" / "pki" / "holders.toml"
CARD_KEYS = "known: kind, expendable, holder, pin_env, pin_reserve"
VIRTUAL_KNOWN = "known: via, expendable, sign_delay_ms, terminal, extended, max_response, timeout"
SERIAL_KNOWN = ("known: protocol, baudrate, bytesize, parity, stopbits, exclusive, ack_timeout, response_timeout, "
                "apdu_timeout, inter_byte_timeout, retries, terminal")
FLAG_HELP = "use 1 or 0 (or true/false, yes/no, on/off)"


def inventory(card: str = "", device: str = "", uri: str = "pcsc:ACS") -> str:
    """A one-device inventory: line 1 ``[devices.desk]``, 2 ``uri``, then ``device`` lines, then the card table."""
    text = f"[devices.desk]\nuri = '{uri}'\n{device}"
    return text + (f"[devices.desk.card]\n{card}" if card else "")


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    line: str
    file: str | bytes | None = None
    env: dict[str, str] = field(default_factory=dict)


RUN_INV = ("run", "card", "--inventory", "{F}")

CASES: dict[str, Case] = {
    # -- the lab inventory ------------------------------------------------------------------------------
    "inventory: unknown key in the card table": Case(
        RUN_INV, f"{{F}}:4: device 'desk': unknown key card.expandable; {CARD_KEYS}",
        inventory("expandable = true\n")),
    "inventory: unknown key in the device table": Case(
        RUN_INV, "{F}:3: device 'desk': unknown key speed; known: uri, description, contactless, extended_apdu, "
                   "pin_pad, pool, card", inventory(device="speed = 3\n")),
    "inventory: unknown top-level key": Case(
        RUN_INV, "{F}:1: unknown top-level key title; an inventory holds only [devices.<name>]",
        "title = 'lab'\n" + inventory()),
    "inventory: expendable = flase": Case(
        RUN_INV, "{F}:4: not valid TOML: Invalid value (column 14)", inventory("expendable = flase\n")),
    "inventory: expendable as a string": Case(
        RUN_INV, "{F}:4: device 'desk': card.expendable must be true or false, got text 'false'",
        inventory('expendable = "false"\n')),
    "inventory: expendable as a number": Case(
        RUN_INV, "{F}:4: device 'desk': card.expendable must be true or false, got integer 0",
        inventory("expendable = 0\n")),
    "inventory: pin_reserve zero": Case(
        RUN_INV, "{F}:4: device 'desk': card.pin_reserve.auth must be a whole number 1-16 (tries the guard "
                   "always leaves), got integer 0", inventory("pin_reserve = { auth = 0 }\n")),
    "inventory: pin_reserve negative": Case(
        RUN_INV, "{F}:4: device 'desk': card.pin_reserve.sign must be a whole number 1-16 (tries the guard "
                   "always leaves), got integer -1", inventory("pin_reserve = { sign = -1 }\n")),
    "inventory: pin_reserve boolean": Case(
        RUN_INV, "{F}:4: device 'desk': card.pin_reserve.auth must be a whole number 1-16 (tries the guard "
                   "always leaves), got boolean true", inventory("pin_reserve = { auth = true }\n")),
    "inventory: pin_reserve string": Case(
        RUN_INV, "{F}:4: device 'desk': card.pin_reserve.auth must be a whole number 1-16 (tries the guard "
                   "always leaves), got text '2'", inventory("pin_reserve = { auth = '2' }\n")),
    "inventory: pin_reserve of an unknown PIN": Case(
        RUN_INV, "{F}:4: device 'desk': unknown key card.pin_reserve.pin; known: auth, sign, text",
        inventory("pin_reserve = { pin = 2 }\n")),
    "inventory: pin_env not a variable name": Case(
        RUN_INV, "{F}:4: device 'desk': card.pin_env.auth must name an environment variable (letters, digits, "
                   "_), got text 'MY PIN'", inventory("pin_env = { auth = 'MY PIN' }\n")),
    "inventory: unknown holder": Case(
        RUN_INV, f"{{F}}:4: device 'desk': card.holder: {HOLDERS}: no holder 'nobody'; known: card, phone, revoked",
        inventory("holder = 'nobody'\n")),
    "inventory: card is a number": Case(
        RUN_INV, "{F}:3: device 'desk': card must be a table, got integer 5", inventory(device="card = 5\n")),
    "inventory: uri is an array": Case(
        RUN_INV, "{F}:2: device 'desk': uri must be text, got array", "[devices.desk]\nuri = ['pcsc:ACS']\n"),
    "inventory: URI with a typo": Case(
        RUN_INV, f"{{F}}:2: device 'desk': uri: virtual:card?extened=0: unknown option extened for the in-process "
                   f"card; {VIRTUAL_KNOWN}", inventory(uri="virtual:card?extened=0")),
    "inventory: deeply nested arrays": Case(
        RUN_INV, "{F}: arrays or tables nested too deeply for an inventory",
        inventory(device="description = " + "[" * 3000 + "]" * 3000 + "\n")),
    "inventory: larger than the limit": Case(
        RUN_INV, "{F}: larger than 4 MiB, the limit for an inventory; is this the right file?",
        inventory() + "# " + "x" * (4 << 20) + "\n"),
    "inventory: not UTF-8": Case(RUN_INV, "{F}: not UTF-8 text (invalid start byte at byte 0)", b"\xff\xfe["),
    "inventory: a directory": Case(RUN_INV, "{D}: is a directory, not an inventory file"),
    "HIL_INVENTORY: missing file": Case(
        ("run", "card", "--device", "desk"), "$HIL_INVENTORY: /nonexistent/lab.toml: inventory file not found",
        env={"HIL_INVENTORY": "/nonexistent/lab.toml"}),
    "HIL_INVENTORY: a directory": Case(
        ("run", "card", "--device", "desk"), "$HIL_INVENTORY: {D}: is a directory, not an inventory file",
        env={"HIL_INVENTORY": "{D}"}),
    # -- device URIs ----------------------------------------------------------------------------------------
    "uri: virtual unknown option": Case(
        ("run", "card", "--device", "virtual:card?bogus=1"),
        f"virtual:card?bogus=1: unknown option bogus for the in-process card; {VIRTUAL_KNOWN}"),
    "uri: virtual typo extened": Case(
        ("run", "card", "--device", "virtual:card?extened=0"),
        f"virtual:card?extened=0: unknown option extened for the in-process card; {VIRTUAL_KNOWN}"),
    "uri: virtual flag not on/off": Case(
        ("run", "card", "--device", "virtual:card?extended=maybe"),
        f"virtual:card?extended=maybe: option extended='maybe' is not on/off; {FLAG_HELP}"),
    "uri: virtual option the bridge would ignore": Case(
        ("run", "card", "--device", "virtual:card?via=nfc&t0=1"),
        "virtual:card?via=nfc&t0=1: unknown option t0 for via=nfc; known: via, expendable, sign_delay_ms, terminal, "
        "extended, max_response"),
    "uri: virtual meaningless exclusive": Case(
        ("run", "card", "--device", "virtual:card?via=kiosk&transport=rfc2217&exclusive=0"),
        "virtual:card?via=kiosk&transport=rfc2217&exclusive=0: option exclusive means nothing with "
        "transport=rfc2217 (only a local pty is locked)"),
    "uri: virtual timeout out of range": Case(
        ("run", "card", "--device", "virtual:card?timeout=0"),
        "virtual:card?timeout=0: option timeout='0' is outside 0.001..3600"),
    "uri: option given twice": Case(
        ("run", "card", "--device", "virtual:card?extended=0&extended=1"),
        "virtual:card?extended=0&extended=1: option extended given twice ('0' and '1')"),
    "uri: unknown via": Case(
        ("run", "card", "--device", "virtual:card?via=pc"),
        "virtual:card?via=pc: unknown via='pc'; known: in-process (no via), pcsc, nfc, kiosk, stb, serial"),
    "uri: pcsc unknown option": Case(
        ("run", "card", "--device", "pcsc:ACS?bogus=1"),
        "pcsc:ACS?bogus=1: unknown option bogus; known: get_response, resend_6c, extended, reset, share, terminal"),
    "uri: pcsc bad choice": Case(
        ("run", "card", "--device", "pcsc:ACS?share=everyone"),
        "pcsc:ACS?share=everyone: option share='everyone'; use shared or exclusive"),
    "uri: nfc unknown option": Case(
        ("run", "card", "--device", "nfc:usb?extened=0"),
        "nfc:usb?extened=0: unknown option extened; known: targets, extended, max_response, serial, bit_rate, "
        "terminal"),
    "uri: nfc off is a flag too": Case(
        ("run", "card", "--device", "nfc:usb?extended=of"),
        f"nfc:usb?extended=of: option extended='of' is not on/off; {FLAG_HELP}"),
    "uri: serial unknown option": Case(
        ("run", "card", "--device", "serial:/dev/ttyUSB0?protocol=kiosk&colour=blue"),
        f"serial:/dev/ttyUSB0?protocol=kiosk&colour=blue: unknown option colour for serial; {SERIAL_KNOWN}"),
    "uri: rfc2217 retries out of range": Case(
        ("run", "card", "--device", "rfc2217://127.0.0.1:4000?protocol=stb&retries=99"),
        "rfc2217://127.0.0.1:4000?protocol=stb&retries=99: option retries='99' is outside 0..10"),
    "uri: socket exclusive is meaningless": Case(
        ("run", "card", "--device", "socket://127.0.0.1:4001?protocol=kiosk&exclusive=1"),
        "socket://127.0.0.1:4001?protocol=kiosk&exclusive=1: option exclusive means nothing for socket:// "
        "(only a local tty is locked)"),
    # -- protocol files, named by a device URI ---------------------------------------------------------------
    "protocol: unknown key": Case(
        ("run", "card", "--device", "serial:/dev/ttyUSB0?protocol={F}"),
        "serial:/dev/ttyUSB0?protocol={F}: {F}:36: [timing] retrys is not a known key (known: ack_timeout, "
        "response_timeout, apdu_timeout, inter_byte_timeout, retries)",
        KIOSK.replace("\nretries = 3 ", "\nretrys = 3 ")),
    "protocol: wrong type": Case(
        ("run", "card", "--device", "serial:/dev/ttyUSB0?protocol={F}"),
        "serial:/dev/ttyUSB0?protocol={F}: {F}:26: [serial] baudrate must be int, got 'fast'",
        KIOSK.replace("baudrate = 38400", 'baudrate = "fast"')),
    "protocol: out of range": Case(
        ("run", "card", "--device", "virtual:card?via=serial&protocol={F}"),
        "virtual:card?via=serial&protocol={F}: {F}:36: [timing] retries 99 is outside 0..10",
        KIOSK.replace("\nretries = 3 ", "\nretries = 99 ")),
    "protocol: deeply nested": Case(
        ("run", "card", "--device", "serial:/dev/ttyUSB0?protocol={F}"),
        "serial:/dev/ttyUSB0?protocol={F}: {F}: arrays or tables nested too deeply for a protocol file",
        KIOSK.replace("[serial]\n", "[serial]\nx = " + "[" * 3000 + "]" * 3000 + "\n")),
    # -- hil virtual serve -------------------------------------------------------------------------------------
    "serve: two modes at once": Case(
        ("virtual", "serve", "card", "--pcsc", "--nfc-udp", "54321"),
        "hil virtual serve: error: argument --nfc-udp: not allowed with argument --pcsc"),
    "serve: port out of range": Case(
        ("virtual", "serve", "card", "--nfc-udp", "99999"),
        "hil virtual serve: error: argument --nfc-udp: '99999' is not a port (0-65535)"),
    "serve: --port without --pcsc": Case(
        ("virtual", "serve", "card", "--nfc-udp", "54321", "--port", "35963"),
        "--port is the vpcd port of --pcsc; give --pcsc too, or drop --port"),
    "serve: --rfc2217 without --serial": Case(
        ("virtual", "serve", "card", "--pcsc", "--rfc2217", "0"),
        "--rfc2217 serves a --serial reader module; give --serial PROTOCOL too, or drop --rfc2217"),
    "serve: unknown profile": Case(
        ("virtual", "serve", "tablet", "--nfc-udp", "54321"),
        f"no card profile 'tablet'; known: {', '.join(available_profiles())} (or a .toml path)"),
    "serve: broken protocol file": Case(
        ("virtual", "serve", "card", "--serial", "{F}"),
        "{F}:26: [serial] baudrate must be int, got 'fast'", KIOSK.replace("baudrate = 38400", 'baudrate = "fast"')),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_line_and_exit_2(name, tmp_path):
    case = CASES[name]
    path = tmp_path / "input.toml"
    if isinstance(case.file, bytes):
        path.write_bytes(case.file)
    elif case.file is not None:
        path.write_text(case.file, encoding="utf-8")
    elif "{F}" in " ".join(case.args):
        path = tmp_path  # the input is a directory

    def fill(text: str) -> str:
        return text.replace("{F}", str(path)).replace("{D}", str(tmp_path))

    env = {**os.environ, **{key: fill(value) for key, value in case.env.items()}}
    if "HIL_INVENTORY" not in case.env:
        env.pop("HIL_INVENTORY", None)
    proc = subprocess.run([*hil_command(), *map(fill, case.args)], capture_output=True, text=True, timeout=60, env=env,
                          cwd=tmp_path, check=False)
    expected = fill(case.line)
    if not expected.startswith("hil virtual serve: error: "):
        expected = "hil: error: " + expected
    assert (proc.returncode, proc.stderr) == (2, expected + "\n")
    assert proc.stdout == ""
    assert not (tmp_path / "results").exists()  # nothing ran
