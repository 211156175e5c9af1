"""The trace as data: every exchange with a device, one JSON object a line (``traces/<device>.jsonl``).

Each ``hil run`` writes one file per device beside output.xml; ``hil record`` writes the same format as a
recording a lab may commit and ``replay:`` answers from. Lines (``type``):

* ``header``: format, device, when, what the holder data are (``masked``, ``shown`` for a synthetic
  holder, ``anonymised``), the card's facts a replay needs: kind, expendable, the holder record of a
  virtual card, and each PIN's length and character class (never its value);
* ``power_on`` (with the ATR) and ``power_off``; ``card_replaced`` when a suite put a fresh virtual card in;
* ``exchange``: test and requirement ID, ``by`` (``harness``, or ``reader`` for what a backend sent on its
  own: GET RESPONSE, a ``6Cxx`` re-send), ``command`` (hex; VERIFY/CHANGE data as ``****(4 digits)``),
  its ``name`` and ``applet``, ``response`` (hex, or the structure only for a masked personal file, then
  ``masked``), ``sw``, ``sw_name`` and ``length`` (data bytes), ``sent`` (UTC) and ``ms``; an exchange
  that failed has ``error``.

Every text of a line passes :func:`harness.iso.redact.redact_text` last, as every other thing the harness writes;
numbers (the exchange's ``n``, ``ms``, ``length``) are the harness's own and stay numbers: a 4-digit PIN's
value also occurs as an exchange number, and masking it there broke the line's JSON.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from devices.base import DeviceError, Reader
from harness.anonymise import Anonymiser
from harness.iso.apdu import status_name, to_hex
from harness.iso.apdu_names import character_class, command_hex, command_name
from harness.iso.redact import SECRETS, ApduContext, redact_text

FORMAT = "jpki-hil trace 1"
REQUIREMENT_TAG = re.compile(r"^[A-Za-z]{3,7}-[A-Za-z0-9]{2,6}-\d{3}$")


@dataclass
class CurrentTest:
    """The test Robot runs now (set by the keyword library's listener), for every line written meanwhile."""

    name: str = ""
    requirement: str = ""

    def begin(self, name: str, tags: list[str]) -> None:
        self.name = name
        self.requirement = next((t.upper() for t in tags if REQUIREMENT_TAG.match(t)), "")

    def end(self) -> None:
        self.name = self.requirement = ""


CURRENT = CurrentTest()


def file_name(device: str) -> str:
    """``virtual:card?via=pcsc`` → ``virtual-card-via-pcsc.jsonl``."""
    return (re.sub(r"[^A-Za-z0-9._]+", "-", device).strip("-") or "device") + ".jsonl"


def pin_shapes(pins: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Each PIN's length and character class: what a replay needs to send a PIN of the same kind."""
    return {kind: {"length": len(value), "class": character_class(value.encode("utf-8"))}
            for kind, value in pins.items()}


@dataclass
class TraceWriter:
    """Appends the lines of one device's exchanges to a JSONL file; thread-safe, flushed at every line."""

    path: Path
    device: str
    holder_data: str = "masked"  # "masked", "shown" (synthetic holder, asked for) or "anonymised"
    # (until the header is written, "recording" marks the writer of a recording)
    anonymiser: Anonymiser | None = None
    context: ApduContext = field(default_factory=ApduContext)
    _file: IO[str] | None = field(default=None, repr=False)
    _early: list[dict[str, Any]] = field(default_factory=list, repr=False)  # lines before the facts are known
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _masked: MaskedTexts = field(default_factory=lambda: MaskedTexts(), repr=False)
    count: int = 0

    def open(self, facts: dict[str, Any]) -> TraceWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self.write({"type": "header", "format": FORMAT, "device": self.device, "written": _now(),
                    "holder_data": self.holder_data, **facts})
        early, self._early = self._early, []
        for record in early:
            self.write(record)
        return self

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            if len(self._early) < 64:  # the power-on before the device's facts are known
                self._early.append(record)
            return
        with self._lock:
            line = json.dumps(self._masked.record(record), ensure_ascii=False)
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _test(self) -> dict[str, str]:
        return {"test": CURRENT.name, "requirement": CURRENT.requirement}

    def power(self, event: str, atr: bytes = b"") -> None:
        self.context = ApduContext()  # a reset forgets the selection, as the card does
        record: dict[str, Any] = {"type": event, **self._test(), "sent": _now()}
        if atr:
            record["atr"] = to_hex(atr)
        self.write(record)

    def event(self, kind: str) -> None:
        """A line for what happened to the card outside the APDUs (``card_replaced``: a fresh virtual card)."""
        self.write({"type": kind, **self._test(), "sent": _now()})

    def response_fields(self, raw: bytes) -> dict[str, Any]:
        """The response as it may be written: personal file data shown, anonymised or masked."""
        pending = self.context.pending
        if pending is None or len(raw) <= 2 or self.holder_data == "shown":
            return {"response": to_hex(raw)}
        if self.holder_data == "anonymised" and self.anonymiser is not None:
            return {"response": to_hex(self.anonymiser.anonymise(raw[:-2], pending[1]) + raw[-2:]),
                    "anonymised": True}
        return {"response": self.context.response(raw), "masked": True}

    def exchange(self, command: bytes, response: bytes | None, ms: float, sent: str, by: str = "harness",
                 error: str = "") -> None:
        if by == "harness":
            self.context.command(command)
        self.count += 1
        record: dict[str, Any] = {"type": "exchange", "n": self.count, **self._test(), "by": by,
                                  "name": command_name(command, self.context.applet),
                                  "applet": self.context.applet or "", "command": command_hex(command)}
        if response is not None:
            fields = self.response_fields(response)
            if not fields.get("masked") and redact_text(str(fields["response"])) != fields["response"]:
                # a known secret's bytes in an ordinary answer (the holder's family name in a certificate's
                # policy text): the line is masked on writing, so compare and replay treat it as masked
                fields["masked"] = True
            record.update(fields)
            if len(response) >= 2:
                sw = int.from_bytes(response[-2:], "big")
                record.update(sw=f"{sw:04X}", sw_name=status_name(sw), length=len(response) - 2)
        if error:
            record["error"] = error
        record.update(sent=sent, ms=round(ms, 3))
        self.write(record)


@dataclass
class MaskedTexts:
    """Every string of a record through :func:`redact_text`, each distinct text masked once.

    A soak writes the same test name, command and answer a million times; masking them again each time
    was ~0.1 ms a line, most of an in-process exchange's cost. The cache holds only masked texts of the
    secrets known when they were masked: it is emptied whenever the known secrets change, and when full.
    """

    limit: int = 4096
    _texts: dict[str, str] = field(default_factory=dict)
    _secrets: list[str] = field(default_factory=list)

    def record(self, value: Any) -> Any:
        """``value`` with every string in it masked (PINs, secret frames, holder data); numbers and keys as they are."""
        known = SECRETS.values()
        if known != self._secrets or len(self._texts) > self.limit:
            self._texts, self._secrets = {}, known
        return self._masked(value)

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            masked = self._texts.get(value)
            if masked is None:
                masked = self._texts[value] = redact_text(value)
            return masked
        if isinstance(value, dict):
            return {key: self._masked(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._masked(item) for item in value]
        return value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def attach(reader: Reader, writer: TraceWriter) -> Reader:
    """Makes ``reader`` write every power-on, power-off and exchange to ``writer``; returns the same object.

    The methods are replaced on the instance, so the reader keeps its class, its features (``auto_exchanges``…)
    and its virtual rig (``devices.virtual.rig.rig_of``).
    """
    inner_transmit, inner_on, inner_off, inner_close = reader.transmit, reader.power_on, reader.power_off, reader.close

    def transmit(apdu: bytes) -> bytes:
        sent, start = _now(), time.perf_counter()
        try:
            answer = inner_transmit(apdu)
        except DeviceError as exc:
            writer.exchange(bytes(apdu), None, (time.perf_counter() - start) * 1000, sent,
                            error=f"{type(exc).__name__}: {exc}")
            raise
        elapsed = (time.perf_counter() - start) * 1000
        writer.exchange(bytes(apdu), bytes(answer), elapsed, sent)
        for command, response in list(reader.auto_exchanges):
            writer.exchange(bytes(command), bytes(response), 0.0, sent, by="reader")
        return answer

    def power_on() -> bytes:
        atr = inner_on()
        writer.power("power_on", bytes(atr))
        return atr

    def power_off() -> None:
        inner_off()
        writer.power("power_off")

    def close() -> None:
        try:
            inner_close()
        finally:
            writer.close()

    reader.trace_writers = (*reader.trace_writers, writer)
    reader.transmit = transmit  # type: ignore[method-assign]
    reader.power_on = power_on  # type: ignore[method-assign]
    reader.power_off = power_off  # type: ignore[method-assign]
    reader.close = close  # type: ignore[method-assign]
    return reader


def read_trace(path: Path) -> list[dict[str, Any]]:
    """The lines of a trace file or recording, each one JSON object; a clear error on a broken line."""
    return list(iter_trace(path))


def iter_trace(path: Path) -> Iterator[dict[str, Any]]:
    """The same, one line at a time: a soak's trace file of a million lines never sits in memory whole."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            if not isinstance(record, dict) or "type" not in record:
                raise ValueError(f"{path}:{number}: not a trace record (no 'type')")
            yield record
