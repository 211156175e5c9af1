"""The lab inventory: names → URIs and card facts; malformed files give one line with file and line."""

import pytest

from devices.virtual.profile import REPO_ROOT
from harness.lab import InventoryError, load_inventory, resolve

EXAMPLE = REPO_ROOT / "fixtures" / "lab" / "example.toml"


def test_example_inventory_loads_and_resolves_names():
    inventory = load_inventory(EXAMPLE)
    uri, device = resolve("desk3-acr1252", inventory)
    assert uri == "pcsc:ACS ACR1252" and device is not None
    assert device.expendable is False and device.kind == "card"
    assert resolve("virtual:card", inventory) == ("virtual:card", None)


def test_pins_come_from_the_named_environment_variables(monkeypatch):
    device = load_inventory(EXAMPLE).get("desk3-acr1252")
    monkeypatch.setenv("DESK3_AUTH_PIN", "9753")
    facts = device.facts()
    assert facts.pin("auth", "desk3") == "9753"
    assert not facts.expendable
    assert facts.expected_certificates["auth"].name == "card-auth.der"
    monkeypatch.delenv("DESK3_SIGN_PIN", raising=False)
    monkeypatch.delenv("HIL_SIGN_PIN", raising=False)
    with pytest.raises(LookupError, match="no sign PIN for desk3"):
        facts.pin("sign", "desk3")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[devices.a]\nuri = \n", r"bad\.toml:2: not valid TOML: "),
        ("[devices.a]\ndescription = 'x'\n", r"bad\.toml:1: device 'a': missing 'uri'"),
        ("# lab\n\n[devices.b]\nuri = 'virtual:card'\ncontactless = 'yes'\n",
         r"bad\.toml:5: device 'b': contactless must be true or false, got text 'yes'"),
        ("[devices.c]\nuri = 'pcsc:x'\n[devices.c.card]\nkind = 'tablet'\n", r"bad\.toml:4: .*card\.kind must be"),
        ("[devices.d]\nuri = 'pcsc:x'\nspeed = 3\n", r"bad\.toml:3: device 'd': unknown key speed; known: uri,"),
        ("[devices.e]\nuri = 'pcsc:x'\n[devices.e.card]\nholder = 'nobody'\n", r"no holder 'nobody'"),
        ("title = 'empty'\n", r"no \[devices\.<name>\] tables"),
    ],
)
def test_malformed_inventories_fail_with_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError, match=message) as excinfo:
        load_inventory(path)
    assert "\n" not in str(excinfo.value)


def test_missing_and_binary_inventory_files(tmp_path):
    with pytest.raises(InventoryError, match="not found"):
        load_inventory(tmp_path / "none.toml")
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(binary)
