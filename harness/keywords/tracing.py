"""Keywords that put the APDU trace into Robot's log."""

from __future__ import annotations

from robot.api import logger
from robotlibcore import keyword

from .context import LibraryComponent


class TraceKeywords(LibraryComponent):
    @keyword
    def start_apdu_trace(self) -> None:
        """Forgets the exchanges so far: the next ``Log APDU Trace`` shows only this test's APDUs."""
        self.ctx.trace.clear()

    @keyword
    def log_apdu_trace(self) -> None:
        """Writes the test's APDUs to the log as a table (direction, hex, SW name, ms); PINs show ``****``."""
        if not self.ctx.trace.entries:
            logger.info("APDU trace: no exchanges")
            return
        logger.info(self.ctx.trace.as_html(), html=True)
        self.ctx.trace.clear()

    @keyword
    def apdu_count(self) -> int:
        """Number of APDUs sent on the open device since it was opened."""
        return self.ctx.require_channel().apdu_count
