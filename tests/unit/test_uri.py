"""The one device-URI grammar: options, the on/off parser, and every backend honouring the same spellings."""

import pytest

from devices import open_device
from devices.nfc.uri import parse_nfc_uri
from devices.pcsc.reader import reader_options
from devices.registry import check_uri
from devices.serial.reader import parse_serial_uri
from devices.uri import FALSE_WORDS, TRUE_WORDS, BadDeviceUri, DeviceUri, Option, parse_flag
from devices.virtual.reader import virtual_options


def test_a_uri_splits_into_scheme_body_and_decoded_options():
    parsed = DeviceUri.parse("pcsc:Virtual%20PCD?reset=warm&share=exclusive&x=a%26b")
    assert (parsed.scheme, parsed.body) == ("pcsc", "Virtual%20PCD")
    assert dict(parsed.options) == {"reset": "warm", "share": "exclusive", "x": "a&b"}
    assert dict(DeviceUri.parse("rfc2217://h:1?ign_set_control").options) == {"ign_set_control": ""}


@pytest.mark.parametrize("word", [*TRUE_WORDS, *FALSE_WORDS, "ON", " Off ", "Yes", "FALSE"])
def test_every_on_off_spelling_parses(word):
    assert parse_flag(word, "x") is (word.strip().lower() in TRUE_WORDS)


@pytest.mark.parametrize("word", ["", "2", "maybe", "of", "nein", "-1", "0.0"])
def test_anything_else_is_not_a_flag(word):
    with pytest.raises(BadDeviceUri, match=rf"option x={word!r} is not on/off; use 1 or 0"):
        parse_flag(word, "x")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("virtual:card?a=1&a=2", "option a given twice ('1' and '2')"),
        ("virtual:card?=1", "an option without a name ('=1')"),
        ("virtual:card\n?x=1", "'virtual:card\\n?x=1': a device name has no control characters"),
        (":card", "is not a device URI"),
        ("virtual:" + "x" * 5000, "too long"),
    ],
)
def test_malformed_names_are_one_line(uri, message):
    with pytest.raises(BadDeviceUri) as caught:
        DeviceUri.parse(uri)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_repeat_with_the_same_value_is_no_conflict():
    assert dict(DeviceUri.parse("virtual:card?via=pcsc&t0=1&t0=1").options) == {"via": "pcsc", "t0": "1"}


@pytest.mark.parametrize(
    ("option", "value", "result"),
    [
        (Option("n", "int", low=1, high=10), "7", 7),
        (Option("n", "float", low=0.001, high=5), "0.5", 0.5),
        (Option("c", "choice", choices=("cold", "warm")), " Warm", "warm"),
        (Option("e", "auto_flag"), "auto", None),
        (Option("e", "auto_flag"), "off", False),
        (Option("b", "bare"), "", ""),
    ],
)
def test_option_values_convert(option, value, result):
    assert option.convert(value, "dev:x") == result


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (Option("n", "int", low=1, high=10), "11", "option n='11' is outside 1..10"),
        (Option("n", "int"), "1e3", "option n='1e3' is not a whole number"),
        (Option("n", "int"), "9" * 40, "is not a whole number"),
        (Option("t", "float", low=0.001), "nan", "option t='nan' is not a finite number"),
        (Option("t", "float"), "soon", "option t='soon' is not a number"),
        (Option("c", "choice", choices=("cold", "warm")), "hot", "option c='hot'; use cold or warm"),
        (Option("p", "text"), " ", "option p= needs a value"),
    ],
)
def test_bad_option_values_are_refused(option, value, message):
    with pytest.raises(BadDeviceUri, match=message):
        option.convert(value, "dev:x")


def test_off_means_off_on_every_backend():
    """It used to work for virtual: and be read as on by nfc: and the virtual NFC bridge."""
    assert open_device("virtual:card?extended=off").capabilities.extended_apdu is False
    assert parse_nfc_uri("nfc:usb?extended=off").extended is False
    assert parse_nfc_uri("nfc:usb?extended=No").extended is False
    assert reader_options({"get_response": "off", "extended": "no"}, "pcsc:x")["get_response"] is False
    assert virtual_options("virtual:card?via=nfc&extended=off")[1]["extended"] == "0"  # what the bridge reads
    assert virtual_options("virtual:card?via=pcsc&t0=yes")[1]["t0"] == "1"
    assert parse_serial_uri("serial:/dev/ttyS0?protocol=kiosk&exclusive=off")[2]["exclusive"] == "off"
    check_uri("serial:/dev/ttyS0?protocol=kiosk&exclusive=off")


def test_the_documented_names_all_pass_the_check():
    for uri in ["virtual:card", "virtual:card?extended=0", "virtual:card?via=pcsc", "virtual:phone?via=nfc",
                "virtual:card?via=pcsc&t0=1", "virtual:card?timeout=1&sign_delay_ms=3000",
                "virtual:card?expendable=0", "pcsc:ACS?get_response=0&resend_6c=0", "pcsc:ACS?share=exclusive",
                "nfc:usb", "nfc:usb:054c:06c3", "nfc:tty:USB0:pn532", "nfc:udp:127.0.0.1:54321",
                "serial:/dev/ttyUSB0?protocol=kiosk", "rfc2217://127.0.0.1:4000?protocol=stb&ign_set_control",
                "socket://127.0.0.1:4001?protocol=kiosk", "virtual:card?via=kiosk",
                "virtual:phone?via=stb&transport=rfc2217", "virtual:card?via=serial&protocol=line",
                "virtual:card?via=stb&terminal=stb", "serial:/dev/ttyUSB0?protocol=kiosk&terminal=kiosk"]:
        check_uri(uri)


@pytest.mark.nfc
def test_the_nfc_bridge_honours_off():
    with open_device("virtual:card?via=nfc&extended=off") as reader:
        assert reader.capabilities.extended_apdu is False
