"""The authority's records in SQLite (standard library): ceremonies, issued certificates, card ↔ phone bindings,
card revocations, answered requests and an event log.

Every step of a ceremony is one ``BEGIN IMMEDIATE`` transaction (:meth:`Store.transaction`): a crash before the
commit leaves nothing of the step, a crash after it leaves all of it plus the answer, so a retry with the same
request id gets the same answer. The partial unique index ``one_live_phone_per_card`` makes a second live phone
for one card impossible at the database level, whatever the code above does.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS ceremonies (
    id TEXT PRIMARY KEY,
    phone_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'applied', 'issued', 'completed', 'cancelled', 'refused')),
    card_serial TEXT,
    card_cert BLOB,
    auth_key BLOB,
    sign_key BLOB,
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('auth', 'sign')),
    ceremony_id TEXT NOT NULL REFERENCES ceremonies(id),
    der BLOB NOT NULL,
    revoked_at REAL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS bindings (
    ceremony_id TEXT PRIMARY KEY REFERENCES ceremonies(id),
    card_serial TEXT NOT NULL,
    phone_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('live', 'revoked')),
    since REAL NOT NULL,
    revoked_at REAL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_phone_per_card ON bindings(card_serial) WHERE status = 'live';
CREATE TABLE IF NOT EXISTS card_revocations (
    serial TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    step TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    ceremony_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True)
class Ceremony:
    id: str
    phone_id: str
    nonce: bytes
    status: str
    card_serial: str | None
    card_cert: bytes | None
    auth_key: bytes | None
    sign_key: bytes | None
    reason: str
    created: float
    updated: float


@dataclass(frozen=True)
class IssuedCertificate:
    serial: str
    kind: str
    ceremony_id: str
    der: bytes
    revoked_at: float | None
    reason: str


@dataclass(frozen=True)
class Binding:
    ceremony_id: str
    card_serial: str
    phone_id: str
    status: str
    since: float
    revoked_at: float | None
    reason: str


class Tx:
    """The statements of one transaction; methods are the only SQL the service issues."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- requests -----------------------------------------------------------------------------------
    def answered(self, request_id: str) -> tuple[str, int, dict[str, Any]] | None:
        row = self.conn.execute("SELECT step, status, body FROM requests WHERE request_id = ?",
                                (request_id,)).fetchone()
        return None if row is None else (row[0], int(row[1]), json.loads(row[2]))

    def remember(self, request_id: str, step: str, status: int, body: dict[str, Any]) -> None:
        self.conn.execute("INSERT INTO requests (request_id, step, status, body) VALUES (?, ?, ?, ?)",
                          (request_id, step, status, json.dumps(body)))

    # -- ceremonies ---------------------------------------------------------------------------------
    def add_ceremony(self, ceremony_id: str, phone_id: str, nonce: bytes, now: float) -> None:
        self.conn.execute("INSERT INTO ceremonies (id, phone_id, nonce, status, created, updated) "
                          "VALUES (?, ?, ?, 'open', ?, ?)", (ceremony_id, phone_id, nonce, now, now))

    def ceremony(self, ceremony_id: str) -> Ceremony | None:
        row = self.conn.execute(f"SELECT {_CEREMONY_COLUMNS} FROM ceremonies WHERE id = ?",
                                (ceremony_id,)).fetchone()
        return None if row is None else Ceremony(*row)

    def set_status(self, ceremony_id: str, status: str, now: float, reason: str = "") -> None:
        self.conn.execute("UPDATE ceremonies SET status = ?, reason = ?, updated = ? WHERE id = ?",
                          (status, reason, now, ceremony_id))

    def set_application(self, ceremony_id: str, card_serial: str, card_cert: bytes, auth_key: bytes,
                        sign_key: bytes, now: float) -> None:
        self.conn.execute("UPDATE ceremonies SET status = 'applied', card_serial = ?, card_cert = ?, auth_key = ?, "
                          "sign_key = ?, reason = '', updated = ? WHERE id = ?",
                          (card_serial, card_cert, auth_key, sign_key, now, ceremony_id))

    def stale_ceremonies(self, before: float) -> list[Ceremony]:
        rows = self.conn.execute(f"SELECT {_CEREMONY_COLUMNS} FROM ceremonies WHERE updated < ? "
                                 "AND status IN ('open', 'applied', 'issued')", (before,)).fetchall()
        return [Ceremony(*row) for row in rows]

    # -- certificates and bindings --------------------------------------------------------------------
    def add_certificate(self, serial: str, kind: str, ceremony_id: str, der: bytes) -> None:
        self.conn.execute("INSERT INTO certificates (serial, kind, ceremony_id, der) VALUES (?, ?, ?, ?)",
                          (serial, kind, ceremony_id, der))

    def certificates_of(self, ceremony_id: str) -> list[IssuedCertificate]:
        rows = self.conn.execute(f"SELECT {_CERT_COLUMNS} FROM certificates WHERE ceremony_id = ? ORDER BY kind",
                                 (ceremony_id,)).fetchall()
        return [IssuedCertificate(*row) for row in rows]

    def revoke_certificates_of(self, ceremony_id: str, now: float, reason: str) -> list[str]:
        serials = [c.serial for c in self.certificates_of(ceremony_id) if c.revoked_at is None]
        self.conn.execute("UPDATE certificates SET revoked_at = ?, reason = ? WHERE ceremony_id = ? "
                          "AND revoked_at IS NULL", (now, reason, ceremony_id))
        return serials

    def add_binding(self, ceremony_id: str, card_serial: str, phone_id: str, now: float) -> None:
        self.conn.execute("INSERT INTO bindings (ceremony_id, card_serial, phone_id, status, since) "
                          "VALUES (?, ?, ?, 'live', ?)", (ceremony_id, card_serial, phone_id, now))

    def live_binding(self, card_serial: str) -> Binding | None:
        row = self.conn.execute(f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE card_serial = ? AND status = 'live'",
                                (card_serial,)).fetchone()
        return None if row is None else Binding(*row)

    def revoke_binding(self, ceremony_id: str, now: float, reason: str) -> None:
        self.conn.execute("UPDATE bindings SET status = 'revoked', revoked_at = ?, reason = ? "
                          "WHERE ceremony_id = ? AND status = 'live'", (now, reason, ceremony_id))

    # -- card revocations and events ------------------------------------------------------------------------
    def revoke_card(self, serial: str, now: float, reason: str) -> None:
        self.conn.execute("INSERT OR IGNORE INTO card_revocations (serial, revoked_at, reason) VALUES (?, ?, ?)",
                          (serial, now, reason))

    def event(self, now: float, event: str, ceremony_id: str = "", detail: str = "") -> None:
        self.conn.execute("INSERT INTO events (at, event, ceremony_id, detail) VALUES (?, ?, ?, ?)",
                          (now, event, ceremony_id, detail))


_CEREMONY_COLUMNS = ("id, phone_id, nonce, status, card_serial, card_cert, auth_key, sign_key, reason, "
                     "created, updated")
_CERT_COLUMNS = "serial, kind, ceremony_id, der, revoked_at, reason"
_BINDING_COLUMNS = "ceremony_id, card_serial, phone_id, status, since, revoked_at, reason"


class Store:
    """One SQLite file behind one connection; a lock serialises the HTTP server's threads on it (there is one
    writer at a time anyway), so a commit costs no open/close of the file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA journal_mode = WAL")
        # WAL with synchronous=NORMAL: a commit survives the process being killed at any instant (the crash the
        # tests make); only a power loss may lose the last commits, which a lab's virtual authority can afford.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: committed when the block ends, rolled back by any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """Reads of the last committed state (never inside another thread's open transaction)."""
        with self._lock:
            yield Tx(self._conn)

    # -- views for tests and the HTTP API ------------------------------------------------------------------
    def certificate(self, serial: str) -> IssuedCertificate | None:
        with self.reading() as tx:
            row = tx.conn.execute(f"SELECT {_CERT_COLUMNS} FROM certificates WHERE serial = ?", (serial,)).fetchone()
        return None if row is None else IssuedCertificate(*row)

    def card_revocation(self, serial: str) -> tuple[float, str] | None:
        with self.reading() as tx:
            row = tx.conn.execute("SELECT revoked_at, reason FROM card_revocations WHERE serial = ?",
                                  (serial,)).fetchone()
        return None if row is None else (float(row[0]), str(row[1]))

    def bindings(self, card_serial: str | None = None) -> list[Binding]:
        query = f"SELECT {_BINDING_COLUMNS} FROM bindings"
        args: tuple[str, ...] = ()
        if card_serial is not None:
            query, args = query + " WHERE card_serial = ?", (card_serial,)
        with self.reading() as tx:
            return [Binding(*row) for row in tx.conn.execute(query + " ORDER BY since", args).fetchall()]

    def ceremony(self, ceremony_id: str) -> Ceremony | None:
        with self.reading() as tx:
            return tx.ceremony(ceremony_id)

    def all_certificates(self) -> list[IssuedCertificate]:
        with self.reading() as tx:
            return [IssuedCertificate(*row) for row in
                    tx.conn.execute(f"SELECT {_CERT_COLUMNS} FROM certificates ORDER BY serial").fetchall()]

    def counts(self) -> dict[str, int]:
        """Rows per table: what a test compares before and after a step that must leave nothing behind."""
        tables = ("ceremonies", "certificates", "bindings", "card_revocations", "requests")
        with self.reading() as tx:
            return {t: int(tx.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}

    def card_revocations(self, since: int = 0) -> list[dict[str, Any]]:
        """The revocation feed relying parties poll (the e-mailbox starts its address-change notices from it)."""
        with self.reading() as tx:
            rows = tx.conn.execute("SELECT rowid, serial, revoked_at, reason FROM card_revocations WHERE rowid > ? "
                                   "ORDER BY rowid", (since,)).fetchall()
        return [dict(zip(("seq", "serial", "revoked_at", "reason"), row, strict=True)) for row in rows]

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        with self.reading() as tx:
            rows = tx.conn.execute("SELECT seq, at, event, ceremony_id, detail FROM events WHERE seq > ? ORDER BY seq",
                                   (since,)).fetchall()
        return [dict(zip(("seq", "at", "event", "ceremony", "detail"), row, strict=True)) for row in rows]
