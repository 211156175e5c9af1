"""No PIN, 照合番号 or holder datum in any file a run writes, on any backend, plain, planned or parallel.

Each run is the real ``hil run`` (Robot, pcscd + vpcd, nfcpy's UDP link, a serial pty, pabot) in a
scratch directory; every file it leaves there is scanned by :mod:`leak_scan` for every secret of the
card profiles and holder records, in every encoding. A positive control proves the scanner finds a
planted value, also inside log.html's compressed model.
"""

import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from leak_scan import Secret, encodings, log_model_strings, profile_secrets, scan, scan_text
from robot_results import failed_tests

REPO = Path(__file__).resolve().parents[2]
SECRETS = profile_secrets()
SUBSET = ["--include", "TXT-*", "--include", "JPKI-PIN-*"]  # the requirements that send PINs and read holder data

PLAN = """
name = "Leak scan"

[[run]]
name = "Card behind pcscd and vpcd"
suites = ["card"]
device = "virtual:card?via=pcsc"
include = ["TXT-*", "JPKI-PIN-*"]

[[run]]
name = "Card behind pcscd as a T=0 card"
suites = ["card"]
device = "virtual:card?via=pcsc&t0=1"
include = ["TXT-*"]

[[run]]
name = "Card over nfcpy's UDP link"
suites = ["card"]
device = "virtual:card?via=nfc"
include = ["TXT-*", "JPKI-PIN-*"]

[[run]]
name = "Card behind the kiosk reader module"
suites = ["card"]
device = "virtual:card?via=kiosk"
include = ["TXT-*", "JPKI-PIN-*"]

[[run]]
name = "Phone over nfcpy's UDP link"
suites = ["phone"]
device = "virtual:phone?via=nfc"

[[run]]
name = "Terminal service flows"
suites = ["terminals"]
"""


def hil(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*hil_command(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, check=False, env=env)


def assert_clean(directory: Path, proc: subprocess.CompletedProcess) -> None:
    outputs = sorted(directory.rglob("output.xml"), key=lambda p: len(p.parts))[:1]  # the run's merged one
    assert proc.returncode == 0, "\n".join([*map(failed_tests, outputs), proc.stdout[-2000:], proc.stderr[-2000:]])
    findings, files, strings = scan(directory, SECRETS)
    assert files >= 4 and strings > 100, (files, strings)  # output.xml, log, report, xunit at least; decoded
    assert not findings, "\n".join(map(str, findings[:20]))
    for stream in (proc.stdout, proc.stderr):  # the console too
        assert not scan_text(stream, SECRETS)
    for written in Path(tempfile.gettempdir()).glob("hil*"):  # what a run keeps outside its folders (pcscd's log)
        assert not scan(written, SECRETS)[0], written


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The run's cwd and outputdir in one scratch folder, so every file it writes is scanned."""
    return tmp_path


def test_the_scanner_finds_a_planted_value_in_every_encoding_and_in_the_compressed_log(workdir):
    planted = next(s for s in SECRETS if s.label.endswith("My Number (照合番号A)"))
    name = next(s for s in SECRETS if s.label.endswith(": name"))
    for _encoding, needle, _ in encodings(planted.value) + encodings(name.value):
        (workdir / f"{len(list(workdir.iterdir())):02d}.txt").write_text(f"x {needle} y", encoding="utf-8")
    suite = workdir / "planted.robot"
    suite.write_text(textwrap.dedent(f"""\
        *** Test Cases ***
        Planted
            Log    {"-padding" * 40} {planted.value} {name.value} {"-padding" * 40}
        """), encoding="utf-8")
    out = workdir / "out"
    subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(out), "--xunit", "xunit.xml", str(suite)],
                   capture_output=True, check=True, timeout=120)
    findings, _, _ = scan(workdir, [planted, name])
    found = {(f.secret, f.encoding) for f in findings}
    expected = {(s, e) for s in (planted, name) for e, _, _ in encodings(s.value)}
    assert expected <= found, expected - found
    log = (out / "log.html").read_text("utf-8")
    assert planted.value not in log  # Robot compressed the long message: only the decoded model has it
    assert any(planted.value in string for string in log_model_strings(log))
    assert any(f.path.name == "log.html" and f.part.startswith("log model string") for f in findings)
    assert any(f.path.name == "output.xml" for f in findings)


def test_failure_messages_warnings_and_console_are_masked_too(workdir):
    """A failure naming the holder, a warning naming a PIN, a raw VERIFY written into the suite: masked in every
    file (output.xml keeps the arguments as written) and on the console; the planted-value control shows the
    scanner sees them where nothing masks them."""
    suite = workdir / "failing.robot"
    suite.write_text(textwrap.dedent("""\
        *** Settings ***
        Library    harness.keywords.JPKILibrary
        Suite Setup    Open Device    virtual:card
        Suite Teardown    Close Device

        *** Test Cases ***
        A Failure Naming The Holder
            Fail    the card said 123456789018 for 試験　太郎 of 東京都千代田区霞が関二丁目１番２号

        A Warning Naming A PIN
            Log    PIN 2580, hex 32353830, frame 0020008004 32353830    WARN
            ${response}=    Send APDU    00 20 00 80 04 32 35 38 30
        """), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "robot", "--outputdir", str(workdir / "results"), "--xunit",
                           "xunit.xml", "--pythonpath", str(REPO), str(suite)],
                          cwd=workdir, capture_output=True, text=True, timeout=120, check=False)
    # both fail for real: the first by itself, the second because the raw keyword refuses VERIFY data
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "RawSecretRefused: Send APDU refuses VERIFY with data" in proc.stdout
    findings, _, _ = scan(workdir / "results", SECRETS)
    assert not findings, "\n".join(map(str, findings[:20]))
    assert not scan_text(proc.stdout + proc.stderr, SECRETS)
    assert "the card said **** for **** of ****" in proc.stdout


def test_the_whole_card_suite_in_process_writes_no_secret(workdir):
    proc = hil("run", "card", "--outputdir", str(workdir / "results"), cwd=workdir)
    assert_clean(workdir, proc)
    assert "63 passed" in proc.stdout or " passed, 0 failed" in proc.stdout


def test_a_plan_over_pcsc_nfc_kiosk_phone_and_terminals_writes_no_secret(workdir):
    plan = workdir / "plan.toml"
    plan.write_text(PLAN, encoding="utf-8")
    proc = hil("run", "--plan", str(plan), "--outputdir", str(workdir / "results"), cwd=workdir)
    assert_clean(workdir, proc)
    assert (workdir / "results" / "matrix.csv").is_file() and len(list((workdir / "results" / "parts").iterdir())) == 6


def test_a_parallel_run_writes_no_secret(workdir):
    proc = hil("run", "card", "phone", "--processes", "2", *SUBSET, "--include", "PHN-*",
               "--outputdir", str(workdir / "results"), cwd=workdir)
    assert_clean(workdir, proc)
    assert (workdir / "results" / "pabot_results").is_dir()


def test_backend_debug_logging_at_trace_through_pabot_writes_no_secret(workdir):
    """nfcpy's frame log (``>>> 0200200080 04…``) at level 1 and Robot at TRACE: the frames are there, masked."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run(
        [sys.executable, "-m", "pabot.pabot", "--processes", "2", "--loglevel", "TRACE", "--pythonpath", str(REPO),
         "--outputdir", str(workdir / "results"), str(REPO / "tests" / "robot" / "debug_logging.robot")],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert_clean(workdir, proc)
    output = (workdir / "results" / "output.xml").read_text("utf-8")
    assert output.count("&gt;&gt;&gt; ") > 20  # nfcpy's frames did reach the log
    assert re.search(r"0[23]0020008004\*\*\*\*", output)  # the text PIN's VERIFY frame, masked
    assert re.search(r"0[23]002000800c\*\*\*\*", output)  # 照合番号A's (12 bytes)
    assert re.search(r"0[23]002000800e\*\*\*\*", output)  # 照合番号B's (14 bytes)


def test_show_holder_data_shows_a_synthetic_holder_but_never_a_pin(workdir):
    proc = hil("run", str(REPO / "robot" / "card" / "text_ap.robot"), "--show-holder-data",
               "--outputdir", str(workdir / "results"), cwd=workdir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    findings, _, _ = scan(workdir, SECRETS)
    shown = {f.secret.label for f in findings}
    assert "holder card: My Number (照合番号A)" in shown and "holder card: name" in shown
    assert not [label for label in shown if "PIN" in label], shown
    secret_pin = Secret("text PIN", "2580")
    assert not scan(workdir, [secret_pin])[0]


def test_without_the_flag_the_mask_stays_even_if_the_environment_asks(workdir):
    env = dict(os.environ, HIL_SHOW_HOLDER_DATA="1")  # only the command line lifts it
    proc = hil("run", str(REPO / "robot" / "card" / "text_ap.robot"), "--outputdir", str(workdir / "results"),
               cwd=workdir, env=env)
    assert_clean(workdir, proc)


def test_in_json_files_a_quoted_pin_is_found_and_a_measured_figure_is_not(workdir):
    pin = next(s for s in SECRETS if s.label.endswith(": auth PIN") and s.value.isdigit())
    (workdir / "figures.json").write_text(f'{{"ms": {pin.value}.125, "count": [{pin.value}, 3]}}\n', "utf-8")
    assert not scan(workdir / "figures.json", [pin])[0]
    lines = f'{{"ms": 1.5, "command": "{pin.value}"}}\n{{"x": "a {pin.value}"}}\n'
    (workdir / "trace.jsonl").write_text(lines, "utf-8")
    assert len(scan(workdir / "trace.jsonl", [pin])[0]) == 1  # the first line's string (one finding a file)


def test_in_a_log_the_models_own_figures_are_not_a_pin_but_the_same_digits_in_its_text_are(workdir):
    """``window.output["generated"]`` is milliseconds since the run began: 7035 once, equal to a new PIN (CI)."""
    pin = Secret("new auth PIN", "7035")
    figures = ('<script type="text/javascript">\nwindow.output["generated"] = 7035;\n</script>\n'
               'window.output["baseMillis"] = 17962537870352;\n'
               'window.output["suite"] = [1,7035,[2,7035]];\n')
    (workdir / "log.html").write_text(figures, "utf-8")
    assert not scan(workdir / "log.html", [pin])[0]
    for leak in ('window.output["generated"] = 7035 ;', 'window.output["title"] = "7035";', "<td>7035</td>",
                 'window.output["generated"] = 1; 7035;'):
        (workdir / "log.html").write_text(figures + leak + "\n", "utf-8")
        assert len(scan(workdir / "log.html", [pin])[0]) == 1, leak


def test_a_short_pin_inside_a_longer_ascii_word_in_hex_is_not_a_leak_but_in_an_apdu_it_is():
    """A random certificate CN (``JPKIPHONE…7035…``) holds a 4-digit PIN's digits by chance; a VERIFY does not."""
    pin = Secret("auth PIN", "7035")
    cn = bytes.fromhex("4A504B4950484F4E4539413346") + b"5703559EE9" + bytes.fromhex("820122")
    assert scan_text(cn.hex(" ").upper(), [pin]) == [] and scan_text(cn.hex(), [pin]) == []
    verify = bytes.fromhex("0020008104") + b"7035" + bytes.fromhex("9000")
    assert {encoding for _, encoding in scan_text(verify.hex(" ").upper(), [pin])} == {"spaced hex", "spaced HEX"}
    assert {encoding for _, encoding in scan_text(verify.hex(), [pin])} == {"hex", "HEX"}
    assert scan_text("the PIN is 7035.", [pin]) and not scan_text("at 10:12:57035", [pin])
