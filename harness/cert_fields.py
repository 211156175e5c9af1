"""Where a DER certificate holds fields that differ between two issues of the same certificate.

Two generations of one card (the test PKI rebuilt, a card re-issued) carry certificates with the same
subject, key and extensions but another serial number, other validity dates and so another signature.
``hil compare`` ignores those bytes (:mod:`harness.compare`) and still sees any other difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.iso import tlv

SEQUENCE, INTEGER, CONTEXT_0, BIT_STRING = 0x30, 0x02, 0xA0, 0x03


@dataclass(frozen=True)
class Field:
    name: str  # "serial number", "validity", "signature"
    start: int  # offset of the field's value in the file
    end: int  # one past its last byte


def _element(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    tag, pos = tlv.read_tag(data, pos)
    length, start = tlv.read_length(data, pos)
    if start + length > len(data):
        raise tlv.TlvError("element runs past the end")
    return tag, start, start + length


def varying_fields(data: bytes) -> list[Field]:
    """The serial number, validity and signature of the certificate ``data`` starts with (an EF holds it
    zero-filled); empty unless ``data`` begins with a certificate."""
    try:
        tag, cert_start, cert_end = _element(data, 0)
        if tag != SEQUENCE:
            return []
        tag, tbs_start, tbs_end = _element(data, cert_start)
        if tag != SEQUENCE:
            return []
        tag, start, end = _element(data, tbs_start)
        if tag == CONTEXT_0:  # version
            tag, start, end = _element(data, end)
        if tag != INTEGER:
            return []
        serial = Field("serial number", start, end)
        tag, _, end = _element(data, end)  # signature algorithm
        tag, _, end = _element(data, end)  # issuer
        tag, start, end = _element(data, end)
        if tag != SEQUENCE:
            return []
        validity = Field("validity", start, end)
        _, _, algorithm_end = _element(data, tbs_end)  # the outer signature algorithm
        tag, start, end = _element(data, algorithm_end)
        if tag != BIT_STRING or end != cert_end:
            return []
        return [serial, validity, Field("signature", start, end)]
    except tlv.TlvError:
        return []


def field_at(fields: list[Field], offset: int) -> Field | None:
    return next((f for f in fields if f.start <= offset < f.end), None)
