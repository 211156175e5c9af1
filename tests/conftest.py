"""Fixtures shared by the test modules of several components.

The tests live in ``unit/`` (nothing but this process), ``integration/`` (one component against real pcscd, vpcd,
nfcpy, ptys or HTTP on 127.0.0.1) and ``acceptance/`` (whole ``hil`` runs and Robot suites). The helper modules
beside this file (``leak_scan``, ``pcsc_support``, ...) are importable from all three: pytest puts this folder on
``sys.path`` for its conftest.
"""

import signal
import threading
import time
from collections.abc import Iterator

import pytest

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
