"""Device pools: ``pool = "benches"`` in the inventory, ``--device pool:benches`` on the command line.

Under pabot (``--processes N``) each worker leases one member of the pool through PabotLib's value
sets (one set per member, tagged ``pool-<name>``): pabot's own server hands a set to one worker at a
time, so two workers never drive one reader, and a worker that finds none free waits for one. The
lease is taken when a suite first opens ``pool:<name>`` and kept by the worker process until it ends
(a pabot worker runs one suite): a suite that reopens its device gets the same reader back. Without
pabot a run is alone on the pool (its reader locks say so) and takes the first member. A parallel
plan (``hil run --plan F --processes N``) leases the member itself before it starts a part, under the
part's ``${CALLER_ID}``, and frees it when the part has ended: the part only reads which one it got.
"""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass

from harness.lab import Inventory, InventoryError, LabDevice, active_inventory
from harness.value_sets import POOL_PREFIX, TAG_PREFIX, is_pool, value_sets_text

__all__ = ["POOL_PREFIX", "TAG_PREFIX", "PoolError", "is_pool", "lease", "members", "value_sets"]


class PoolError(InventoryError):
    """A pool nobody named in the inventory, or one without members; one line."""


def members(name: str, inventory: Inventory | None = None) -> list[LabDevice]:
    """The inventory devices of pool ``pool:<name>``, in inventory order."""
    pool = name[len(POOL_PREFIX):] if is_pool(name) else name
    inventory = inventory if inventory is not None else active_inventory()
    found = [d for d in (inventory.devices.values() if inventory else ()) if d.pool == pool]
    if not found:
        known = sorted({d.pool for d in inventory.devices.values() if d.pool}) if inventory else []
        where = f"in {inventory.path}" if inventory and inventory.path else "(no lab inventory given)"
        raise PoolError(f"no device of pool '{pool}' {where}; pools: {', '.join(known) or 'none'}")
    return found


def value_sets(name: str, inventory: Inventory | None = None) -> str:
    """PabotLib's resource file (``--resourcefile``): one value set per member, tagged with the pool."""
    return value_sets_text(name, [device.name for device in members(name, inventory)])


@dataclass
class _Lease:
    pool: str
    device: str
    uri: str = ""  # PabotLib's server, empty when not under pabot
    caller: str = ""

    def release(self) -> None:
        if not self.uri:
            return
        from robot.libraries.Remote import Remote

        with contextlib.suppress(Exception):  # pabot's server gone at the end of the run: nothing left to free
            Remote(self.uri).run_keyword("release_value_set", [self.caller], {})


_LEASES: dict[str, _Lease] = {}


def lease(name: str) -> str:
    """The member of pool ``name`` this worker process drives (leased on first call)."""
    if name in _LEASES:
        return _LEASES[name].device
    from robot.api import logger
    from robot.libraries.BuiltIn import BuiltIn

    uri = BuiltIn().get_variable_value("${PABOTLIBURI}") or ""
    caller = BuiltIn().get_variable_value("${CALLER_ID}") or ""
    if caller and not uri:
        raise PoolError(f"{name}: a pabot worker without PabotLib cannot lease a device (run pabot with --pabotlib "
                        "and the pool's value sets, as hil run --processes does)")
    if not uri:
        held = _Lease(name, members(name)[0].name)
        logger.info(f"{name}: {held.device} (the only run on the pool)")
    elif (planned := _leased_for_part(name, uri if "://" in uri else f"http://{uri}", caller)) is not None:
        held = _Lease(name, planned)  # the plan's scheduler took it for this part and frees it when the part ends
        logger.info(f"{name}: {planned}, leased for this plan part (PabotLib value set, caller {caller})")
    else:
        from pabot.pabotlib import PabotLib

        library = PabotLib()
        library.acquire_value_set(f"{TAG_PREFIX}{name[len(POOL_PREFIX):]}")
        device = str(library.get_value_from_set("device"))
        held = _Lease(name, device, uri if "://" in uri else f"http://{uri}", caller)
        logger.info(f"{name}: leased {device} for this worker (PabotLib value set, caller {caller})")
    _LEASES[name] = held
    atexit.register(held.release)
    return held.device


def _leased_for_part(name: str, uri: str, caller: str) -> str | None:
    """The member a parallel plan leased for this part before starting it (:mod:`harness.parallel_parts`), if any."""
    from robot.libraries.Remote import Remote

    try:
        device = str(Remote(uri).run_keyword("get_value_from_set", ["device", caller], {}))
    except Exception:  # no set reserved for this caller: a pabot worker, which leases for itself
        return None
    return device if device in {member.name for member in members(name)} else None
