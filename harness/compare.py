"""``hil compare``: send a recording's commands to another device and say where its answers differ.

The recording's power-ons, power-offs and card replacements are replayed as they happened; every
command the harness sent is sent again. PIN markers become the device's own PINs: a VERIFY that the
recorded card accepted gets the right PIN, one it refused a wrong PIN of the same format (expendable
cards only; on others it is not sent), a marker of another shape (a malformed PIN) a value of that shape.
Each answer is compared with the recorded one, the first aspect that differs counts: status word, length,
TLV structure, then data, except where answers differ by nature: challenges, signatures, and in the
certificates a card holds the serial number, validity and signature, which another issue of the same
certificate changes (:mod:`harness.cert_fields`; the files are put together from the recording's reads).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from devices import DeviceError, open_device
from devices.base import Reader, bench_of
from harness import lab
from harness.cert_fields import Field, field_at, varying_fields
from harness.credentials import DeviceFacts, card_facts_of, facts_for_device, facts_for_virtual, recorded_facts
from harness.fixtures import number_b
from harness.iso import tlv
from harness.iso.apdu import CommandApdu, parse_hex, to_hex
from harness.iso.apdu_names import MARKER, character_class, placeholder
from harness.iso.redact import ApduContext
from harness.safety import new_pin_like, wrong_pin_like
from harness.tracefile import read_trace

VARIES_BY_NATURE = {0x84: "challenge", 0x2A: "signature", 0x88: "signature"}
LABEL_KINDS = {"auth PIN": "auth", "sign PIN": "sign", "text PIN": "text"}


@dataclass(frozen=True)
class Difference:
    number: int  # the command's number among the recording's commands
    test: str
    name: str
    command: str
    aspect: str  # "status word", "length", "TLV structure", "data", "error", "not sent"
    recorded: str
    actual: str

    def line(self) -> str:
        return (f"#{self.number} {self.name} [{self.test or 'no test'}]: {self.aspect} differs — "
                f"recorded {self.recorded}, got {self.actual}")


@dataclass
class Comparison:
    recording: Path
    device: str
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)
    not_sent: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)  # certificate field → answers where only it differed
    pieces: int = 0  # READ BINARY answers larger than the device carries, read in pieces

    def ignored_note(self) -> str | None:
        if not self.ignored:
            return None
        shown = ", ".join(f"{name} in {count} answer{'s' if count > 1 else ''}"
                          for name, count in sorted(self.ignored.items()))
        return f"certificate fields that differ between issues were not compared: {shown}"

    def summary(self) -> str:
        if not self.differences:
            line = f"{self.device} answers like recording {self.recording.name} on all {self.compared} commands"
        else:
            by_aspect = Counter(d.aspect for d in self.differences)
            parts = []
            for aspect, count in by_aspect.most_common():
                names = Counter(d.name for d in self.differences if d.aspect == aspect)
                shown = ", ".join(f"{n} ×{c}" if c > 1 else n for n, c in names.most_common(3))
                parts.append(f"{count} {aspect} ({shown})")
            line = (f"{self.device} differs from recording {self.recording.name} on {len(self.differences)} "
                    f"of {self.compared} commands: " + "; ".join(parts))
        if self.not_sent:
            line += f"; {len(self.not_sent)} not sent ({self.not_sent[0].recorded})"
        return line

    def as_json(self) -> dict[str, Any]:
        return {"recording": str(self.recording), "device": self.device, "compared": self.compared,
                "differences": [asdict(d) for d in self.differences],
                "not_sent": [asdict(d) for d in self.not_sent], "notes": self.notes,
                "ignored": dict(self.ignored), "summary": self.summary()}


def tlv_shape(data: bytes) -> list[Any] | None:
    """Tags and lengths of ``data`` as TLV, children of constructed tags included; None unless it parses."""
    try:
        items = list(tlv.iter_tlv(data, stop_at_padding=True))
    except tlv.TlvError:
        return None
    if not items:
        return None
    return [(item.tag, len(item.value), tlv_shape(item.value) if item.constructed else None) for item in items]


def first_difference(ins: int, recorded: bytes, actual: bytes, fields: list[Field] | None = None,
                     offset: int = 0) -> tuple[str, str, str] | None:
    """(aspect, recorded, actual) of the first way two responses differ, or None; data bytes inside
    ``fields`` (the recorded file's certificate fields, ``offset`` where this answer starts in the file)
    do not count."""
    rec_sw, act_sw = recorded[-2:], actual[-2:]
    if rec_sw != act_sw:
        return "status word", rec_sw.hex().upper(), act_sw.hex().upper()
    rec, act = recorded[:-2], actual[:-2]
    if len(rec) != len(act):
        return "length", f"{len(rec)} bytes", f"{len(act)} bytes"
    if ins in VARIES_BY_NATURE or rec == act:
        return None
    rec_shape, act_shape = tlv_shape(rec), tlv_shape(act)
    if rec_shape != act_shape:
        return "TLV structure", str(rec_shape)[:80], str(act_shape)[:80]
    differing = (i for i, (a, b) in enumerate(zip(rec, act, strict=True)) if a != b)
    at = next((i for i in differing if field_at(fields or [], offset + i) is None), None)
    if at is None:
        return None
    return "data", f"{rec[at:at + 8].hex().upper()} at byte {at}", act[at:at + 8].hex().upper()


def ignored_fields(recorded: bytes, actual: bytes, fields: list[Field], offset: int) -> set[str]:
    """The certificate fields where two answers of the same length differ."""
    names = set()
    for i, (a, b) in enumerate(zip(recorded[:-2], actual[:-2], strict=False)):
        if a != b and (found := field_at(fields, offset + i)) is not None:
            names.add(found.name)
    return names


def _read_offset(apdu: bytes) -> int | None:
    """Where a READ BINARY (B0, by the current EF or a short EF identifier) starts in its file."""
    if len(apdu) < 4 or apdu[1] != 0xB0:
        return None
    return apdu[3] if apdu[2] & 0x80 else ((apdu[2] & 0x7F) << 8) | apdu[3]


FileKey = tuple[str | None, int | None]


def recorded_files(records: list[dict[str, Any]]) -> dict[FileKey, list[Field]]:
    """The certificate fields of every file the recording read, by (applet, EF) as the commands select them."""
    images: dict[FileKey, bytearray] = {}
    context = ApduContext()
    for record in records:
        if record["type"] == "power_on":
            context = ApduContext()
        if record["type"] != "exchange" or record.get("by", "harness") != "harness" or record.get("masked"):
            continue
        command = str(record["command"])
        if MARKER.search(command):
            continue  # a PIN command selects nothing
        apdu = parse_hex(command)
        context.command(apdu)
        offset = _read_offset(apdu)
        response = parse_hex(str(record.get("response", "") or ""))
        if offset is None or response[-2:] != b"\x90\x00":
            continue
        image = images.setdefault((context.applet, context.ef), bytearray())
        data = response[:-2]
        if len(image) < offset + len(data):
            image.extend(bytes(offset + len(data) - len(image)))
        image[offset:offset + len(data)] = data
    return {key: found for key, image in images.items() if (found := varying_fields(bytes(image)))}


@dataclass
class SecretFiller:
    """Turns a recorded marker back into a value the device accepts (or refuses) as the recorded card did."""

    facts: DeviceFacts
    context: ApduContext = field(default_factory=ApduContext)
    changed: dict[str, str] = field(default_factory=dict, repr=False)

    def original(self, label: str) -> str | None:
        if label in LABEL_KINDS:
            return self.facts.pins.get(LABEL_KINDS[label])
        holder = self.facts.holder
        if holder is None:
            return None
        if label == "照合番号A":
            return holder.my_number
        return number_b(holder) if label == "照合番号B" else None

    def value(self, header: bytes, length: int, cls: str, recorded_sw: str) -> tuple[str | None, str]:
        """(value to send or None, why not); ``header`` is CLA INS P1 P2 Lc of the recorded command."""
        probe = header + b"0" * length
        label = self.context.secret_note(probe).split(",")[0]
        if not self.facts.expendable:
            # the PIN guard's rule (harness/pin_guard.py): compare replays PIN commands only to expendable cards;
            # a guarded card gets none, right or wrong, since compare has no counter check of its own
            return None, f"{label}: card not expendable (compare sends PIN commands only to expendable cards)"
        right = self.changed.get(label) or self.original(label)
        if right is None:  # a key the harness has no value for (a blocked one, say): any value of the shape
            return placeholder(length, cls), ""
        if (len(right), character_class(right.encode("utf-8"))) != (length, cls):
            return placeholder(length, cls), ""  # a malformed value, as the recording sent
        if header[1] == 0x20:
            return (right if recorded_sw == "9000" else wrong_pin_like(right)), ""
        original = self.original(label) or right
        if recorded_sw != "9000":
            return new_pin_like(right), ""
        new = original if right != original else new_pin_like(right)
        self.changed[label] = new  # kept if the device accepts it (see compare)
        return new, ""


def _device_facts(reader: Reader, lab_device: Any) -> DeviceFacts:
    card = card_facts_of(reader)
    if card is None and lab_device is None:
        return recorded_facts(reader) or DeviceFacts()
    return facts_for_device(card, lab_device)  # the stricter of inventory and profile, as for a run


def _replace_card(reader: Reader, comparison: Comparison, test: str) -> DeviceFacts | None:
    bench = bench_of(reader)
    facts = None if bench is None else bench.card_facts()
    if bench is None or facts is None:
        comparison.notes.append(f"the recording put a fresh card in at '{test}'; {comparison.device} keeps its state")
        return None
    bench.insert_fresh()  # faults disarmed, a factory-fresh card of the same profile
    return facts_for_virtual(facts)


def compare(recording: Path, device: str, timeout: float = 5.0) -> Comparison:
    """Sends the commands of ``recording`` to ``device`` and collects the differences."""
    records = read_trace(recording)
    uri, lab_device = lab.resolve(device)
    comparison = Comparison(recording, device)
    certificates = recorded_files(records)
    reader = open_device(uri)
    try:
        reader.wait_for_card(timeout)
        filler = SecretFiller(_device_facts(reader, lab_device))
        number = 0
        for record in records:
            kind = record["type"]
            if kind == "power_on":
                atr = reader.power_on()
                recorded_atr = str(record.get("atr", ""))
                if recorded_atr and to_hex(atr) != recorded_atr and not comparison.notes:
                    comparison.notes.append(f"ATR differs: recorded {recorded_atr}, got {to_hex(atr)}")
                filler.context = ApduContext()
            elif kind == "power_off":
                reader.power_off()
            elif kind == "card_replaced":
                facts = _replace_card(reader, comparison, str(record.get("test", "")))
                if facts is not None:
                    filler = SecretFiller(facts)
            elif kind == "exchange" and record.get("by", "harness") == "harness":
                number += 1
                _compare_one(reader, record, number, filler, comparison, certificates)
    finally:
        reader.close()
    note = comparison.ignored_note()
    if note:
        comparison.notes.append(note)
    if comparison.pieces:
        comparison.notes.append(f"{comparison.pieces} READ BINARY answers were larger than {device} carries "
                                f"({reader.capabilities.max_response} bytes) and were read in pieces")
    return comparison


def _compare_one(reader: Reader, record: dict[str, Any], number: int, filler: SecretFiller,
                 comparison: Comparison, certificates: dict[FileKey, list[Field]]) -> None:
    command_text, test, name = str(record["command"]), str(record.get("test", "")), str(record.get("name", ""))
    recorded_sw = str(record.get("sw", ""))
    marker = MARKER.search(command_text)
    if marker:
        header = parse_hex(command_text[: marker.start()])
        value, why = filler.value(header, int(marker.group(1)), marker.group(2), recorded_sw)
        if value is None:
            comparison.not_sent.append(Difference(number, test, name, command_text, "not sent", why, ""))
            return
        apdu = header + value.encode("utf-8")
    else:
        apdu = parse_hex(command_text)
    filler.context.command(apdu)
    comparison.compared += 1
    try:
        answer = _send(reader, apdu, record, comparison)
    except DeviceError as exc:
        actual_error = f"{type(exc).__name__}: {exc}"
        if not str(record.get("error", "")).startswith(type(exc).__name__):
            comparison.differences.append(Difference(number, test, name, command_text, "error",
                                                     record.get("error") or recorded_sw, actual_error))
        return
    if marker and apdu[1] == 0x24 and answer[-2:] != b"\x90\x00":
        label = filler.context.secret_note(apdu).split(",")[0]
        filler.changed.pop(label, None)  # the device kept its PIN
    if record.get("error"):
        comparison.differences.append(Difference(number, test, name, command_text, "error", str(record["error"]),
                                                 f"answer {answer[-2:].hex().upper()}"))
        return
    if record.get("masked"):
        if answer[-2:].hex().upper() != recorded_sw:  # a masked personal file: only its status word is known
            comparison.differences.append(Difference(number, test, name, command_text, "status word",
                                                     recorded_sw, answer[-2:].hex().upper()))
        return
    recorded = parse_hex(str(record.get("response", "")))
    offset = _read_offset(apdu)
    fields = certificates.get((filler.context.applet, filler.context.ef), []) if offset is not None else []
    found = first_difference(apdu[1], recorded, answer, fields, offset or 0)
    if found:
        comparison.differences.append(Difference(number, test, name, command_text, *found))
    elif fields and len(recorded) == len(answer):
        comparison.ignored.update(ignored_fields(recorded, answer, fields, offset or 0))


def _send(reader: Reader, apdu: bytes, record: dict[str, Any], comparison: Comparison) -> bytes:
    """The device's answer to ``apdu``; a READ BINARY whose recorded answer is larger than this reader
    carries is read in pieces and put together, as the harness reads on such a reader."""
    offset = _read_offset(apdu)
    recorded = len(parse_hex(str(record.get("response", "") or ""))) - 2 if not record.get("masked") else 0
    limit = reader.capabilities.max_response
    if offset is None or recorded <= limit:
        return reader.transmit(apdu)
    piece = limit if reader.capabilities.extended_apdu else min(limit, 256)
    data, sw, first = b"", b"\x90\x00", True
    while len(data) < recorded and sw == b"\x90\x00":
        size = min(piece, recorded - len(data))
        p1, p2 = (apdu[2], apdu[3]) if first else divmod(offset + len(data), 256)
        command = CommandApdu(apdu[0], 0xB0, p1, p2, le=size, extended=size > 256).to_bytes()
        answer = reader.transmit(command)
        data, sw, first = data + answer[:-2], answer[-2:], False
        if len(answer) - 2 < size:
            break
    comparison.pieces += 1
    return data + sw


def write_json(comparison: Comparison, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(comparison.as_json(), ensure_ascii=False, indent=1), encoding="utf-8")

