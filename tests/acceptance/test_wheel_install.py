"""The package installed from its wheel: suites, profiles and fixtures travel with it, and `hil` works anywhere.

Builds the sdist and the wheel from the checkout (the wheel from the unpacked sdist, so a stale ``build/``
cannot leak into it), installs the wheel with every extra into a fresh venv in an empty folder outside the
checkout and runs ``hil`` from there. Needs the package index (or pip's cache) for the build backend and
the dependencies: run it outside the isolation wrapper. The suites it runs use in-process virtual devices.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness import fixtures
from robot import api as robot_api

pytestmark = [pytest.mark.slow, pytest.mark.index]

REPO = Path(fixtures.__file__).resolve().parents[1]
DATA_FOLDERS = ("robot", "fixtures")
VIRTUAL_PROFILES = {"virtual:card", "virtual:card-2024", "virtual:card-timed", "virtual:phone", "virtual:revoked-card",
                    "virtual:blank-phone"}


def run(command: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(map(str, command))} → {proc.returncode}\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    return proc


def checkout_files(folder: str) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in (REPO / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], cwd=dist)
    wheels = list(dist.glob("jpki_hil-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[Path, dict]:
    """A fresh venv with the wheel and all its extras, and an empty folder to run ``hil`` in.

    The venv gets no pip of its own: this pip installs into it (``--python``), which saves seeding one (2.5 s
    of CPU). Nothing is compiled at install (``--no-compile``: 3.5 s for every module of every dependency);
    the runs below write the bytecode of what they import, as Python does by default."""
    root = tmp_path_factory.mktemp("fresh")
    assert not root.resolve().is_relative_to(REPO)
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], cwd=root)
    python = root / "venv" / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-compile", f"{wheel}[all]"],
        cwd=root)
    workdir = root / "empty"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", fixtures.SUITES_ENV, fixtures.FIXTURES_ENV, "HIL_INVENTORY",
                        "PYTHONDONTWRITEBYTECODE")}
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    return workdir, env


def test_wheel_carries_the_suites_and_fixtures_under_the_harness_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"harness", "devices"}  # no top-level robot/ beside Robot Framework's package
    for folder in DATA_FOLDERS:
        expected = {f"harness/{fixtures.PACKAGED_DATA}/{name}" for name in checkout_files(folder)}
        assert expected, folder
        assert expected <= names, sorted(expected - names)
    assert not any("__pycache__" in name for name in names)


def test_installed_harness_is_the_wheel_and_not_the_checkout(installed):
    workdir, env = installed
    code = "import harness, robot; from harness import fixtures; " \
           "print(harness.__file__); print(robot.__file__); print(fixtures.suites_dir()); print(fixtures.pki_dir())"
    lines = run(["python", "-c", code], cwd=workdir, env=env).stdout.splitlines()
    venv = (workdir.parent / "venv").resolve()
    assert all(Path(line).resolve().is_relative_to(venv) for line in lines), lines
    assert Path(lines[1]).parent.name == "robot" and (Path(lines[1]).parent / "api").is_dir()  # Robot Framework's
    assert Path(lines[2]).parts[-3:] == ("harness", fixtures.PACKAGED_DATA, "robot")


def test_hil_devices_lists_the_virtual_profiles(installed):
    workdir, env = installed
    out = run(["hil", "devices"], cwd=workdir, env=env, timeout=120).stdout
    listed = {line.split()[0] for line in out.splitlines() if line.startswith("virtual:")}
    assert listed == VIRTUAL_PROFILES, out


def test_hil_run_card_phone_is_green_with_every_test_of_the_checkout(installed):
    workdir, env = installed
    expected = robot_api.TestSuiteBuilder().build(str(REPO / "robot" / "card"), str(REPO / "robot" / "phone"))
    assert expected.test_count > 0
    proc = run(["hil", "run", "card", "phone", "--outputdir", "results"], cwd=workdir, env=env)
    lines = proc.stdout.strip().splitlines()
    assert lines[-2] == f"{expected.test_count} passed, 0 failed, 0 skipped, 0 not run", proc.stdout[-2000:]
    assert (workdir / "results" / "output.xml").is_file()


def test_hil_docs_documents_the_library(installed):
    workdir, env = installed
    out = run(["hil", "docs", "--out", "docs"], cwd=workdir, env=env, timeout=120).stdout
    page = workdir / "docs" / "JPKILibrary.html"
    assert str(page.resolve()) in out
    assert "Certificate Should Differ From Pki File" in page.read_text(encoding="utf-8")
