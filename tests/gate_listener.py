"""A Robot listener that holds a run after its Nth test until a file exists, so that a test can act between
two requirements (take the reader away) without racing the run: ``--listener tests/gate_listener.py:GATE[:N]``.

When the Nth test has ended it creates ``GATE.waiting`` and waits (at most 120 s) for ``GATE``.
"""

import time
from pathlib import Path

WAIT_SECONDS = 120


class gate_listener:  # Robot takes the class named as its module
    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, gate: str, after: str = "1") -> None:
        self.gate = Path(gate)
        self.after = int(after)
        self.ended = 0

    def end_test(self, data, result) -> None:
        self.ended += 1
        if self.ended != self.after:
            return
        self.gate.with_suffix(".waiting").touch()
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
