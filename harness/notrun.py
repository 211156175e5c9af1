"""The third outcome: a requirement the set-up kept from running is *not run*, not failed.

A test that failed because the reader is gone, a service is down, a PIN variable or the holder is
missing, or the suite does not fit the card, says nothing about the card. The listener turns such a
FAIL into a SKIP tagged ``not-run`` whose message starts with ``not run:`` and keeps the reason; a
card that answered wrongly stays a FAIL. Keywords may also skip with a ``not run:`` message.
"""

from __future__ import annotations

import re

NOT_RUN_TAG = "not-run"
NOT_RUN_PREFIX = "not run: "

# Exceptions that describe the set-up, never the card's answers (Robot prefixes the class name).
SETUP_ERRORS = (
    "UnknownDevice", "BackendUnavailable", "NoReader", "NoCard", "CardRemoved", "DeviceGone",
    "DeviceBusy", "BadDeviceUri", "MissingSecret", "InventoryError", "ProfileError", "UnknownHolder", "NotThisKind",
    "DeviceError",
)
_SETUP = re.compile(r"(?:^|\n)(?:(?:Parent suite setup failed|Setup failed):\s*)*(" + "|".join(SETUP_ERRORS) + r"): ")
_STOPPED = re.compile(r"Test execution stopped due to a fatal error|Execution terminated by signal")
_SKIP_NOT_RUN = re.compile(r"(?:^|\n)(?:Skipped in parent suite setup:\s*)?not run: ")


def set_up_problem(message: str) -> str | None:
    """The set-up reason in a failure message, or None when the failure is the card's."""
    if _STOPPED.search(message or ""):
        return "the run was interrupted"
    match = _SETUP.search(message or "")
    return message[match.start(1):].strip() if match else None


class NotRunListener:
    """Robot listener (API 3); list it before the journal so the journal records the final status."""

    ROBOT_LISTENER_API_VERSION = 3

    def end_test(self, data, result) -> None:
        if result.failed:
            reason = set_up_problem(result.message)
            if reason is not None:
                result.status = "SKIP"
                result.message = NOT_RUN_PREFIX + reason
                result.tags.add(NOT_RUN_TAG)
        elif result.skipped and _SKIP_NOT_RUN.search(result.message or ""):
            result.tags.add(NOT_RUN_TAG)


def is_not_run(test) -> bool:
    return test.status == "SKIP" and NOT_RUN_TAG in test.tags
