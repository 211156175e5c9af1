"""Fixtures shared by the test modules of several components.

The tests live in ``unit/`` (nothing but this process), ``integration/`` (one component against real pcscd, vpcd,
nfcpy, ptys or HTTP on 127.0.0.1) and ``acceptance/`` (whole ``hil`` runs and Robot suites). The helper modules
beside this file (``leak_scan``, ``pcsc_support``, ...) are importable from all three: pytest puts this folder on
``sys.path`` for its conftest.
"""

import fcntl
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sharding

# under the test command the shards take their work from one queue, and a shard past its time ends itself
pytest_plugins = ["work_queue", "shard_watchdog"]

# Every backend with its reader-side code for real; the card sits in a slot a fault plan controls.
VIRTUAL_BACKENDS = [
    "virtual:card",
    "virtual:card?via=pcsc",
    "virtual:card?via=nfc",
    "virtual:card?via=kiosk",
    "virtual:card?via=stb",
]


def pytest_configure(config: pytest.Config) -> None:
    """A shell starts a background job (``pytest &`` in a script, ``nohup``) with SIGINT ignored, and every
    process it starts inherits that: the Ctrl-C tests' servers would then never stop. A Python handler here is
    reset to the default in each child at exec, so the children get Ctrl-C as a user's terminal gives it."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", metavar="FILE", type=Path,
                     help="write each test's seconds (set-up, call, tear-down) as JSON, for tests/durations.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``HIL_TEST_SHARD=i/N`` alone keep this shard's share of the tests, dealt ahead; under the test
    command every shard keeps them all and takes its work from the queue (``tests/work_queue.py``)."""
    spec = os.environ.get("HIL_TEST_SHARD")
    if not spec or sharding.queue_descriptor() is not None:
        return
    try:
        index, count = sharding.parse_shard(spec)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    refs = [sharding.CollectedTest(item.nodeid, item.get_closest_marker("index") is not None) for item in items]
    mine = set(sharding.plan(refs, count, sharding.load_durations())[index].nodeids)
    deselected = [item for item in items if item.nodeid not in mine]
    items[:] = [item for item in items if item.nodeid in mine]
    config.hook.pytest_deselected(items=deselected)


_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Shards of one test command each add their tests' seconds to the one file, in turn."""
    path = session.config.getoption("--record-durations")
    if path is None:
        return
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        seconds = sharding.load_durations(path) if os.environ.get("HIL_TEST_SHARD") else {}
        seconds.update({k: round(v, 2) for k, v in _SECONDS.items()})
        path.write_text(json.dumps(dict(sorted(seconds.items())), indent=0) + "\n", encoding="utf-8")
    path.with_suffix(".lock").unlink(missing_ok=True)


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fails the test if a thread it started (server, firmware, worker) outlives it by more than 3 s."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and set(threading.enumerate()) - before:
        time.sleep(0.02)
    assert not set(threading.enumerate()) - before


@pytest.fixture(autouse=True)
def secrets_registered_per_test():
    """The redaction registry is process-wide: what one test registers (a holder's data, a PIN) must not mask
    what a later test shows on purpose (``--show-holder-data``, a trace in ``shown`` mode)."""
    from harness.iso.redact import SECRETS

    before = set(SECRETS.values())
    yield
    SECRETS.discard(set(SECRETS.values()) - before)


@pytest.fixture(autouse=True)
def no_parked_vpcd_server_outlives_its_test() -> Iterator[None]:
    """A vpcd card server this process parks when a test closes its reader keeps the slot until idle (15 s);
    a later test's card served by another process (``hil virtual serve``, a ``hil run``) would wait that long
    for it: a guard-matrix cell took 15.4 s instead of 1.3 s after a PC/SC test in its shard."""
    yield
    sessions = sys.modules.get("devices.virtual.bridges.vpcd_sessions")  # not imported: nothing was parked
    if sessions is not None:
        sessions.PARKED.evict_all()
