"""The cost of a reader host (a script, not a test): ``python benchmarks/bench_remote.py [--via pcsc]``.

Prints the median APDU round trip through the whole controller path (CardChannel → device) for the same
virtual card opened locally and served by ``hil remote serve`` on 127.0.0.2 (a process of its own), the
overhead per APDU and the ratio, and the same for a guarded VERIFY (built and sent on the host).
Run it where loopback addresses beyond 127.0.0.1 answer (Linux) and, for ``--via pcsc``, as root.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from devices import open_device
from devices.virtual.profile import load_profile
from harness.channel import CardChannel
from harness.jpki import JpkiClient, PinKind
from harness.pin_guard import PinGuard
from harness.remote.guard import RemotePinGuard

REPO = Path(__file__).resolve().parents[1]
SELECT = bytes.fromhex("00A4040C0AD392F000260100000001")
READ = bytes.fromhex("00B0000020")


def median_us(step: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def apdu_us(channel: CardChannel, rounds: int) -> float:
    channel.transmit(SELECT)
    channel.transmit(bytes.fromhex("00A4020C020006"))

    def step() -> None:
        channel.transmit(READ)
        channel.trace.clear()
    return median_us(step, rounds)


def verify_us(guard, rounds: int) -> float:
    return median_us(lambda: guard.verify_configured(PinKind.AUTH), rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--via", choices=("inprocess", "pcsc"), default="inprocess")
    args = parser.parse_args()
    device = "virtual:card" if args.via == "inprocess" else "virtual:card?via=pcsc"
    os.environ.setdefault("HIL_REMOTE_TOKEN", "bench-token")
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))
        port = probe.getsockname()[1]
    host = subprocess.Popen([sys.executable, "-m", "harness.cli", "remote", "serve", "--device", device,
                             "--host", "127.0.0.2", "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        print(host.stdout.readline().strip())
        remote = open_device(f"remote:http://127.0.0.2:{port}")
        remote.wait_for_card(10)
        remote.power_on()
        remote_channel = CardChannel(remote)
        remote_apdu = apdu_us(remote_channel, args.rounds)
        remote_guard = RemotePinGuard(remote_channel, remote, "bench")  # type: ignore[arg-type]
        remote_verify = verify_us(remote_guard, args.rounds // 4)
        remote.close()
    finally:
        host.terminate()
        host.wait(timeout=15)
    local = open_device(device)
    local.wait_for_card(10)
    local.power_on()
    local_channel = CardChannel(local)
    local_apdu = apdu_us(local_channel, args.rounds)
    pins = {name: spec.value for name, spec in load_profile("card").pins.items()}
    guard = PinGuard(JpkiClient(local_channel), expendable=False, device="bench-local", configured=pins.__getitem__)
    local_verify = verify_us(guard, args.rounds // 4)
    local.close()
    print(f"device {device}, {args.rounds} READ BINARY (32 bytes), {args.rounds // 4} guarded VERIFYs")
    print(f"APDU median: local {local_apdu:.1f} µs, remote {remote_apdu:.1f} µs; "
          f"overhead {remote_apdu - local_apdu:.1f} µs per APDU, ratio {remote_apdu / local_apdu:.1f}x")
    print(f"guarded VERIFY (query + VERIFY) median: local {local_verify:.1f} µs, remote {remote_verify:.1f} µs, "
          f"ratio {remote_verify / local_verify:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
