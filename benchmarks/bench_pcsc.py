"""How much the PC/SC backend adds to a raw pyscard SCardTransmit, and how long a certificate read takes.

Run: ``.venv/bin/python benchmarks/bench_pcsc.py [--rounds N]`` (starts pcscd if none runs). One virtual
card behind vpcd serves both clients: a raw pyscard connection and the harness's ``Reader.transmit``
share the slot, and their exchanges are interleaved in batches so that drift hits both alike.
Target: our median / raw median ≤ 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smartcard import scard

from devices import open_device
from harness.channel import CardChannel
from harness.jpki import JpkiClient

SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


def raw_connection(reader_name: str) -> tuple[int, int, int]:
    hr, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
    hr, hcard, protocol = scard.SCardConnect(context, reader_name, scard.SCARD_SHARE_SHARED,
                                             scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
    assert hr == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(hr)
    return context, hcard, protocol


def median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="batches of 200 APDUs per client (default 20)")
    parser.add_argument("--cert-reads", type=int, default=20, help="certificate reads per mode (default 20)")
    args = parser.parse_args()

    reader = open_device("virtual:card?via=pcsc")
    context = hcard = 0
    try:
        reader.power_on()
        context, hcard, protocol = raw_connection(reader.name)  # type: ignore[attr-defined]
        apdu_list = list(SELECT_JPKI)
        raw: list[int] = []
        ours: list[int] = []
        clock = time.perf_counter_ns
        for _ in range(20):  # warm-up of both paths
            scard.SCardTransmit(hcard, protocol, apdu_list)
            reader.transmit(SELECT_JPKI)
        for _ in range(args.rounds):
            for _ in range(200):
                start = clock()
                hr, response = scard.SCardTransmit(hcard, protocol, apdu_list)
                raw.append(clock() - start)
                assert hr == scard.SCARD_S_SUCCESS and response == [0x90, 0x00], (hex(hr), response)
            for _ in range(200):
                start = clock()
                response = reader.transmit(SELECT_JPKI)
                ours.append(clock() - start)
                assert response == b"\x90\x00"
        raw_median, our_median = median_us(raw), median_us(ours)
        ratio = our_median / raw_median

        timings: dict[str, list[float]] = {"extended": [], "short": []}
        certificate = b""
        for mode, max_le in (("extended", None), ("short", 256)):
            client = JpkiClient(CardChannel(reader), max_le=max_le)
            client.select_jpki()
            for _ in range(args.cert_reads):
                start = clock()
                certificate = client.read_certificate("auth")
                timings[mode].append((clock() - start) / 1e6)
    finally:
        if hcard:
            scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)
        if context:
            scard.SCardReleaseContext(context)
        reader.close()

    print(f"reader: {reader.name} (pyscard → pcscd → vpcd → virtual card in this process)")  # type: ignore[attr-defined]
    print(f"raw pyscard SCardTransmit median: {raw_median:8.1f} µs  ({len(raw)} SELECTs)")
    print(f"Reader.transmit median:           {our_median:8.1f} µs  ({len(ours)} SELECTs)")
    print(f"ratio ours / raw:                 {ratio:8.3f}  (target ≤ 1.10: {'met' if ratio <= 1.10 else 'MISSED'})")
    print(f"auth certificate ({len(certificate)} bytes) over PC/SC, JpkiClient.read_certificate median:")
    print(f"  extended Le:     {statistics.median(timings['extended']):6.2f} ms")
    print(f"  short APDUs:     {statistics.median(timings['short']):6.2f} ms")
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())
