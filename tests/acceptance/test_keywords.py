"""The Robot library: every keyword documented, libdoc builds it without warnings."""

import json
import subprocess
import sys

from hil_forkserver import hil_command

from harness.keywords import JPKILibrary


def test_every_keyword_has_documentation():
    library = JPKILibrary()
    names = library.get_keyword_names()
    assert len(names) >= 40
    undocumented = [name for name in names if not (library.get_keyword_documentation(name) or "").strip()]
    assert undocumented == []


def test_libdoc_builds_the_library_cleanly(tmp_path):
    out = tmp_path / "JPKILibrary.json"
    proc = subprocess.run([sys.executable, "-m", "robot.libdoc", "--format", "JSON", "harness.keywords.JPKILibrary",
                           str(out)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "WARN" not in proc.stdout + proc.stderr
    spec = json.loads(out.read_text(encoding="utf-8"))
    names = {kw["name"].lower() for kw in spec["keywords"]}
    assert {"open device", "verify pin", "read certificate", "log apdu trace", "sign data"} <= names
    assert all(kw["doc"].strip() for kw in spec["keywords"])


def test_hil_docs_writes_the_keyword_documentation(tmp_path):
    proc = subprocess.run([*hil_command(), "docs", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "JPKILibrary.html").read_text(encoding="utf-8")
    assert "Verify Wrong Pin" in page and "Guarded" in page  # the keyword and its safety note


def test_byte_values_are_logged_as_length_and_hex():
    from harness.keywords.byte_logging import readable_bytes

    der = bytes.fromhex("3082061F30820507A003020102") + bytes(range(256)) * 2
    assert readable_bytes("${der} = " + der[:200].decode("latin-1") + "...") == (
        "${der} = <more than 200 bytes: " + der[:32].hex(" ").upper() + " …>")
    assert readable_bytes(f"Return: {der[:4]!r}") == "Return: <4 bytes: 30 82 06 1F>"
    assert readable_bytes("Arguments: [ b'\\x90\\x00' | 'x' ]") == "Arguments: [ <2 bytes: 90 00> | 'x' ]"
    for text in ("${name} = 試験", "${atr} = 3B E0 00", "${text} = café\tnoted", "a verb'd word"):
        assert readable_bytes(text) == text  # text stays text
    cut_repr = "Arguments: [ b'" + "\\x00" * 5000  # Robot cut it: no closing quote (an overlapping pattern hangs)
    assert readable_bytes(cut_repr) == cut_repr
