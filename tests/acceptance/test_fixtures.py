"""harness.fixtures: where suites and fixtures are found in a checkout, and a lab's HIL_SUITES/HIL_FIXTURES."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hil_forkserver import hil_command

from harness import fixtures
from robot import api as robot_api

REPO = Path(fixtures.__file__).resolve().parents[1]  # this test runs from the checkout


def hil(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in (fixtures.SUITES_ENV, fixtures.FIXTURES_ENV)}
    return subprocess.run([*hil_command(), *args], capture_output=True, text=True,
                          timeout=120, check=False, env={**clean, **env})


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    monkeypatch.delenv(fixtures.SUITES_ENV, raising=False)
    monkeypatch.delenv(fixtures.FIXTURES_ENV, raising=False)


def test_a_checkout_uses_its_own_folders():
    assert fixtures.checkout_root() == REPO
    assert fixtures.data_root() == REPO
    assert fixtures.suites_dir() == REPO / "robot"
    assert fixtures.python_paths() == [REPO]
    assert fixtures.cards_dir() == REPO / "fixtures" / "cards"
    assert fixtures.pki_dir() == REPO / "fixtures" / "pki"
    assert fixtures.protocols_dir() == REPO / "fixtures" / "protocols"
    assert fixtures.relying_party_dir() == REPO / "fixtures" / "relying_party"
    assert fixtures.lab_dir() == REPO / "fixtures" / "lab"
    fixtures.check_environment()


def test_lab_fixtures_replace_only_the_kinds_the_lab_has(tmp_path, monkeypatch):
    (tmp_path / "protocols").mkdir()
    monkeypatch.setenv(fixtures.FIXTURES_ENV, str(tmp_path))
    assert fixtures.protocols_dir() == tmp_path / "protocols"
    assert fixtures.pki_dir() == REPO / "fixtures" / "pki"  # not in the lab's folder: the built-in one
    assert fixtures.lab_fixture_dir("pki") == tmp_path / "pki"  # where `hil pki generate` writes for the lab


def test_lab_suites_replace_the_built_in_suites(tmp_path, monkeypatch):
    monkeypatch.setenv(fixtures.SUITES_ENV, str(tmp_path))
    assert fixtures.suites_dir() == tmp_path


def test_unknown_kind_is_an_error():
    with pytest.raises(fixtures.FixturesError, match="unknown fixture kind 'profiles'"):
        fixtures.fixture_dir("profiles")


@pytest.mark.parametrize("variable", [fixtures.SUITES_ENV, fixtures.FIXTURES_ENV])
def test_an_override_naming_no_folder_is_one_line_and_exit_2(variable, tmp_path):
    missing = tmp_path / "nowhere"
    proc = hil("devices", **{variable: str(missing)})
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hil: error: {variable}={missing}: no such folder"


def test_hil_lists_the_lab_profiles_from_HIL_FIXTURES(tmp_path):
    cards = tmp_path / "cards"
    cards.mkdir()
    shutil.copy(REPO / "fixtures" / "cards" / "card.toml", cards / "desk-card.toml")
    proc = hil("devices", HIL_FIXTURES=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("virtual:")]
    assert listed == ["virtual:desk-card"]


def test_hil_runs_the_lab_suites_from_HIL_SUITES(tmp_path):
    shutil.copytree(REPO / "robot" / "resources", tmp_path / "resources")
    shutil.copytree(REPO / "robot" / "phone", tmp_path / "lab_phone")
    unknown = hil("run", "card", HIL_SUITES=str(tmp_path))
    assert unknown.returncode == 2
    assert "no suite 'card'; known: lab_phone " in unknown.stderr
    proc = hil("run", "lab_phone", "--outputdir", str(tmp_path / "out"), HIL_SUITES=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-2000:]
    expected = robot_api.TestSuiteBuilder().build(str(REPO / "robot" / "phone")).test_count
    assert expected > 0
    assert proc.stdout.strip().splitlines()[-2] == f"{expected} passed, 0 failed, 0 skipped, 0 not run"
