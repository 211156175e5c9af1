"""A virtual issuing authority (J-LIS stand-in) for the smartphone download ceremony (JPKI-FACTS §8).

``with AuthorityServer(AuthorityConfig(db_path)) as server: server.url`` — the phone app talks to it with
:class:`AuthorityClient`; tests read ``server.authority.store`` or the HTTP views. State lives in SQLite.
"""

from __future__ import annotations

from .client import AuthorityClient, AuthorityError
from .protocol import application_bytes
from .server import AuthorityServer, SimulatedCrash
from .service import Authority, AuthorityConfig, Refused

__all__ = [
    "Authority",
    "AuthorityClient",
    "AuthorityConfig",
    "AuthorityError",
    "AuthorityServer",
    "Refused",
    "SimulatedCrash",
    "application_bytes",
]
