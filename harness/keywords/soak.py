"""``Repeat Exchange``: a soak of many APDUs inside one keyword, in constant memory.

A Robot keyword per APDU costs ~7.5 KB of memory and ~900 bytes of output.xml that stay until the run
ends; a million of them do not fit a lab machine. This keyword loops itself and keeps bounded figures
(:class:`harness.soak.SoakStats`): counts per status word, latency percentiles, the first and last
exchanges and the first failures. Every exchange still goes through the channel, so the per-test table
keeps its first and last rows (:class:`harness.trace.ApduTrace`) and ``traces/<device>.jsonl`` gets every
exchange, streamed to disk line by line (nothing of it stays in memory).
"""

from __future__ import annotations

import time

from robot.api import logger
from robotlibcore import keyword

from devices.base import DeviceError
from harness.pin_guard import refuse_raw_secret
from harness.soak import Exchange, SoakStats, Step, check_times, parse_step, verdict

from .context import LibraryComponent


class SoakKeywords(LibraryComponent):
    """Long runs of exchanges (the ``soak`` suite, and a lab's own night runs)."""

    @keyword("Repeat Exchange")
    def repeat_exchange(self, *steps: str, times: int | str = 1, expected_sw: str = "9000",
                        same_answer: bool = False, allowed_failures: int | str = 0, keep: int | str = 10) -> dict:
        """Sends the ``steps`` (command APDUs as hex) in order, ``times`` times, checking every answer.

        A step is ``00B0000010`` (answer SW ``expected_sw``), ``00B0000010 -> 6982`` (that SW) or
        ``00B0000004 -> 0102030490 00`` (exactly that answer). With ``same_answer`` every answer must also
        equal the first answer to its step. Fails once more than ``allowed_failures`` answers were wrong or
        missing (a device error counts as one), after logging what it saw. VERIFY or CHANGE REFERENCE DATA
        with data are refused: PINs go through the keywords that name them.

        Logs one line and a bounded table (first and last ``keep`` exchanges, the first failures) and
        returns the figures: ``count``, ``failures``, ``by_sw``, ``min_ms``/``mean_ms``/``p50_ms``/
        ``p90_ms``/``p99_ms``/``p999_ms``/``max_ms``.
        """
        if not steps:
            raise ValueError("Repeat Exchange needs at least one command APDU")
        script = [parse_step(text, expected_sw) for text in steps]
        for step in script:
            refuse_raw_secret(step.command, "Repeat Exchange")
        count, allowed = check_times(times), int(allowed_failures)
        stats = SoakStats(keep=int(keep))
        try:
            self._run(script, count, allowed, bool(same_answer), stats)
        finally:  # also when a signal stops the run: what was seen so far is logged
            logger.info(f"Repeat Exchange: {stats.line()}")
            logger.info(stats.as_html(), html=True)
        if stats.failures > allowed:
            first = stats.first_failures[0]
            raise AssertionError(f"{stats.failures} of {stats.count} exchanges answered wrongly (allowed "
                                 f"{allowed}); the first, #{first.index}: {first.problem}")
        return stats.summary()

    def _run(self, script: list[Step], count: int, allowed: int, same_answer: bool, stats: SoakStats) -> None:
        channel, trace = self.ctx.require_channel(), self.ctx.trace
        first_answers: list[bytes | None] = [None] * len(script)
        index = 0
        for _ in range(count):
            for position, step in enumerate(script):
                index += 1
                start = time.perf_counter()
                try:
                    answer = channel.transmit(step.command).to_bytes()
                except DeviceError as exc:
                    ms = (time.perf_counter() - start) * 1000
                    stats.add(Exchange(index, trace.entries[-2].hex, "", "", ms, f"{type(exc).__name__}: {exc}"))
                    if stats.failures > allowed:
                        return
                    continue
                ms = (time.perf_counter() - start) * 1000
                reference = first_answers[position] if same_answer else None
                problem = verdict(step, answer, reference)
                if same_answer and reference is None and not problem:
                    first_answers[position] = answer
                sent, received = trace.entries[-2], trace.entries[-1]  # as the log shows them: redacted
                stats.add(Exchange(index, sent.hex, received.hex, f"{answer[-2]:02X}{answer[-1]:02X}", ms, problem))
                if stats.failures > allowed:
                    return
