"""harness.iso.redact: holder data and PINs masked in traces, returned values, free text and log records."""

import http.client
import http.server
import logging
import re
import threading

import pytest
from leak_scan import encodings
from robot.utils import format_assign_message

from devices import open_device
from devices.virtual.applets import basic_four_ef, my_number_ef, number_b
from devices.virtual.profile import PKI_DIR, HolderData, load_holder
from harness.channel import CardChannel
from harness.iso.redact import (
    MASK,
    RECENT_MAX_CHARS,
    RECENT_TEXTS,
    SECRETS,
    SHORT_SECRET,
    SHOW_HOLDER_DATA_ENV,
    ApduContext,
    HolderValue,
    SecretRegistry,
    describe_my_number,
    holds_secret,
    mask_secret_frames,
    redact_text,
    render_personal,
    secret_regex,
)
from harness.jpki import BasicFour, JpkiClient, PinKind
from harness.keywords import privacy
from harness.log_redaction import install_log_redaction
from harness.pin_guard import PinGuard
from harness.trace import ApduTrace

HOLDER = load_holder("card")
PERSONAL = [HOLDER.my_number, number_b(HOLDER), HOLDER.name, HOLDER.address, HOLDER.birth_date,
            *HOLDER.name.split("\u3000")]


def assert_no_holder_data(text: str) -> None:
    for value in PERSONAL:
        for encoding, needle, _ in encodings(value):
            assert needle not in text, f"{value!r} as {encoding} in {text[:200]}"


def test_my_number_file_shows_its_structure_and_length_only():
    shown = render_personal("My Number", my_number_ef(HOLDER))
    assert shown == f"[My Number] FF 10 0C {MASK}(12 bytes) FF FF"


def test_basic_four_shows_tags_lengths_and_offsets_only():
    shown = render_personal("basic four", basic_four_ef(HOLDER))
    assert shown.startswith("[basic four] FF 20 62 {DF 21 08 00 0E 00 20 00 56 00 61, DF 22 0F ****(15 bytes), ")
    assert "DF 25 01 ****(1 byte)" in shown
    assert_no_holder_data(shown)
    # a read of the header alone, or from an offset, shows no value byte either
    assert render_personal("basic four", basic_four_ef(HOLDER)[:4]) == "[basic four] FF 20 62 ****(1 byte) of 98"
    assert render_personal("basic four", basic_four_ef(HOLDER)[20:60], 20) == "[basic four at offset 20] ****(40 bytes)"


def _context_after(*commands: str) -> ApduContext:
    context = ApduContext()
    for command in commands:
        context.command(bytes.fromhex(command))
    return context


SELECT_TEXT = "00A4040C0AD3921000310001010408"
SELECT_JPKI = "00A4040C0AD392F000260100000001"
SELECT_VISUAL = "00A4040C0AD3921000310001010402"


def test_the_context_follows_selects_and_short_ef_identifiers():
    answer = my_number_ef(HOLDER) + b"\x90\x00"
    assert _context_after(SELECT_TEXT, "00A4020C020001", "00B0000011").response(answer).startswith("[My Number]")
    assert _context_after(SELECT_TEXT, "00B0810011").response(answer).startswith("[My Number]")  # SFI 1
    # T=0: the data come with GET RESPONSE after 61xx
    context = _context_after(SELECT_TEXT, "00A4020C020001", "00B0000011")
    assert context.response(b"\x61\x11") == "61 11"
    context.command(bytes.fromhex("00C0000011"))
    assert context.response(answer).startswith("[My Number]")
    # the same FIDs in the JPKI AP: EF 0002 is the sign CA (shown), EF 0001 the sign certificate (masked)
    ca = bytes.fromhex("3082010A0101") + b"\x90\x00"
    assert _context_after(SELECT_JPKI, "00A4020C020002", "00B0000006").response(ca) == "30 82 01 0A 01 01 90 00"
    assert _context_after(SELECT_JPKI, "00A4020C020001", "00B0000006").response(ca).startswith("[sign certificate")
    assert _context_after(SELECT_VISUAL, "00A4020C020002", "00B0000006").response(ca).startswith("[券面 data]")
    assert _context_after(SELECT_TEXT, "00A4020C020005", "00B0000006").response(ca) == "30 82 01 0A 01 01 90 00"


def test_a_trace_of_the_text_ap_on_the_virtual_card_holds_no_holder_datum():
    reader = open_device("virtual:card")
    try:
        reader.power_on()
        trace = ApduTrace()
        client = JpkiClient(CardChannel(reader, trace))
        guard = PinGuard(client, expendable=True, device="test-redact-trace")
        assert guard.verify(PinKind.TEXT, "2580").ok
        assert client.read_my_number() == HOLDER.my_number
        assert client.read_basic_four().name == HOLDER.name
        client.select_ef(0x0014)
        client.channel.transmit(b"\x00\x20\x00\x80\x0c" + HOLDER.my_number.encode())  # 照合番号A
        assert guard.verify(PinKind.SIGN, "TESTSIGN1").ok
        client.read_certificate("sign")  # its SubjectAltName carries the basic four
        text, html = trace.as_text(), trace.as_html()
    finally:
        reader.close()
    for shown in (text, html):
        assert_no_holder_data(shown)
        for pin in ("2580", "TESTSIGN1"):
            assert pin not in shown and pin.encode().hex(" ").upper() not in shown
    assert "[My Number] FF 10 0C ****(12 bytes) FF FF 90 00" in text
    assert "[basic four] FF 20 62 {DF 21 08" in text
    assert "00 20 00 80 0C **** 照合番号A, 12 bytes masked" in html
    assert "00 20 00 80 04 **** VERIFY text" in html  # the guard names its VERIFY; the data stay masked
    assert "[sign certificate (holder attributes)] 30 82" in text


def test_show_holder_data_lifts_the_trace_mask_but_not_the_pin():
    trace = ApduTrace(show_holder_data=True)
    for command in (SELECT_TEXT, "00A4020C020001", "00B0000011"):
        trace.command(bytes.fromhex(command))
    trace.response(my_number_ef(HOLDER) + b"\x90\x00", 0.1)
    trace.command(b"\x00\x20\x00\x80\x04" + b"2580")
    assert "31 32 33 34 35 36 37 38 39 30 31 38" in trace.as_text()
    assert "00 20 00 80 04 ****" in trace.as_text() and "2580" not in trace.as_text()


@pytest.mark.parametrize("line", [
    ">>> 0200200080043235383002 timeout=0.077",  # nfcpy: PCB, then the VERIFY
    "<<< b'106B 0300200080043235383002' from 127.0.0.1:4000",
    "send 02 00 20 00 80 04 32 35 38 30 03",  # a serial frame, spaced
    "CHANGE 00:24:01:80:04:37:30:33:35",
])
def test_verify_and_change_frames_in_any_hex_dump_are_masked(line):
    masked = mask_secret_frames(line)
    assert MASK in masked
    assert not any(pin in masked.replace(":", "").replace(" ", "") for pin in ("32353830", "37303335"))


def test_other_hex_dumps_stay_as_they_were():
    line = ">>> 0200A4040C0AD392F000260100000001 timeout=0.077"
    assert mask_secret_frames(line) == line


def test_known_values_are_masked_in_every_spelling_but_short_ones_only_as_words():
    registry = SecretRegistry()
    registry.add("2580", "auth PIN")
    registry.add(HOLDER.name, "name")
    text = ("pin 2580; at 10:12:25.125803; " + " | ".join(needle for _, needle, _ in encodings(HOLDER.name)))
    scrubbed = registry.scrub(text)
    assert "pin ****;" in scrubbed and "125803" in scrubbed
    for encoding, needle, _ in encodings(HOLDER.name):
        assert needle not in scrubbed, encoding
    registry.add("x", "one character")  # too short to tell from other text: ignored
    assert registry.scrub("x") == "x"


@pytest.mark.parametrize(("value", "haystack", "found"), [
    ("2580", "pin=2580;", True), ("2580", "2580", True), ("2580", "a92580f1", False), ("2580", "125803", False),
    ("2580", "ＰＩＮ2580", True),  # a full-width neighbour is no ASCII word character
    ("ABC1234", "xABC1234y", True),  # 6 characters and more: anywhere
    ("TESTSIGN1", "idTESTSIGN1x", True),
])
def test_masking_and_leak_checks_share_one_rule_for_short_values(value, haystack, found):
    """What a leak check calls a leak (holds_secret, also on bytes) is exactly what the masking hides."""
    assert holds_secret(haystack, value) is found
    assert holds_secret(haystack.encode("utf-8"), value) is found
    registry = SecretRegistry()
    registry.add(value, "secret")
    assert (registry.scrub(haystack) != haystack) is found
    assert (len(value) < SHORT_SECRET) is (secret_regex(value) != re.escape(value))


def test_a_holder_value_compares_as_its_value_and_logs_as_a_description():
    value = HolderValue(HOLDER.my_number, "My Number", describe_my_number(HOLDER.my_number, HOLDER.my_number, "card"))
    assert value == HOLDER.my_number and value == HolderValue(HOLDER.my_number, "x", "y")
    assert value != "123456789019"
    logged = format_assign_message("${number}", value)
    assert logged == "${number} = <My Number: 12 digits, check digit valid, matches holder 'card'>"
    assert HOLDER.my_number not in f"{value} {value!r} {value:>40} {[value]}"
    assert describe_my_number("123456789019", HOLDER.my_number, "card") == (
        "12 digits, check digit WRONG, differs from holder 'card'")


def test_basic_four_value_names_each_field_and_whether_it_matches():
    basic = BasicFour(HOLDER.name, HOLDER.address, HOLDER.birth_date, HOLDER.sex)
    value = privacy.basic_four_value(basic, HOLDER)
    assert value == basic
    assert str(value) == ("<basic four: name: 5 characters, matches holder 'card'; address: 17 characters, matches "
                          "holder 'card'; birth date: 8 characters, matches holder 'card'; sex: 1 characters, "
                          "matches holder 'card'>")


def test_the_mask_lifts_only_for_synthetic_holders_and_only_when_asked(monkeypatch):
    real = HolderData(**{**HOLDER.__dict__, "synthetic": False, "record": "desk3"})
    monkeypatch.delenv(SHOW_HOLDER_DATA_ENV, raising=False)
    assert not privacy.may_show(HOLDER) and not privacy.may_show(real)
    monkeypatch.setenv(SHOW_HOLDER_DATA_ENV, "1")
    assert privacy.may_show(HOLDER) and not privacy.may_show(real) and not privacy.may_show(None)
    assert not privacy.my_number_value(HOLDER.my_number, real).revealed
    assert str(privacy.my_number_value(HOLDER.my_number, HOLDER)) == HOLDER.my_number


def test_third_party_log_records_are_redacted_at_every_level():
    install_log_redaction()
    privacy.register_holder(HOLDER)
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("nfc.clf.udp")  # a child: a filter on "nfc" alone would not see it
    handler, level = Keep(1), logger.level
    logger.addHandler(handler)
    logger.setLevel(1)
    try:
        logger.log(logging.DEBUG - 1, ">>> %s to %s:%s", "106B 020020008004" + b"2580".hex(), "127.0.0.1", 4000)
        logger.debug("<<< %s", (b"\x02" + my_number_ef(HOLDER) + b"\x90\x00").hex())
        logger.warning("card said %r", HOLDER.name.encode())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert len(records) == 3 and all(MASK in r for r in records)
    assert_no_holder_data("\n".join(records))
    assert "32353830" not in "\n".join(records)


def test_http_client_debug_output_is_redacted(capsys):
    install_log_redaction()
    SECRETS.add("2580", "auth PIN")

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=5)
        connection.set_debuglevel(1)
        connection.request("POST", "/verify", body=f'{{"pin": "2580", "name": "{HOLDER.name}"}}'.encode())
        assert connection.getresponse().status == 204
        connection.close()
        thread.join(5)
    finally:
        server.server_close()
    out = capsys.readouterr().out
    assert "send:" in out and MASK in out
    assert "2580" not in out and redact_text(out) == out


def test_a_raw_read_of_a_personal_file_returns_a_response_that_prints_its_structure_only():
    reader = open_device("virtual:card")
    try:
        reader.power_on()
        channel = CardChannel(reader, ApduTrace())
        client = JpkiClient(channel)
        assert PinGuard(client, expendable=True, device="test-redact-raw").verify(PinKind.TEXT, "2580").ok
        client.select_ef(0x0001)
        response = client.read_binary(0, 17)
        client.select_jpki()
        client.select_ef(0x0006)  # the token label: a free file, printed as usual
        free = client.read_binary(0, 4)
    finally:
        reader.close()
    assert response.data == my_number_ef(HOLDER) and response.ok  # the caller still gets the bytes
    shown = format_assign_message("${r}", response)
    assert shown == "${r} = ResponseApdu([My Number] FF 10 0C ****(12 bytes) FF FF, SW 9000)"
    assert HOLDER.my_number not in f"{response} {response!r}"
    assert "data=b'JPKI'" in repr(free)


def test_a_sign_certificate_read_masks_its_holder_attributes_from_then_on(monkeypatch):
    monkeypatch.delenv(SHOW_HOLDER_DATA_ENV, raising=False)
    revoked = load_holder("revoked")
    values = (revoked.name, revoked.address, revoked.birth_date)
    SECRETS.discard(values)
    assert not any(value in SECRETS for value in values)
    privacy.register_certificate_holder((PKI_DIR / "revoked-sign.der").read_bytes(), None)  # no holder record
    assert all(value in SECRETS for value in values)
    assert "TESTCARD000000000000099" not in SECRETS
    privacy.register_certificate_holder((PKI_DIR / "card-auth.der").read_bytes(), None)  # the auth CN is no name
    assert "TESTCARD000000000000001" not in SECRETS


def test_a_registry_keeps_recent_answers_only_for_the_values_it_had_then():
    """A text scrubbed before a value was registered is masked once the value is known (and shown again once
    it is discarded): the kept answers belong to one set of values."""
    registry = SecretRegistry()
    registry.add("19800401", "birth date")
    text = "holder 19800401, PIN 7035 as 37303335"
    assert registry.scrub(text) == f"holder {MASK}, PIN 7035 as 37303335"
    registry.add("7035", "auth PIN")
    assert registry.scrub(text) == f"holder {MASK}, PIN {MASK} as {MASK}"
    assert registry.scrub(text) == f"holder {MASK}, PIN {MASK} as {MASK}"  # a kept answer, the same
    registry.discard(["7035"])
    assert registry.scrub(text) == f"holder {MASK}, PIN 7035 as 37303335"
    for index in range(RECENT_TEXTS * 2):  # bounded: the kept answers never pass RECENT_TEXTS
        registry.scrub(f"line {index}")
        assert len(registry._recent) <= RECENT_TEXTS
    long_text = "x" * RECENT_MAX_CHARS + " 7035 19800401"
    assert registry.scrub(long_text) == "x" * RECENT_MAX_CHARS + f" 7035 {MASK}"
    assert long_text not in registry._recent  # a long text is masked every time, never kept


@pytest.mark.parametrize("text", [
    "PIN 7035 in a dump 37 30 33 35 and 70357035 and x7035",  # one value, three spellings, two non-words
    "sign TESTSIGN1 as 54455354534947 4E31 and 54 45 53 54 53 49 47 4E 31, auth 7035",  # both values
    "70350 7035 TESTSIGN12 TESTSIGN1",  # one literal inside a longer word, the other as a prefix
    "no value here at all, only 3730 and TESTSIGN",
])
def test_a_text_is_scanned_for_the_values_it_holds_with_the_whole_patterns_result(text):
    """scrub tries only the alternatives whose literal the text holds: the result is the whole alternation's."""
    registry = SecretRegistry()
    for value, label in (("7035", "auth PIN"), ("TESTSIGN1", "sign password"), ("19800401", "birth date")):
        registry.add(value, label)
    whole, _, _ = registry._compiled()
    assert registry.scrub(text) == whole.sub(MASK, text)
    assert registry.scrub(text) == whole.sub(MASK, text)  # the kept answer too
    assert (MASK in registry.scrub(text)) == ("no value" not in text)


def _spans_byte_by_byte(data: bytes) -> list[tuple[int, int]]:
    """The reference: every offset tried as a VERIFY/CHANGE header, the data of one found skipped."""
    spans, i = [], 0
    while i + 5 < len(data):
        cla, ins, p1, lc = data[i], data[i + 1], data[i + 2], data[i + 4]
        if cla & 0xF0 == 0 and ins in (0x20, 0x24) and p1 in (0, 1) and 0 < lc <= 64:
            spans.append((i + 5, min(len(data), i + 5 + lc)))
            i = spans[-1][1]
            continue
        i += 1
    return spans


def test_the_secret_spans_of_a_dump_are_those_a_byte_by_byte_scan_finds():
    """The spans are found from the instruction bytes (bytes.find); headers that overlap, chain or run past the
    end must give what trying every offset gives."""
    import random

    from harness.iso.redact import _secret_spans

    rng = random.Random(2026)
    dense = bytes([0x00, 0x01, 0x02, 0x04, 0x20, 0x24, 0x40, 0x80, 0xFF])
    for trial in range(20000):
        size = rng.randrange(0, 48)
        data = bytes(rng.choice(dense) for _ in range(size)) if trial % 2 else rng.randbytes(size)
        assert _secret_spans(data) == _spans_byte_by_byte(data), data.hex()
    assert _secret_spans(bytes.fromhex("00200080043132333400240001083132")) == [(5, 9), (14, 16)]  # cut at the end
