"""Certificate reads over nfcpy's UDP link against the in-process card (a script, not a test).

Run ``python benchmarks/bench_nfc.py [--rounds N]``. For each way in (``virtual:card`` in-process,
``virtual:card?via=nfc`` through nfcpy's real ISO-DEP code) it prints the median time and APDU count
of reading the 2 KB auth certificate with one extended-Le READ BINARY and with short APDUs, the
median SELECT round trip, the link frames per read and the time to re-activate the card.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from devices import Reader, open_device
from harness.channel import CardChannel
from harness.jpki import JpkiClient

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


@dataclass(frozen=True)
class Figures:
    uri: str
    extended_ms: float
    extended_apdus: int
    short_ms: float
    short_apdus: int
    select_us: float
    frames_per_read: str
    activation_ms: float


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed_read(channel: CardChannel, client: JpkiClient, rounds: int) -> tuple[float, int]:
    samples, count = [], 0
    for _ in range(rounds):
        before = channel.apdu_count
        start = time.perf_counter()
        client.read_certificate("auth")
        samples.append(time.perf_counter() - start)
        count = channel.apdu_count - before
        channel.trace.clear()
    return median_ms(samples), count


def measure(uri: str, rounds: int) -> Figures:
    reader: Reader = open_device(uri)
    try:
        reader.wait_for_card(5)
        reader.power_on()
        channel = CardChannel(reader)
        extended = JpkiClient(channel)
        extended.select_jpki()
        server = getattr(reader, "server", None)
        frames = ""
        if server is not None:
            server.reset_stats()
            extended.read_certificate("auth")
            stats = server.snapshot()
            frames = f"{stats['frames_in']} in / {stats['frames_out']} out"
        extended_ms, extended_apdus = timed_read(channel, extended, rounds)
        short = JpkiClient(channel, max_le=256)
        short_ms, short_apdus = timed_read(channel, short, rounds)
        selects = []
        for _ in range(rounds * 10):
            start = time.perf_counter()
            channel.transmit(SELECT_JPKI)
            selects.append(time.perf_counter() - start)
            channel.trace.clear()
        activations = []
        for _ in range(rounds):
            start = time.perf_counter()
            reader.power_off()
            reader.power_on()
            activations.append(time.perf_counter() - start)
        return Figures(uri, extended_ms, extended_apdus, short_ms, short_apdus,
                       statistics.median(selects) * 1e6, frames or "-", median_ms(activations))
    finally:
        reader.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rows = [measure(uri, args.rounds) for uri in ("virtual:card", "virtual:card?via=nfc")]
    header = (f"{'device':<22} {'cert ext.':>10} {'APDUs':>5} {'cert short':>11} {'APDUs':>5} "
              f"{'SELECT':>9} {'re-activate':>12}  link frames per extended read")
    print(header)
    for f in rows:
        print(f"{f.uri:<22} {f.extended_ms:>8.2f}ms {f.extended_apdus:>5} {f.short_ms:>9.2f}ms "
              f"{f.short_apdus:>5} {f.select_us:>7.0f}us {f.activation_ms:>10.2f}ms  {f.frames_per_read}")
    local, nfc = rows
    print(f"nfcpy UDP link / in-process: certificate read x{nfc.extended_ms / local.extended_ms:.0f} "
          f"(extended Le), x{nfc.short_ms / local.short_ms:.0f} (short APDUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
