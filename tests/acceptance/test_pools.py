"""Device pools: ``pool =`` in the inventory, ``--device pool:NAME --processes N`` through pabot and PabotLib's
value sets. Real pabot, real PabotLib server, real Robot runs on in-process virtual cards."""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
from hil_forkserver import hil_command
from robot.api import ExecutionResult
from robot_results import POOL_SUITES, messages

from harness.lab import InventoryError, load_inventory
from harness.pools import PoolError, members, value_sets

ROOT = Path(__file__).resolve().parents[2]
POOL = """[devices.ci-1]
uri = "virtual:card"
pool = "cards"
[devices.ci-1.card]
expendable = true
holder = "card"

[devices.ci-2]
uri = "virtual:card?extended=1"
pool = "cards"
[devices.ci-2.card]
expendable = true
holder = "card"

[devices.other]
uri = "virtual:phone"
"""


def _inventory(tmp_path: Path, text: str = POOL) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_pool_is_its_members_in_inventory_order_and_one_value_set_each(tmp_path):
    inventory = load_inventory(_inventory(tmp_path))
    assert [d.name for d in members("pool:cards", inventory)] == ["ci-1", "ci-2"]
    sets = value_sets("pool:cards", inventory)
    assert sets.split() == ["[ci-1]", "tags", "=", "pool-cards", "device", "=", "ci-1",
                            "[ci-2]", "tags", "=", "pool-cards", "device", "=", "ci-2"]
    with pytest.raises(PoolError, match=r"no device of pool 'cardz' in .*; pools: cards$"):
        members("pool:cardz", inventory)


@pytest.mark.parametrize("value, message", [('pool = 3', "pool must be text, got integer 3"),
                                            ('pool = "two words"', "pool must be a name")])
def test_a_malformed_pool_is_one_line_naming_file_and_line(tmp_path, value, message):
    path = _inventory(tmp_path, f'[devices.x]\nuri = "virtual:card"\n{value}\n')
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert f"{path}:3" in str(error.value) and message in str(error.value) and "\n" not in str(error.value)


def _hil_run(tmp_path: Path, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*hil_command(), "run", *POOL_SUITES, "--inventory",
                           str(tmp_path / "lab.toml"), "--outputdir", str(tmp_path / out), "--console", "quiet",
                           *extra],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)


def test_an_unknown_pool_stops_the_run_in_one_line(tmp_path):
    _inventory(tmp_path)
    proc = _hil_run(tmp_path, "out", "--device", "pool:benches", "--processes", "2")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"hil: error: no device of pool 'benches' in {tmp_path / 'lab.toml'}; pools: cards"]


def _suite_devices(output: Path) -> list[tuple[str, str, object, object]]:
    """(suite, device it opened, first open, suite end) for every suite that opened one."""
    found = []
    for suite in _leaf_suites(ExecutionResult(str(output)).suite):
        opened = [m for m in messages(suite) if m.message.startswith("Opened ")]
        if opened:
            names = {m.message.split()[1].rstrip(":") for m in opened}
            assert len(names) == 1, (suite.name, names)  # a suite keeps its member when it reopens
            # held from its first open (a suite may wait for a lease before) until the suite ends
            found.append((suite.name, names.pop(), opened[0].timestamp, suite.end_time))
    return found


def _assert_never_shared(used: list[tuple[str, str, object, object]]) -> None:
    """Every suite ran on a member of the pool, and suites that ran at the same time had different members.

    Which members are used depends on timing: a worker that starts after the other released its member
    takes the same one (on a loaded machine every suite may end on ``ci-1``), so the test checks the rule
    rather than a count of members.
    """
    assert used and {device for _, device, _, _ in used} <= {"ci-1", "ci-2"}, used
    for device in ("ci-1", "ci-2"):
        spans = sorted((start, end) for _, d, start, end in used if d == device)
        assert all(prev_end <= start for (_, prev_end), (start, _) in itertools.pairwise(spans)), spans


def _leaf_suites(suite):
    if suite.tests:
        yield suite
    for child in suite.suites:
        yield from _leaf_suites(child)


@pytest.mark.slow
def test_pabot_workers_share_the_pool_without_ever_sharing_a_device(tmp_path):
    _inventory(tmp_path)
    parallel = _hil_run(tmp_path, "parallel", "--device", "pool:cards", "--processes", "2")
    assert parallel.returncode == 0, parallel.stdout[-2000:] + parallel.stderr[-2000:]
    serial = _hil_run(tmp_path, "serial", "--device", "pool:cards")
    assert serial.returncode == 0, serial.stdout[-2000:] + serial.stderr[-2000:]
    _assert_never_shared(_suite_devices(tmp_path / "parallel" / "output.xml"))
    assert {d for _, d, _, _ in _suite_devices(tmp_path / "serial" / "output.xml")} == {"ci-1"}

    def outcomes(out: str) -> list[tuple[str, str]]:
        result = ExecutionResult(str(tmp_path / out / "output.xml"))
        return sorted((t.longname, t.status) for t in result.suite.all_tests)

    assert outcomes("parallel") == outcomes("serial")  # the same report content as a serial run
    matrix = {out: sorted((tmp_path / out / "matrix.csv").read_text(encoding="utf-8").splitlines())
              for out in ("parallel", "serial")}
    assert matrix["parallel"] == matrix["serial"]


@pytest.mark.slow
def test_a_plan_part_on_a_pool_holds_one_member_for_the_whole_part(tmp_path):
    # with --processes, a plan runs parts side by side (harness/parallel_parts.py), each part one Robot process
    # whose suites run in series on the one member the plan leased for it through PabotLib
    _inventory(tmp_path)
    plan = tmp_path / "plan.toml"
    plan.write_text('name = "pooled"\n[[run]]\nname = "card on the pool"\nsuites = ["card"]\ndevice = "pool:cards"\n'
                    '[[run]]\nname = "phone alone"\nsuites = ["phone"]\ndevice = "other"\n', encoding="utf-8")
    proc = subprocess.run([*hil_command(), "run", "--plan", str(plan), "--processes", "2",
                           "--inventory", str(tmp_path / "lab.toml"), "--outputdir", str(tmp_path / "out"),
                           "--console", "quiet"], capture_output=True, text=True, timeout=900, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    parts = sorted(p for p in (tmp_path / "out" / "parts").iterdir() if p.is_dir())
    pooled = {d for _, d, _, _ in _suite_devices(parts[0] / "output.xml")}
    assert len(pooled) == 1 and pooled <= {"ci-1", "ci-2"}, pooled
    assert {d for _, d, _, _ in _suite_devices(parts[1] / "output.xml")} == {"other"}
    assert (tmp_path / "out" / "pool-value-sets.ini").read_text(encoding="utf-8").count("tags = pool-cards") == 2
