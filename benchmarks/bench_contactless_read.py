"""Certificate reads shaped for the air: header then exactly the DER length, against one full-EF read.

Run: ``.venv/bin/python benchmarks/bench_contactless_read.py [--rounds N]`` (a script, not a test; nfcpy's
UDP link on 127.0.0.1). For each shape it reads the auth certificate over nfcpy's real ISO-DEP code and
prints medians of: APDUs, frame bytes on the air both ways (PCB, CID and CRC_B counted, as the virtual
PICC heard and sent them) against the DER length, the air time those frames take at 106 and at
424 kbit/s (estimate below), and the measured wall time against ``card-timed``, whose chip model spends
10 bit times at 106 kbit/s on every byte a READ BINARY returns. Rounds of the two shapes interleave.

Air-time estimate, ISO 14443-2/-3 Type B: each byte 10 etu (start, 8 data, stop), each frame SOF + EOF
22 etu, before each card frame the default TR0 + TR1 (456/fs), before each reader frame 14 etu; one etu
is 128/fc at 106 kbit/s, 32/fc at 424. The UDP link itself has no air, so this is a model of the frames
that were actually exchanged, not a measurement of a radio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devices.nfc.reader import open_nfc
from devices.virtual.bridges.nfc import NfcUdpCard
from devices.virtual.card import VirtualCard
from devices.virtual.slot import CardSlot
from harness.channel import CardChannel
from harness.jpki import JpkiClient

FC = 13.56e6
FS = FC / 16  # the subcarrier
ETU_DIVISOR = {106: 128, 212: 64, 424: 32, 848: 16}
SHAPES = {"full EF read": False, "header + exact": True}


def air_ms(stats: dict[str, int], rate: int) -> float:
    """Air time of the counted frames at ``rate`` kbit/s (module doc)."""
    etu = ETU_DIVISOR[rate] / FC
    frames = stats["frames_in"] + stats["frames_out"]
    bits = 10 * (stats["bytes_in"] + stats["bytes_out"]) + 22 * frames
    return (bits * etu + stats["frames_out"] * 456 / FS + stats["frames_in"] * 14 * etu) * 1000


@dataclass
class Samples:
    apdus: list[int]
    air_bytes: list[int]
    air_106: list[float]
    air_424: list[float]
    wall_ms: list[float]


def read_once(server: NfcUdpCard, client: JpkiClient, channel: CardChannel) -> tuple[int, dict[str, int], float, int]:
    server.reset_stats()
    before = channel.apdu_count
    started = time.perf_counter()
    der = client.read_certificate("auth")
    wall = (time.perf_counter() - started) * 1000
    channel.trace.clear()
    return channel.apdu_count - before, server.snapshot(), wall, len(der)


def measure(profile: str, rounds: int) -> tuple[dict[str, Samples], int]:
    results = {name: Samples([], [], [], [], []) for name in SHAPES}
    der_length = 0
    with NfcUdpCard(CardSlot(VirtualCard.from_profile(profile))) as server:
        reader = open_nfc(f"{server.device_uri}?bit_rate=106")  # the timed chip model counts at 106
        try:
            reader.wait_for_card(5)
            reader.power_on()
            channel = CardChannel(reader)
            clients = {name: JpkiClient(channel, header_first=first) for name, first in SHAPES.items()}
            clients["full EF read"].select_jpki()
            for _ in range(rounds):
                for name, client in clients.items():
                    apdus, stats, wall, der_length = read_once(server, client, channel)
                    sample = results[name]
                    sample.apdus.append(apdus)
                    sample.air_bytes.append(stats["bytes_in"] + stats["bytes_out"])
                    sample.air_106.append(air_ms(stats, 106))
                    sample.air_424.append(air_ms(stats, 424))
                    sample.wall_ms.append(wall)
        finally:
            reader.close()
    return results, der_length


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 1000:
        print("--rounds must be 1-1000", file=sys.stderr)
        return 2
    timed, der_length = measure("card-timed", args.rounds)
    med = statistics.median
    print(f"auth certificate over nfcpy's UDP link (DER {der_length} bytes, EF 2048), medians of {args.rounds}:")
    print(f"{'shape':<16} {'APDUs':>5} {'bytes on air':>13} {'/ DER':>6} {'air 106 kbit/s':>15} "
          f"{'air 424 kbit/s':>15} {'measured (card-timed, 106)':>27}")
    for name, s in timed.items():
        print(f"{name:<16} {med(s.apdus):>5.0f} {med(s.air_bytes):>13.0f} {med(s.air_bytes) / der_length:>6.2f} "
              f"{med(s.air_106):>12.1f} ms {med(s.air_424):>12.1f} ms {med(s.wall_ms):>24.1f} ms")
    full, shaped = timed["full EF read"], timed["header + exact"]
    print(f"header + exact / full EF read: air time x{med(shaped.air_106) / med(full.air_106):.2f}, "
          f"measured x{med(shaped.wall_ms) / med(full.wall_ms):.2f}, "
          f"bytes x{med(shaped.air_bytes) / med(full.air_bytes):.2f}; "
          f"at 424 kbit/s the shaped read takes x{med(shaped.air_424) / med(full.air_106):.2f} "
          f"of a full read at 106")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
