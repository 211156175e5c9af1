"""What opening and closing a serial reader module costs: a pty, RFC 2217 with pyserial's own client, ours.

Run: ``.venv/bin/python benchmarks/bench_serial_open.py [--rounds N]``. One virtual kiosk module (firmware on
a pty, the port server on 127.0.0.1) serves every client. pyserial's unchanged client runs in a child process
that never imports the harness (``devices.serial.rfc2217_port`` changes pyserial's waiting in its process);
rounds alternate between the three, so drift hits all alike. Prints medians and the ratio to pyserial's own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.serial import open_serial
from devices.virtual.card import VirtualCard
from devices.virtual.serial_firmware import PortServer, ReaderFirmware
from devices.virtual.slot import CardSlot

PLAIN_CLIENT = """
import json, sys, time
import serial
url, rounds = sys.argv[1], int(sys.argv[2])
opens, closes = [], []
for _ in range(rounds):
    start = time.perf_counter()
    port = serial.serial_for_url(url, baudrate=38400)
    opened = time.perf_counter()
    port.close()
    opens.append(opened - start)
    closes.append(time.perf_counter() - opened)
print(json.dumps([opens, closes]))
"""


def ours(uri: str) -> tuple[float, float]:
    start = time.perf_counter()
    reader = open_serial(uri)
    opened = time.perf_counter()
    reader.close()
    return opened - start, time.perf_counter() - opened


def plain(url: str, rounds: int) -> tuple[list[float], list[float]]:
    out = subprocess.run([sys.executable, "-c", PLAIN_CLIENT, url, str(rounds)], capture_output=True, text=True,
                         check=True, timeout=120)
    opens, closes = json.loads(out.stdout)
    return opens, closes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of each client (default 10)")
    args = parser.parse_args()
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("pty", "rfc2217 pyserial",
                                                                                "rfc2217 ours")}
    with ReaderFirmware(CardSlot(VirtualCard.from_profile("card")), "kiosk") as firmware:
        server = PortServer(firmware.device).start()
        try:
            for _ in range(args.rounds):
                for name, uri in (("pty", f"serial:{firmware.device}?protocol=kiosk"),
                                  ("rfc2217 ours", f"{server.url}?protocol=kiosk&ign_set_control&reconnect_grace=0")):
                    opened, closed = ours(uri)
                    samples[name][0].append(opened)
                    samples[name][1].append(closed)
                opens, closes = plain(f"{server.url}?ign_set_control", 1)
                samples["rfc2217 pyserial"][0].extend(opens)
                samples["rfc2217 pyserial"][1].extend(closes)
        finally:
            server.stop()
    base = statistics.median(samples["rfc2217 pyserial"][0]) + statistics.median(samples["rfc2217 pyserial"][1])
    print(f"{'client':<18} {'open ms':>9} {'close ms':>9} {'both / pyserial':>16}   ({args.rounds} rounds, medians)")
    for name, (opens, closes) in samples.items():
        both = statistics.median(opens) + statistics.median(closes)
        print(f"{name:<18} {statistics.median(opens) * 1000:9.1f} {statistics.median(closes) * 1000:9.1f} "
              f"{both / base:16.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
