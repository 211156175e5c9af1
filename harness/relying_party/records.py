"""What the relying party's platform keeps and answers with: refusals, audit records, sessions, transactions.

Plain records, no behaviour beyond their own views; :mod:`.platform` owns them, the HTTP server
(:mod:`.server`) turns them into JSON.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509


class Refused(Exception):
    """A request the platform turns down; ``code`` is stable for tests, the message one line."""

    def __init__(self, code: str, message: str, http_status: int = 403) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log: who (terminal, platform ID) did what, when, and how it ended."""

    seq: int
    at: str
    terminal: str
    event: str
    outcome: str
    service: str = ""
    platform_id: str = ""
    tx: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Identity:
    platform_id: str
    cn: str
    serial: int
    holder: str
    certificate: x509.Certificate = field(repr=False)


@dataclass
class Session:
    token: str
    terminal: str
    identity: Identity
    expires: float


@dataclass
class Challenge:
    id: str
    terminal: str
    service: str
    value: bytes
    expires: float


@dataclass
class Transaction:
    id: str
    terminal: str
    service: str
    params: dict[str, Any]
    session: str
    platform_id: str
    summary: str
    confirm: bytes
    expires: float
    status: str = "pending"  # pending → committed | aborted | expired | refused
    reason: str = ""
    result: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "terminal": self.terminal, "service": self.service, "params": self.params,
                "platform_id": self.platform_id, "summary": self.summary, "status": self.status,
                "reason": self.reason, "result": self.result}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
