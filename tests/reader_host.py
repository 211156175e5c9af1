"""A simulated reader host for the two-host tests: run under ``unshare --mount`` it gets its own
``/run/pcscd`` (a tmpfs), its own pcscd whose vpcd listens on its own ports (``pcscd -c``), a virtual
card in that vpcd and ``hil remote serve`` on its own loopback address.

``python tests/reader_host.py --channel 0x8C85 --host 127.0.0.2 --port 8270``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.pcsc.scard import wait_until_listed
from devices.virtual.pcscd import PcscDaemon, write_vpcd_config
from harness.cli import main


def reader_conf(channel: int) -> Path:
    return write_vpcd_config(Path(tempfile.mkdtemp(prefix="reader-host-")), channel)


def run() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channel", type=lambda s: int(s, 0), required=True, help="vpcd's first port")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", default="card")
    args = parser.parse_args()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/pcscd"], check=True)  # this namespace's own
    daemon = PcscDaemon(config=reader_conf(args.channel)).start()
    # pcscd answers before its configuration's readers are up; bounded, then the serve command says what is missing
    wait_until_listed(lambda name: name == "Virtual PCD 00 00", timeout=30.0)
    device = f"virtual:{args.profile}?via=pcsc&port={args.channel}&reader=Virtual PCD 00 00&expendable=0"
    try:
        return main(["remote", "serve", "--device", device, "--host", args.host, "--port", str(args.port)])
    finally:
        daemon.stop()


if __name__ == "__main__":
    sys.exit(run())
