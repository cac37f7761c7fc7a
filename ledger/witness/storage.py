"""The witness's state: per log, the latest checkpoint it cosigned; kept in one SQLite file.

Why SQLite and not a state file rewritten with fsync + rename: C2SP tlog-witness requires the
check of ``old`` against the stored size and the update to be one atomic step (otherwise two
concurrent requests can roll the witness back). A ``BEGIN IMMEDIATE`` transaction is that step —
it holds the write lock across threads and across processes serving the same data directory —
and ``synchronous=FULL`` makes a committed update survive a crash or power loss before the
cosignature is answered. A rename scheme would need its own lock file, an fsync of the directory
and care with partial writes to give the same guarantees.

Tables: ``witnessed`` (one row per origin: size, root, the cosigned note, when) and ``evidence``
(log-signed checkpoints that were refused as inconsistent — proof of a forking log — bounded).
The database file is created with mode 0600. :class:`~ledger.errors.StorageError` on failure.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.errors import StorageError
from ledger.witness.protocol import TreeHead

MAX_EVIDENCE_PER_LOG = 1000
"""Refused log-signed checkpoints kept per log (only the log key can make one, but bound it)."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS witnessed ("
    " origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root_hash BLOB NOT NULL,"
    " note TEXT NOT NULL, updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS evidence ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, origin TEXT NOT NULL, received_at INTEGER NOT NULL,"
    " reason TEXT NOT NULL, request TEXT NOT NULL)",
)


@dataclass(frozen=True)
class Witnessed:
    """The stored state of one log."""

    origin: str
    head: TreeHead
    note: str
    updated_at: int


class WitnessTransaction:
    """Reads and writes inside one locked transaction (see :meth:`WitnessStore.transaction`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def latest(self, origin: str) -> Witnessed | None:
        """The stored state of ``origin``."""
        return _latest(self._conn, origin)

    def put(self, origin: str, head: TreeHead, note: str, now: int) -> None:
        """Replace the state of ``origin``."""
        self._conn.execute(
            "INSERT INTO witnessed (origin, size, root_hash, note, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root_hash = excluded.root_hash, "
            "note = excluded.note, updated_at = excluded.updated_at",
            (origin, head.size, head.root_hash, note, now),
        )

    def add_evidence(self, origin: str, reason: str, request: str, now: int) -> None:
        """Keep a refused, log-signed request (the newest :data:`MAX_EVIDENCE_PER_LOG` per log)."""
        self._conn.execute(
            "INSERT INTO evidence (origin, received_at, reason, request) VALUES (?, ?, ?, ?)",
            (origin, now, reason, request),
        )
        self._conn.execute(
            "DELETE FROM evidence WHERE origin = ? AND id NOT IN "
            "(SELECT id FROM evidence WHERE origin = ? ORDER BY id DESC LIMIT ?)",
            (origin, origin, MAX_EVIDENCE_PER_LOG),
        )


def _latest(conn: sqlite3.Connection, origin: str) -> Witnessed | None:
    row = conn.execute(
        "SELECT size, root_hash, note, updated_at FROM witnessed WHERE origin = ?", (origin,)
    ).fetchone()
    if row is None:
        return None
    return Witnessed(origin, TreeHead(int(row[0]), bytes(row[1])), str(row[2]), int(row[3]))


class WitnessStore:
    """The witness database at ``path`` (created, mode 0600, if missing). Thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._conn.execute(statement)
        except (OSError, sqlite3.Error) as e:
            raise StorageError(f"cannot open the witness database {path}: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[WitnessTransaction]:
        """One ``BEGIN IMMEDIATE`` transaction: committed when the block ends, rolled back if it raises.

        The lock is taken before anything is read, so check-and-update is atomic against other
        threads and other processes on the same file.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise StorageError(f"witness database: {e}") from e
            try:
                yield WitnessTransaction(self._conn)
            except sqlite3.Error as e:
                self._conn.execute("ROLLBACK")
                raise StorageError(f"witness database: {e}") from e
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._conn.execute("ROLLBACK")
                raise StorageError(f"witness database: cannot commit: {e}") from e

    def latest(self, origin: str) -> Witnessed | None:
        """The stored state of ``origin`` (None: never cosigned one of its checkpoints)."""
        with self._lock:
            try:
                return _latest(self._conn, origin)
            except sqlite3.Error as e:
                raise StorageError(f"witness database: {e}") from e

    def all(self) -> list[Witnessed]:
        """The state of every log, by origin."""
        with self._lock:
            rows = self._conn.execute("SELECT origin FROM witnessed ORDER BY origin").fetchall()
            found = [_latest(self._conn, str(r[0])) for r in rows]
        return [w for w in found if w is not None]

    def evidence_count(self, origin: str) -> int:
        """How many refused log-signed checkpoints are kept for ``origin``."""
        with self._lock:
            row = self._conn.execute("SELECT count(*) FROM evidence WHERE origin = ?", (origin,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
