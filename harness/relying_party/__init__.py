"""A relying-party platform emulator on 127.0.0.1: challenges, JPKI checks with OCSP and CRL, platform IDs,
atomic service transactions and an audit log, for the kiosk and set-top box flows.

``with RelyingParty() as rp: rp.url`` — terminals talk to it with :class:`RelyingPartyClient`;
tests read ``rp.platform`` (Python) or ``GET /api/audit`` and ``/api/state`` (HTTP).
"""

from __future__ import annotations

from .client import RelyingPartyClient, RpError
from .ocsp import OcspResponder
from .platform import Platform, PlatformConfig
from .records import AuditRecord, Refused, Transaction
from .server import RelyingParty

__all__ = [
    "AuditRecord",
    "OcspResponder",
    "Platform",
    "PlatformConfig",
    "Refused",
    "RelyingParty",
    "RelyingPartyClient",
    "RpError",
    "Transaction",
]
