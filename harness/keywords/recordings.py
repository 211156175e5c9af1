"""Keywords that hold a device's answers against a recording (``hil compare`` inside a suite).

The main job records the virtual card once through pcscd + vpcd (``fixtures/recordings/``) and compares
every bridge with it, so a bridge that changes an answer fails a requirement naming the command.
"""

from __future__ import annotations

from pathlib import Path

from robot.api import logger
from robotlibcore import keyword

from harness import fixtures
from harness.compare import compare

from .context import LibraryComponent

SHOWN = 5  # differences written into the failure message; the log has them all


def recording_path(name: str) -> Path:
    """``name`` as given when it exists, else in the recordings fixtures (``fixtures/recordings``)."""
    given = Path(name)
    if given.is_file():
        return given
    path = fixtures.recordings_dir() / name
    if not path.is_file():
        raise AssertionError(f"no recording '{name}' (nor {path})")
    return path


class RecordingKeywords(LibraryComponent):
    @keyword
    def recording_path(self, recording: str) -> str:
        """Where ``recording`` is: as given, or in ``fixtures/recordings`` (e.g. for ``replay:<path>``)."""
        return str(recording_path(recording).resolve())

    @keyword
    def device_should_answer_like_recording(self, device: str, recording: str) -> None:
        """Sends the recording's commands to ``device`` (opened for this check alone) and fails on the first
        answers that differ in status word, length, TLV structure or data, or on a command not sent."""
        path = recording_path(recording)
        result = compare(path, device)
        for note in result.notes:
            logger.info(f"note: {note}")
        for difference in result.differences:
            logger.info(difference.line())
        if result.differences or result.not_sent:
            shown = [d.line() for d in (result.differences + result.not_sent)[:SHOWN]]
            raise AssertionError(result.summary() + "\n" + "\n".join(shown))
        logger.info(result.summary())
