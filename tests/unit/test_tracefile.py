"""Trace files: command names, PIN markers, holder data masked or anonymised, every exchange of a real reader."""

import json
from pathlib import Path

import pytest

from devices import open_device
from harness.anonymise import ANONYMOUS, Anonymiser, fitted
from harness.iso import tlv
from harness.iso.apdu_names import character_class, command_hex, command_name, placeholder, secret_marker
from harness.tracefile import CURRENT, TraceWriter, attach, file_name, read_trace

SELECT_JPKI = "00A4040C0AD392F000260100000001"
SELECT_TEXT = "00A4040C0AD3921000310001010408"
PROFILE_AUTH_PIN = "2580"  # fixtures/cards/card.toml: a test value of the virtual card


def send(reader, *apdus: str) -> list[bytes]:
    return [reader.transmit(bytes.fromhex(a.replace(" ", ""))) for a in apdus]


@pytest.mark.parametrize(("apdu", "applet", "name"), [
    (SELECT_JPKI, None, "SELECT AID"), ("00A4020C020018", "jpki", "SELECT EF"), ("00B0000004", "jpki", "READ BINARY"),
    ("0020008004" + "31323334", "jpki", "VERIFY"), ("00200080", "jpki", "VERIFY (retry query)"),
    ("80 2A 00 80 03 010203", "jpki", "PSO: COMPUTE DIGITAL SIGNATURE"), ("0084000008", "jpki", "GET CHALLENGE"),
    ("002A9E9A03010203", "other", "PSO: COMPUTE DIGITAL SIGNATURE"), ("00C0000010", None, "GET RESPONSE"),
    ("80EE0000", None, "INS EE (proprietary)"),
])
def test_commands_are_named_from_ins_and_applet(apdu, applet, name):
    assert command_name(bytes.fromhex(apdu.replace(" ", "")), applet) == name


def test_a_pin_becomes_a_marker_of_its_length_and_class():
    assert command_hex(bytes.fromhex("0020008004") + b"2580") == "00 20 00 80 04 ****(4 digits)"
    assert command_hex(bytes.fromhex("0020008009") + b"TESTSIGN1") == "00 20 00 80 09 ****(9 A-Z0-9)"
    assert secret_marker(b"abc") == "****(3 letters and digits)"
    assert secret_marker(b"\x01\x02") == "****(2 bytes)"
    assert command_hex(bytes.fromhex("00A4020C020018")) == "00 A4 02 0C 02 00 18"
    for length, cls in ((4, "digits"), (9, "A-Z0-9"), (3, "letters and digits")):
        assert character_class(placeholder(length, cls).encode()) == cls and len(placeholder(length, cls)) == length


def test_device_names_become_file_names():
    assert file_name("virtual:card?via=pcsc") == "virtual-card-via-pcsc.jsonl"
    assert file_name("pcsc:ACS ACR39U 00 00") == "pcsc-ACS-ACR39U-00-00.jsonl"


def traced(tmp_path: Path, holder_data: str = "masked", anonymiser=None) -> tuple[object, Path]:
    reader = open_device("virtual:card")
    path = tmp_path / "traces" / "virtual-card.jsonl"
    writer = TraceWriter(path, "virtual:card", holder_data, anonymiser)
    attach(reader, writer)
    reader.wait_for_card(1)
    reader.power_on()
    writer.open({"kind": "card"})
    return reader, path


def test_every_exchange_is_a_line_with_test_requirement_name_sw_and_time(tmp_path):
    reader, path = traced(tmp_path)
    CURRENT.begin("Suite.A Test", ["card", "jpki-pin-004"])
    try:
        send(reader, SELECT_JPKI, "00A4020C020018", "0020008004" + PROFILE_AUTH_PIN.encode().hex(), "00B0000004")
    finally:
        CURRENT.end()
    reader.close()
    records = read_trace(path)
    assert [r["type"] for r in records][:2] == ["header", "power_on"]  # the power-on waited for the header
    assert records[1]["atr"].startswith("3B")
    exchanges = [r for r in records if r["type"] == "exchange"]
    assert [e["name"] for e in exchanges] == ["SELECT AID", "SELECT EF", "VERIFY", "READ BINARY"]
    verify = exchanges[2]
    assert verify["command"] == "00 20 00 80 04 ****(4 digits)" and verify["sw"] == "9000"
    assert verify["test"] == "Suite.A Test" and verify["requirement"] == "JPKI-PIN-004"
    assert verify["applet"] == "jpki" and verify["sw_name"] == "OK" and verify["ms"] >= 0 and verify["sent"]
    assert exchanges[3]["sw"] == "6981"  # the PIN EF itself cannot be read
    assert PROFILE_AUTH_PIN.encode().hex(" ").upper() not in path.read_text("utf-8")


@pytest.fixture
def holder_shown():
    """What ``--show-holder-data`` does for the synthetic holder: its values leave the process-wide mask
    (another test of this process may have put them there), and come back afterwards."""
    from devices.virtual.profile import load_holder
    from harness.iso.redact import SECRETS
    from harness.keywords.privacy import holder_values

    values = list(holder_values(load_holder("card")).values())
    masked = [value for value in values if value in SECRETS]
    SECRETS.discard(values)
    yield
    for value in masked:
        SECRETS.add(value, "holder card (restored after the test)")


def test_holder_files_are_masked_unless_shown_or_anonymised(tmp_path, holder_shown):
    read_my_number = (SELECT_TEXT, "00A4020C020011", "0020008004" + PROFILE_AUTH_PIN.encode().hex(),
                      "00A4020C020001", "00B0000011")
    answers = {}
    for mode in ("masked", "shown", "anonymised"):
        reader, path = traced(tmp_path / mode, mode, Anonymiser() if mode == "anonymised" else None)
        raw = send(reader, *read_my_number)[-1]
        reader.close()
        answers[mode] = (raw, [r for r in read_trace(path) if r["type"] == "exchange"][-1])
    raw, masked = answers["masked"]
    assert masked["masked"] is True and masked["response"].startswith("[My Number] FF 10 0C ****(12 bytes)")
    assert answers["shown"][1]["response"].replace(" ", "") == raw.hex().upper()
    anonymised = bytes.fromhex(answers["anonymised"][1]["response"].replace(" ", ""))
    assert len(anonymised) == len(raw) and anonymised[-2:] == b"\x90\x00"
    assert tlv.find(anonymised[:-2], 0xFF10).value == ANONYMOUS["my_number"].encode()
    assert anonymised[:3] == raw[:3] and anonymised != raw


def test_anonymising_keeps_the_basic_four_structure_and_byte_lengths():
    from devices.virtual.applets import basic_four_ef
    from devices.virtual.profile import load_holder

    holder = load_holder("card")
    original = basic_four_ef(holder)
    anonymised = Anonymiser().anonymise(original)
    assert len(anonymised) == len(original)
    outer, before = tlv.find(anonymised, 0xFF20).value, tlv.find(original, 0xFF20).value
    for tag in (0xDF21, 0xDF22, 0xDF23, 0xDF24, 0xDF25):
        assert len(tlv.find(outer, tag).value) == len(tlv.find(before, tag).value)
    assert tlv.find(outer, 0xDF21).value == tlv.find(before, 0xDF21).value  # the offsets stay
    text = anonymised.decode("utf-8", "replace")
    for value in (holder.name, holder.address, holder.birth_date):
        assert value not in text


def test_known_values_are_replaced_inside_other_bytes_with_the_same_length():
    name = "試験　太郎"
    chunk = b"\x30\x82\x0c\x0f" + name.encode() + b"\x02\x01"
    out = Anonymiser(known=(name,)).anonymise(chunk, offset=300)
    assert len(out) == len(chunk) and name.encode() not in out and out.startswith(b"\x30\x82")
    assert fitted("匿名", 7) == "匿名".encode() + b" "


def test_a_failed_exchange_is_written_with_its_error(tmp_path):
    reader, path = traced(tmp_path)
    reader.slot.remove()
    with pytest.raises(Exception, match="card"):
        send(reader, SELECT_JPKI)
    reader.close()
    failed = [r for r in read_trace(path) if r["type"] == "exchange"][-1]
    assert failed["error"].startswith("NoCard: ") and "response" not in failed


def test_a_broken_trace_line_is_one_clear_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"type": "header"}\nnot json\n', "utf-8")
    with pytest.raises(ValueError, match=r"x.jsonl:2: not a JSON line"):
        read_trace(path)
    assert json.loads(path.read_text().splitlines()[0])["type"] == "header"


def test_the_log_table_names_each_command_and_opens_long_bytes_in_full():
    from harness.trace import ApduTrace

    trace = ApduTrace()
    trace.command(bytes.fromhex(SELECT_JPKI))
    trace.response(b"\x90\x00", 0.1)
    trace.command(bytes.fromhex("00A4020C02000A"))
    trace.command(bytes.fromhex("00B0000000"))
    trace.response(bytes(range(200)) + b"\x90\x00", 0.2)
    table = trace.as_html()
    assert "<th>command</th>" in table and "<td>SELECT AID</td>" in table and "<td>READ BINARY</td>" in table
    full = " ".join(f"{b:02X}" for b in range(200)) + " 90 00"
    assert f"<details><summary><code>{full[:96]}… (202 bytes)</code></summary>" in table
    assert f"<code style='word-break:break-all'>{full}</code></details>" in table
    assert "<details>" not in table.split("READ BINARY")[0]  # short ones stay one line


def test_an_ordinary_answer_holding_a_known_secrets_bytes_is_written_masked(tmp_path):
    """The holder's family name 試験 stands in the auth certificate's policy text: masked on writing, the
    line says so, and compare then holds only its status word against the device."""
    from devices.virtual.profile import load_holder
    from harness.compare import compare
    from harness.iso.redact import SECRETS
    from harness.keywords.privacy import holder_values, register_holder

    holder = load_holder("card")
    added = [v for v in holder_values(holder).values() if v not in SECRETS]
    register_holder(holder)  # the mask of a run that does not show the holder's data
    assert "試験" in SECRETS
    try:
        reader, path = traced(tmp_path)
        send(reader, SELECT_JPKI, "00A4020C02000A", "00B0000000" + "0000", "00A4020C020006", "00B0000010")
        reader.close()
        cert, token = [r for r in read_trace(path) if r.get("name") == "READ BINARY"]
        assert cert["masked"] is True and "****" in cert["response"] and cert["sw"] == "9000"
        assert "masked" not in token and "****" not in token["response"]  # nothing to mask: written as read
        result = compare(path, "virtual:card")
        assert result.compared == 5 and not result.differences, result.summary()
    finally:
        SECRETS.discard(added)  # as the process had it


def test_an_exchange_number_equal_to_a_pin_stays_a_number_while_texts_are_masked(tmp_path):
    """A soak passes every number: at exchange 1234 a PIN ``1234`` once masked the line's JSON into ``"n": ****``."""
    from harness.iso.redact import SECRETS

    SECRETS.add("1234", "a test PIN")
    reader, path = traced(tmp_path)
    reader.trace_writers[0].count = 1233
    CURRENT.begin("Suite.Reads 1234 Times", ["card"])
    try:
        send(reader, SELECT_JPKI)
    finally:
        CURRENT.end()
    reader.close()
    exchange = [r for r in read_trace(path) if r["type"] == "exchange"][-1]
    assert exchange["n"] == 1234 and exchange["test"] == "Suite.Reads **** Times"


def test_a_secret_known_later_is_masked_in_texts_written_before_it_was_known(tmp_path):
    """The writer masks each distinct text once; a secret registered meanwhile empties what it kept."""
    from harness.iso.redact import SECRETS

    reader, path = traced(tmp_path)
    for _ in range(2):
        CURRENT.begin("Suite.Holder 7391 Reads", ["card"])
        try:
            send(reader, SELECT_JPKI)
        finally:
            CURRENT.end()
        SECRETS.add("7391", "a datum learnt mid-run")
    reader.close()
    names = [r["test"] for r in read_trace(path) if r["type"] == "exchange"]
    assert names == ["Suite.Holder 7391 Reads", "Suite.Holder **** Reads"]
