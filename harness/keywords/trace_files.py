"""Where the library writes a device's trace file, and the facts a ``replay:`` device brings.

* In every Robot run: ``${OUTPUT DIR}/traces/<device>.jsonl`` (holder data masked, or shown for a
  synthetic holder under ``--show-holder-data``).
* Under ``hil record``: also the file ``$HIL_RECORD_FILE``, anonymised when ``$HIL_RECORD_ANONYMISE``
  is ``1``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from devices.base import Reader
from harness.anonymise import Anonymiser
from harness.iso.redact import SECRETS
from harness.tracefile import TraceWriter, attach, file_name, pin_shapes

from . import privacy
from .context import LibraryContext

RECORD_FILE_ENV = "HIL_RECORD_FILE"
RECORD_ANONYMISE_ENV = "HIL_RECORD_ANONYMISE"


def trace_path(device: str) -> Path | None:
    """``${OUTPUT DIR}/traces/<device>.jsonl`` of the running Robot run, None outside one."""
    try:
        from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError
    except ImportError:  # pragma: no cover - Robot is a dependency
        return None
    try:
        outputdir = BuiltIn().get_variable_value("${OUTPUT DIR}")
    except RobotNotRunningError:
        return None
    return Path(outputdir) / "traces" / file_name(device) if outputdir else None


def begin(reader: Reader, device: str) -> list[TraceWriter]:
    """Attaches the writers to a reader just opened (before its power-on, so the ATR is in the files):
    the run's trace file and, under ``hil record``, the recording."""
    writers = []
    path = trace_path(device)
    if path is not None:
        writers.append(TraceWriter(path, device))
    recording = os.environ.get(RECORD_FILE_ENV)
    if recording:
        writers.append(TraceWriter(Path(recording), device, holder_data="recording"))
    for writer in writers:
        attach(reader, writer)
    return writers


def facts_record(ctx: LibraryContext) -> dict[str, Any]:
    """What a replay of this device needs to know, never a secret: kind, expendable, PIN shapes, holder record."""
    facts = ctx.facts
    holder = facts.holder
    capabilities = ctx.reader.capabilities if ctx.reader is not None else None
    shown = {} if capabilities is None else {
        "extended_apdu": capabilities.extended_apdu, "max_command_data": capabilities.max_command_data,
        "max_response": capabilities.max_response, "contactless": capabilities.contactless,
        "pin_pad": capabilities.pin_pad}
    return {"capabilities": shown, "kind": facts.kind, "expendable": facts.expendable, "virtual": facts.virtual,
            "holder_record": holder.record if holder is not None and holder.synthetic else "",
            "pins": pin_shapes(facts.pins)}


def start(writers: list[TraceWriter], ctx: LibraryContext) -> None:
    """Once the device's facts are known: decide what each file may show of the holder, write the headers."""
    for writer in writers:
        if writer.holder_data == "recording" and os.environ.get(RECORD_ANONYMISE_ENV) == "1":
            holder = ctx.facts.holder
            known = privacy.holder_values(holder).values() if holder is not None else ()
            writer.holder_data = "anonymised"
            writer.anonymiser = Anonymiser(source=SECRETS.values).with_known(known)
        else:
            writer.holder_data = "shown" if ctx.trace.show_holder_data else "masked"
        header = facts_record(ctx)
        if writer.holder_data == "anonymised":
            header["holder_record"] = ""  # the anonymous holder's, not the card's
        writer.open(header)


def card_replaced(reader: Reader) -> None:
    """Notes in the trace that a fresh virtual card went in (``hil compare`` does the same on its device)."""
    for writer in reader.trace_writers:
        writer.event("card_replaced")
