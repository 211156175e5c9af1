"""hil compare: which aspect of an answer differs, PIN markers refilled safely, one-line errors."""

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hil_forkserver import hil_command

from devices import open_device
from harness import fixtures
from harness.cert_fields import varying_fields
from harness.cli import main
from harness.compare import SecretFiller, compare, first_difference
from harness.credentials import DeviceFacts
from harness.fixtures import FIXTURES_ENV
from harness.tracefile import CURRENT, TraceWriter, attach

OK = b"\x90\x00"
DER = Encoding.DER


@pytest.mark.parametrize(("recorded", "actual", "aspect"), [
    (b"\x01\x02" + OK, b"\x01\x02\x6a\x82", "status word"),
    (b"\x01\x02" + OK, b"\x01" + OK, "length"),
    (bytes.fromhex("DF2102AAAA") + OK, bytes.fromhex("DF2202AAAA") + OK, "TLV structure"),
    (bytes.fromhex("DF2102AAAA") + OK, bytes.fromhex("DF2102AABB") + OK, "data"),
])
def test_the_first_aspect_that_differs_counts(recorded, actual, aspect):
    assert first_difference(0xB0, recorded, actual)[0] == aspect


def test_challenges_and_signatures_differ_by_nature():
    assert first_difference(0x84, b"\x01" * 8 + OK, b"\x02" * 8 + OK) is None
    assert first_difference(0x2A, b"\x01" * 256 + OK, b"\x02" * 256 + OK) is None
    assert first_difference(0x84, b"\x01" * 8 + OK, b"\x02" * 4 + OK)[0] == "length"


def filler(expendable: bool) -> SecretFiller:
    f = SecretFiller(DeviceFacts(expendable=expendable, pins={"auth": "2580"}))
    f.context.command(bytes.fromhex("00A4040C0AD392F000260100000001"))
    f.context.command(bytes.fromhex("00A4020C020018"))
    return f


def test_markers_become_the_devices_pin_a_wrong_one_or_a_value_of_the_recorded_shape():
    header = bytes.fromhex("0020008004")
    assert filler(True).value(header, 4, "digits", "9000") == ("2580", "")
    assert filler(True).value(header, 4, "digits", "63C2") == ("2581", "")
    assert filler(True).value(bytes.fromhex("0020008005"), 5, "A-Z0-9", "6A80") == ("AAAA1", "")


def test_no_pin_command_at_all_reaches_a_card_that_is_not_expendable():
    why = "auth PIN: card not expendable (compare sends PIN commands only to expendable cards)"
    guarded = filler(False)
    assert guarded.value(bytes.fromhex("0020008004"), 4, "digits", "63C2") == (None, why)  # a wrong PIN
    assert guarded.value(bytes.fromhex("0020008004"), 4, "digits", "9000")[0] is None  # the right one: no counter check
    assert guarded.value(bytes.fromhex("0020008005"), 5, "digits", "6A80")[0] is None  # a made-up malformed one
    assert guarded.value(bytes.fromhex("0024018004"), 4, "digits", "9000")[0] is None  # a change
    assert filler(True).value(bytes.fromhex("0020008004"), 4, "digits", "63C2")[0] is not None


def record_wrong_pin(path: Path) -> None:
    reader = open_device("virtual:card")
    writer = TraceWriter(path, "virtual:card", "shown")
    attach(reader, writer)
    reader.wait_for_card(1)
    writer.open({"kind": "card", "expendable": False, "pins": {"auth": {"length": 4, "class": "digits"}}})
    CURRENT.begin("wrong pin", [])
    reader.power_on()
    for apdu in ("00A4040C0AD392F000260100000001", "00A4020C020018", "002000800431323334", "00200080"):
        reader.transmit(bytes.fromhex(apdu))
    CURRENT.end()
    reader.close()


def test_the_expendable_virtual_card_gets_every_command_and_answers_alike(tmp_path):
    record_wrong_pin(tmp_path / "r.jsonl")
    result = compare(tmp_path / "r.jsonl", "virtual:card")
    assert result.compared == 4 and not result.differences and not result.not_sent
    assert "answers like recording r.jsonl on all 4 commands" in result.summary()


def test_a_card_not_marked_expendable_gets_no_wrong_pin(tmp_path):
    record_wrong_pin(tmp_path / "r.jsonl")  # its header: not expendable, so a replay of it is a guarded card
    result = compare(tmp_path / "r.jsonl", f"replay:{tmp_path / 'r.jsonl'}")
    why = "auth PIN: card not expendable (compare sends PIN commands only to expendable cards)"
    assert [d.recorded for d in result.not_sent] == [why]
    assert result.compared == 3 and f"1 not sent ({why})" in result.summary()


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing.jsonl"), "--device", "virtual:card"]) == 2
    assert "no recording" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{oops\n", "utf-8")
    assert main(["compare", str(broken), "--device", "virtual:card"]) == 2
    assert "broken.jsonl:1: not a JSON line" in capsys.readouterr().err
    assert main(["compare", str(broken), "--device", "nosuch:x"]) == 2
    assert main(["record", "card", "--out", str(tmp_path / "x.jsonl"), "--anonymise", "--show-holder-data"]) == 2
    assert "not both" in capsys.readouterr().err
    assert "HIL_SHOW_HOLDER_DATA" not in os.environ  # refused before anything was lifted
    assert not Path(tmp_path / "x.jsonl").exists()


# -- certificates of another issue: serial, validity and signature differ by nature ---------------------------
def reissue(pki: Path, name: str, ca_key: str, subject_cn: str | None = None) -> None:
    """``name`` issued again by the same CA for the same key: another serial (same length), validity a day
    later, so another signature; with ``subject_cn`` the subject changed too (a real difference)."""
    cert = x509.load_der_x509_certificate((pki / name).read_bytes())
    key = serialization.load_pem_private_key((pki / ca_key).read_bytes(), None)
    subject = cert.subject
    if subject_cn is not None:
        subject = x509.Name([x509.NameAttribute(a.oid, subject_cn if a.oid == NameOID.COMMON_NAME else a.value)
                             for a in cert.subject])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(cert.serial_number ^ 0xFFFF)
               .not_valid_before(cert.not_valid_before_utc + timedelta(days=1))
               .not_valid_after(cert.not_valid_after_utc + timedelta(days=1)))
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    again = builder.sign(key, hashes.SHA256())
    assert again.serial_number != cert.serial_number and len(again.public_bytes(DER)) == len(cert.public_bytes(DER))
    (pki / name).write_bytes(again.public_bytes(DER))


def hil(*args: str, cwd: Path, fixtures_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HIL_LOCK_DIR=str(cwd / ".locks"))
    env.pop(FIXTURES_ENV, None)
    if fixtures_dir is not None:
        env[FIXTURES_ENV] = str(fixtures_dir)
    return subprocess.run([*hil_command(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def certificate_recording(tmp_path_factory) -> Path:
    """The certificate requirements recorded on the in-process card (sign certificate kept: synthetic holder)."""
    work = tmp_path_factory.mktemp("certs")
    proc = hil("record", "card/token_and_certificates.robot", "--device", "virtual:card", "--show-holder-data",
               "--out", "certs.jsonl", "--outputdir", "run", cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return work / "certs.jsonl"


def regenerated(tmp_path: Path, subject_cn: str | None = None) -> Path:
    lab = tmp_path / "fixtures"
    shutil.copytree(fixtures.pki_dir(), lab / "pki")
    reissue(lab / "pki", "card-auth.der", "auth-ca.key.pem", subject_cn)
    reissue(lab / "pki", "card-sign.der", "sign-ca.key.pem")
    return lab


def test_certificate_fields_are_found_in_a_zero_filled_ef():
    der = (fixtures.pki_dir() / "card-auth.der").read_bytes()
    cert = x509.load_der_x509_certificate(der)
    found = {f.name: der[f.start:f.end] for f in varying_fields(der + bytes(400))}
    assert int.from_bytes(found["serial number"], "big") == cert.serial_number
    assert found["signature"] == b"\x00" + cert.signature  # the BIT STRING's unused-bits octet, then the value
    assert found["validity"].startswith(b"\x17\x0d260401000000Z")  # UTCTime notBefore
    assert varying_fields(der[:300]) == [] and varying_fields(b"\x6a\x82") == []  # no certificate: nothing ignored


def test_a_card_whose_certificates_differ_only_by_serial_and_validity_compares_equal(certificate_recording,
                                                                                   tmp_path):
    lab = regenerated(tmp_path)
    assert (lab / "pki" / "card-auth.der").read_bytes() != (fixtures.pki_dir() / "card-auth.der").read_bytes()
    proc = hil("compare", str(certificate_recording), "--device", "virtual:card", "--json", "diff.json",
               cwd=tmp_path, fixtures_dir=lab)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"virtual:card answers like recording certs\.jsonl on all \d+ commands", proc.stdout)
    report = json.loads((tmp_path / "diff.json").read_text("utf-8"))
    assert set(report["ignored"]) == {"serial number", "validity", "signature"}
    assert "note: certificate fields that differ between issues were not compared: serial number in" in proc.stdout


def test_the_control_without_the_reissue_nothing_is_ignored(certificate_recording, tmp_path):
    proc = hil("compare", str(certificate_recording), "--device", "virtual:card", "--json", "diff.json",
               cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads((tmp_path / "diff.json").read_text("utf-8"))["ignored"] == {}


def test_a_real_difference_in_a_reissued_certificate_is_still_reported(certificate_recording, tmp_path):
    lab = regenerated(tmp_path, subject_cn="TESTCARD000000000000009")
    proc = hil("compare", str(certificate_recording), "--device", "virtual:card", "--json", "diff.json",
               cwd=tmp_path, fixtures_dir=lab)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "diff.json").read_text("utf-8"))
    assert report["differences"] and {d["aspect"] for d in report["differences"]} == {"data"}
    assert {d["name"] for d in report["differences"]} == {"READ BINARY"}
    tests = {d["test"].split(".")[-1] for d in report["differences"]}
    assert tests == {"Auth Certificate Is Free And Matches The Issued One",
                     "Auth Certificate Chains To The Test Auth Root",
                     "Auth Certificate Follows The JPKI Profile", "Certificate Reads The Same With Short APDUs"}
    at = (fixtures.pki_dir() / "card-auth.der").read_bytes().index(b"TESTCARD000000000000001") + 22  # the changed digit
    whole = [d for d in report["differences"] if d["command"] == "00 B0 00 00 00 00 00"]
    assert whole and all(d["recorded"].endswith(f"at byte {at}") for d in whole)


def test_answers_larger_than_the_reader_carries_are_read_in_pieces_and_still_compared(certificate_recording, tmp_path):
    result = compare(certificate_recording, "virtual:card?extended=0")  # 256 bytes of answer at most
    assert not result.differences and result.pieces >= 5, result.summary()
    assert any("read in pieces" in note for note in result.notes)
    lab = regenerated(tmp_path, subject_cn="TESTCARD000000000000009")
    proc = hil("compare", str(certificate_recording), "--device", "virtual:card?extended=0", "--json", "diff.json",
               cwd=tmp_path, fixtures_dir=lab)
    assert proc.returncode == 1, proc.stdout[-3000:]
    whole = [d for d in json.loads((tmp_path / "diff.json").read_text("utf-8"))["differences"]
             if d["command"] == "00 B0 00 00 00 00 00"]  # a whole-EF read, put together from 8 pieces
    assert whole and all(d["aspect"] == "data" for d in whole)
