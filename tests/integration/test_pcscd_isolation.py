"""harness.pcscd_isolation: a part's private /run/pcscd, hidden USB drivers, its own vpcd ports, its own pcscd.

Each namespace is entered in a child Python process (the way a part's supervisor does), never in pytest's.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from devices import open_device
from devices.virtual import pcscd as device_pcscd
from harness import pcscd_isolation

pytest_plugins = ["pcsc_support"]  # the machine's pcscd (vpcd's readers on 35963/35964) beside the private one

ROOT = Path(__file__).resolve().parents[2]
SELECT_JPKI = bytes.fromhex("00A4040C0AD392F000260100000001")


def _in_own_namespace(code: str) -> dict:
    """Run ``code`` after :func:`pcscd_isolation.enter` in a child; it prints one JSON line."""
    prologue = "import json, os\nfrom harness import pcscd_isolation\nport = pcscd_isolation.enter()\n"
    proc = subprocess.run([sys.executable, "-c", prologue + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, pcscd_isolation.PART_ENV: "private"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_parts_can_have_a_pcscd_of_their_own_here_unless_switched_off(monkeypatch):
    assert pcscd_isolation.unavailable() == ""  # root in CI: a failure here says why, it is never skipped
    monkeypatch.setenv(pcscd_isolation.SWITCH_ENV, "0")
    assert pcscd_isolation.unavailable() == "HIL_PRIVATE_PCSCD=0"


def test_the_device_layer_reads_the_port_the_harness_sets():
    assert pcscd_isolation.PORT_ENV == device_pcscd.PRIVATE_PORT_ENV


def test_a_namespace_has_its_own_run_dir_no_usb_driver_and_a_free_port_pair():
    marker = f"isolation-{uuid.uuid4().hex}"
    seen = _in_own_namespace(
        f"open('/run/pcscd/{marker}', 'w').close()\n"
        "bundles = {b: os.listdir(f'/usr/lib/pcsc/drivers/{b}') for b in os.listdir('/usr/lib/pcsc/drivers')"
        " if b.endswith('.bundle')}\n"
        "print(json.dumps({'port': port, 'env': os.environ.get('HIL_VPCD_PORT'), 'bundles': bundles,"
        " 'part_env': os.environ.get('HIL_PART_PCSCD'), 'vpcd': os.path.exists('/usr/lib/pcsc/drivers/serial')}))\n")
    assert not (Path("/run/pcscd") / marker).exists()  # what the part wrote stayed in its namespace
    low, high = pcscd_isolation.PORT_RANGE
    assert low <= seen["port"] < high and seen["port"] % 2 == 0 and seen["env"] == str(seen["port"])
    assert seen["part_env"] is None  # the part's own children are not asked to enter again
    real_bundles = [p.name for p in Path("/usr/lib/pcsc/drivers").glob("*.bundle")]
    assert real_bundles, "libccid's driver bundle is missing: is pcscd installed?"
    assert seen["bundles"] == {name: [] for name in real_bundles}  # covered inside, untouched outside
    assert all(any(p.iterdir()) for p in Path("/usr/lib/pcsc/drivers").glob("*.bundle"))
    assert seen["vpcd"]  # the serial drivers (vpcd's) stay visible


def test_a_card_behind_vpcd_in_a_namespace_uses_its_own_pcscd_beside_the_machines(pcscd):
    machine = open_device("virtual:card?via=pcsc")
    machine.power_on()
    try:
        assert machine.transmit(SELECT_JPKI)[-2:] == b"\x90\x00"
        seen = _in_own_namespace(
            "from devices import open_device\n"
            "reader = open_device('virtual:card?via=pcsc')\n"
            "reader.power_on()\n"
            f"answer = reader.transmit(bytes.fromhex('{SELECT_JPKI.hex()}')).hex()\n"
            "details = reader.capabilities.details\n"
            "from devices.pcsc.scard import establish_context, list_readers\n"
            "readers = list_readers(establish_context())\n"
            "reader.close()\n"
            "print(json.dumps({'port': port, 'answer': answer, 'vpcd_port': details['vpcd_port'],"
            " 'readers': readers}))\n")
        assert seen["answer"].endswith("9000")
        assert seen["vpcd_port"] == str(seen["port"]) != "35963"
        assert seen["readers"] == ["Virtual PCD 00 00", "Virtual PCD 00 01"]  # only its own pcscd's readers
        assert machine.transmit(SELECT_JPKI)[-2:] == b"\x90\x00"  # the machine's card never noticed
        assert machine.capabilities.details["vpcd_port"] in ("35963", "35964")
    finally:
        machine.close()


class _Picks(random.Random):
    def __init__(self, picks: list[int]) -> None:
        super().__init__(0)
        self.picks = picks

    def randrange(self, *_args, **_kwargs) -> int:  # type: ignore[override]
        return self.picks.pop(0)


def test_a_port_pair_with_a_taken_port_is_passed_over():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        first = busy - busy % 2  # a pair holding the taken port
        free = next(p for p in range(20000, 32000, 2) if p != first and pcscd_isolation._bindable(p)
                    and pcscd_isolation._bindable(p + 1))
        assert pcscd_isolation.free_port_pair(_Picks([first, free])) == free
