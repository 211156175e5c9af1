"""Old home of the PIN guard and the redaction: both moved, and are re-exported here for old imports.

Secret redaction lives in :mod:`harness.iso.redact`; the PIN guard in :mod:`harness.pin_guard`.
"""

from __future__ import annotations

from harness.iso.redact import MASK as MASK
from harness.iso.redact import SECRET_INS as SECRET_INS
from harness.iso.redact import carries_secret as carries_secret
from harness.iso.redact import redact_apdu as redact_apdu

_MOVED_TO_PIN_GUARD = ("PinGuard", "PinGuardRefusal", "guard_wrong_attempt", "wrong_pin_like", "new_pin_like")


def __getattr__(name: str) -> object:
    """The PIN guard moved to :mod:`harness.pin_guard`; old imports from here keep working (loaded lazily:
    the guard sits above the session path, which imports this module's redaction)."""
    if name in _MOVED_TO_PIN_GUARD:
        from harness import pin_guard

        return getattr(pin_guard, name)
    raise AttributeError(f"module 'harness.safety' has no attribute {name!r}")
