"""Third-party loggers (nfcpy, pyserial, pyscard, urllib3, http.client) pass the same redaction as the trace.

nfcpy logs every ISO-DEP frame in hex (``>>> 0200200080043235…``) at DEBUG and below; with Robot at DEBUG
or TRACE those records land in output.xml. :func:`install_log_redaction` rewrites every record's message
through :func:`harness.iso.redact.redact_text` before any handler sees it, at every level.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from harness.iso.redact import redact_text

THIRD_PARTY_LOGGERS = ("nfc", "serial", "smartcard", "urllib3", "http.client", "RobotFramework")


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through :func:`redact_text`, at every level, before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    if getattr(record, "_hil_redacted", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is left to logging's own error handling
        return
    cleaned = redact_text(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    record._hil_redacted = True


REDACTING_FILTER = RedactingFilter()
_installed = threading.Lock()
_previous_factory: Callable[..., logging.LogRecord] | None = None


def install_log_redaction() -> None:
    """Puts every log record of this process through the redaction, whatever logger or handler it reaches.

    A record factory catches records of child loggers too (``nfc.clf.udp``), which a filter on ``nfc``
    alone would not; the filter also sits on the named loggers and on the root handlers (Robot's
    Python logging bridge) for records made before the factory was installed. Idempotent.
    """
    global _previous_factory
    with _installed:
        if _previous_factory is None:
            previous = logging.getLogRecordFactory()

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                redact_record(record)
                return record

            _previous_factory = previous
            logging.setLogRecordFactory(factory)
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if REDACTING_FILTER not in logger.filters:
            logger.addFilter(REDACTING_FILTER)
    for handler in logging.getLogger().handlers:
        if REDACTING_FILTER not in handler.filters:
            handler.addFilter(REDACTING_FILTER)
    _redact_http_client_debug()


def _redact_http_client_debug() -> None:
    """http.client's debug output (``debuglevel``) is ``print``, not logging: route it through the redaction."""
    import builtins
    import http.client

    if getattr(http.client, "print", None) is not None:
        return

    def redacting_print(*args: Any, **kwargs: Any) -> None:
        builtins.print(*(redact_text(str(a)) for a in args), **kwargs)

    http.client.print = redacting_print  # type: ignore[attr-defined]
