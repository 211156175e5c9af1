"""The sharded test command for real: shards in their own namespaces, a failure's exit, no process left over."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from run_shards import RESERVED_PORTS, summary_counts

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "run_shards.py"


@pytest.fixture
def work() -> Iterator[Path]:
    """Outside /tmp: every shard but the first has a private /tmp, where pytest's work is."""
    path = REPO / "results" / "shard-tests" / uuid.uuid4().hex
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_shards(work: Path, body: str, shards: int = 2, extra_args: tuple[str, ...] | list[str] = (),
               **extra_env: str) -> subprocess.CompletedProcess:
    tests = work / "test_sample.py"
    tests.write_text(textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "HIL_TEST_SHARDS": str(shards), "HIL_TEST_LOGS": str(work / "logs"), **extra_env}
    env.pop("HIL_TEST_SHARD", None)
    return subprocess.run([sys.executable, str(RUNNER), "-q", "-p", "no:cacheprovider", *extra_args, "--rootdir",
                           str(work), str(tests)], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_each_shard_has_its_own_tmp_and_all_but_the_first_their_own_network(work):
    # a file outside this repository has no shard plan: every shard runs it whole, so each reports its world
    outside = socket.create_server(("127.0.0.1", 0))  # this network's: only shard 0 shares it
    port = outside.getsockname()[1]
    try:
        proc = run_shards(work, f"""
            import os, socket
            def test_where_am_i():
                shard = os.environ["HIL_TEST_SHARD"].split("/")[0]
                marker = "/tmp/hil-shard-probe-{work.name}"
                assert not os.path.exists(marker), "another shard's /tmp is visible"
                open(marker, "w").close()
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 47391))  # the same port in every shard: only separate networks allow it
                    s.listen()
                    with socket.create_connection(("127.0.0.1", 47391), timeout=5):
                        pass
                try:
                    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
                    network = "machine's"
                except OSError:
                    network = "own"
                reserved = open("/proc/sys/net/ipv4/ip_local_reserved_ports").read().strip() or "-"
                open("{work}/seen-" + shard, "w").write(f"{{os.stat('/tmp').st_dev}} {{network}} {{reserved}}")
                os.unlink(marker)
        """, shards=3)
    finally:
        outside.close()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 passed" in proc.stdout.splitlines()[-1]
    seen = [(work / f"seen-{i}").read_text().split(" ") for i in range(3)]
    devices = {device for device, _, _ in seen} | {str(os.stat("/tmp").st_dev)}
    assert len(devices) == 4, "a shard shared a /tmp with another or with the test command"
    assert [network for _, network, _ in seen] == ["machine's", "own", "own"]
    # in their own networks, no outgoing connection takes a port a test listens on (vpcd's 35963…)
    assert [reserved for _, _, reserved in seen[1:]] == [RESERVED_PORTS] * 2


def test_a_failure_in_one_shard_fails_the_command_and_is_printed(work):
    proc = run_shards(work, """
        import os
        def test_fails_in_shard_1():
            assert os.environ["HIL_TEST_SHARD"] != "1/2", "shard one fails on purpose"
    """)
    assert proc.returncode == 1
    assert "shard one fails on purpose" in proc.stdout
    assert "1 failed, 1 passed" in proc.stdout.splitlines()[-1]


def test_a_process_a_test_leaves_running_is_named_and_ended(work):
    proc = run_shards(work, """
        import subprocess
        def test_leaves_a_sleeper():
            subprocess.Popen(["sleep", "417"], start_new_session=True)
    """)
    assert proc.returncode == 0, proc.stdout[-3000:]
    ended = [line for line in proc.stdout.splitlines() if "left running by the tests, now ended" in line]
    assert len(ended) == 2 and all("sleep 417" in line for line in ended)
    left = subprocess.run(["pgrep", "-f", "sleep 417"], capture_output=True, text=True, check=False)
    assert left.stdout == ""


def test_without_namespaces_one_shard_runs_and_says_why(work):
    fake = work / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    proc = run_shards(work, "def test_one():\n    pass\n", shards=3, PATH=f"{fake}:{os.environ['PATH']}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ("run_shards: no private mount and network namespaces here (unshare: unshare failed: Operation not "
            "permitted): one shard") in proc.stdout
    assert "1 passed" in proc.stdout.splitlines()[-1]


def test_the_shards_take_every_unit_from_the_queue_once_and_keep_a_module_whole(work):
    # the repository's conftest is not loaded for files outside it: -p loads the queue plugin as it loads there
    for module in range(4):
        (work / f"test_m{module}.py").write_text(textwrap.dedent(f"""
            import os, time, pytest
            def note(text):
                with open("{work}/ran.log", "a") as log:
                    log.write(text + " " + os.environ["HIL_TEST_SHARD"].split("/")[0] + "\\n")
            @pytest.fixture(scope="module", autouse=True)
            def module_set_up():
                note("setup m{module}")
            @pytest.mark.parametrize("n", range(3))
            def test_x(n):
                time.sleep(0.2)
                note(f"test m{module}-{{n}}")
        """), encoding="utf-8")
    env = {**os.environ, "HIL_TEST_SHARDS": "3", "HIL_TEST_LOGS": str(work / "logs"),
           "PYTHONPATH": str(REPO / "tests")}
    env.pop("HIL_TEST_SHARD", None)
    env.pop("HIL_TEST_QUEUE", None)  # a test command comparing with the dealt shares must not turn the queue off
    proc = subprocess.run([sys.executable, str(RUNNER), "-q", "-p", "no:cacheprovider", "-p", "work_queue",
                           "--rootdir", str(work), str(work)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.splitlines()[-1].startswith("run_shards: 12 passed in "), proc.stdout[-3000:]
    lines = [line.split() for line in (work / "ran.log").read_text().splitlines()]
    tests = [(name, shard) for kind, name, shard in lines if kind == "test"]
    assert sorted(name for name, _ in tests) == sorted(f"m{m}-{n}" for m in range(4) for n in range(3))
    setups = {name: shard for kind, name, shard in lines if kind == "setup"}
    assert len([line for line in lines if line[0] == "setup"]) == 4  # each module's fixture once
    assert all(shard == setups[name.split("-")[0]] for name, shard in tests)  # a module stays in one shard
    logs = [(work / "logs" / f"shard-{i}.log").read_text() for i in range(3)]
    assert sum(summary_counts(log).get("deselected", 0) for log in logs) == 2 * 12  # each reports the others'


def test_a_shard_past_its_time_writes_where_it_hangs_and_fails_the_command(work):
    # the repository's conftest is not loaded for a file outside it: -p loads the watchdog as it loads there
    started = time.monotonic()
    proc = run_shards(work, """
        import os, time
        def test_hangs_in_shard_1():
            if os.environ["HIL_TEST_SHARD"] == "1/2":
                time.sleep(417)
    """, HIL_TEST_SHARD_SECONDS="4", PYTHONPATH=str(REPO / "tests"), extra_args=["-p", "shard_watchdog"])
    assert time.monotonic() - started < 40
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert "run_shards: shard 1 still running after 4 s (HIL_TEST_SHARD_SECONDS): its stacks are in its log; " \
           "ended" in proc.stdout, proc.stdout[-3000:]
    assert "in test_hangs_in_shard_1" in (work / "logs" / "shard-1.log").read_text(), proc.stdout[-3000:]
    left = subprocess.run(["pgrep", "-f", work.name], capture_output=True, text=True, check=False)
    assert left.stdout == ""
