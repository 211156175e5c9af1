"""The Robot library: every keyword documented, libdoc builds it without warnings."""

import json
import subprocess
import sys

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
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "docs", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "JPKILibrary.html").read_text(encoding="utf-8")
    assert "Verify Wrong Pin" in page and "Guarded" in page  # the keyword and its safety note
