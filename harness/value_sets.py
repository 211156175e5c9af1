"""PabotLib's value sets of device pools: pure text, so the runner builds them without the inventory.

One value set per pool member, named after it and tagged ``pool-<name>``; a process that acquires
a set with that tag drives that member alone until it releases it (see :mod:`harness.pools`).
"""

from __future__ import annotations

import configparser
import io

POOL_PREFIX = "pool:"
TAG_PREFIX = "pool-"


def is_pool(name: str | None) -> bool:
    return bool(name) and str(name).startswith(POOL_PREFIX)


def value_sets_text(pool_device: str, member_names: list[str]) -> str:
    """PabotLib's resource file (``--resourcefile``) for pool ``pool:<name>`` with these members."""
    pool = pool_device[len(POOL_PREFIX):]
    sets = configparser.ConfigParser()
    for name in member_names:
        sets[name] = {"tags": f"{TAG_PREFIX}{pool}", "device": name}
    text = io.StringIO()
    sets.write(text)
    return text.getvalue()
