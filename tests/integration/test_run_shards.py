"""The sharded test command for real: shards in their own namespaces, a failure's exit, no process left over."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tests" / "run_shards.py"


@pytest.fixture
def work() -> Iterator[Path]:
    """Outside /tmp: every shard but the first has a private /tmp, where pytest's work is."""
    path = REPO / "results" / "shard-tests" / uuid.uuid4().hex
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run_shards(work: Path, body: str, shards: int = 2, **extra_env: str) -> subprocess.CompletedProcess:
    tests = work / "test_sample.py"
    tests.write_text(textwrap.dedent(body), encoding="utf-8")
    env = {**os.environ, "HIL_TEST_SHARDS": str(shards), "HIL_TEST_LOGS": str(work / "logs"), **extra_env}
    env.pop("HIL_TEST_SHARD", None)
    return subprocess.run([sys.executable, str(RUNNER), "-q", "-p", "no:cacheprovider", "--rootdir", str(work),
                           str(tests)], env=env, capture_output=True, text=True, timeout=120, check=False)


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
                open("{work}/seen-" + shard, "w").write(f"{{os.stat('/tmp').st_dev}} {{network}}")
                os.unlink(marker)
        """, shards=3)
    finally:
        outside.close()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "3 passed" in proc.stdout.splitlines()[-1]
    seen = [(work / f"seen-{i}").read_text().split(" ", 1) for i in range(3)]
    devices = {device for device, _ in seen} | {str(os.stat("/tmp").st_dev)}
    assert len(devices) == 4, "a shard shared a /tmp with another or with the test command"
    assert [network for _, network in seen] == ["machine's", "own", "own"]


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
