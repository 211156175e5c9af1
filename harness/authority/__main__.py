"""``python -m harness.authority --db FILE [--port N] [--pause-at STEP]``: the authority as its own process.

It prints ``READY <url>`` once listening. With ``--pause-at STEP`` it stops inside that step's transaction
(after the writes, before the commit), prints ``PAUSED <step>`` and waits: a test kills the process there to
check that a real crash leaves nothing of the step behind.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from . import protocol
from .server import AuthorityServer
from .service import AuthorityConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.authority", description=__doc__)
    parser.add_argument("--db", required=True, help="SQLite file (created if missing)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pause-at", choices=protocol.STEPS, help="freeze inside this step, before its commit")
    args = parser.parse_args(argv)
    server = AuthorityServer(AuthorityConfig(Path(args.db)), port=args.port).start()
    forever = threading.Event()
    if args.pause_at and server.authority is not None:
        def pause(step: str, point: str) -> None:
            if step == args.pause_at and point == "before_commit":
                print(f"PAUSED {step}", flush=True)
                forever.wait()
        server.authority.fault = pause
    print(f"READY {server.url}", flush=True)
    try:
        forever.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
