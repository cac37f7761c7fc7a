"""Storage of the log through SQLModel/SQLAlchemy: SQLite (embedded default) or PostgreSQL.

A thin shell around the pure core: tables, transactions and locks live here; leaf encoding, tree
hashing and tiles come from :mod:`ledger.core`. Every multi-row write is one transaction, so a
crash leaves either all of a batch or none of it. Database exceptions are converted to
:class:`~ledger.errors.StorageError` at this boundary.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    Engine,
    Table,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from ledger.core.merkle import TreeHasher
from ledger.core.tiles import TileId, TileWriter, tiles_for_size
from ledger.errors import ConfigurationError, StorageError
from ledger.stored import (
    IdempotentHit,
    RegisteredClient,
    SequencedBatch,
    StoredAnchor,
    StoredCheckpoint,
    StoredRecord,
    StoredWitnessPeer,
)
from ledger.tables import (
    ANCHORS,
    CHECKPOINTS,
    CLIENTS,
    COSIGNATURES,
    RECORDS,
    SEAL_KEYS,
    STATE,
    TILES,
    WITNESS_PEERS,
    LogState,
)

_logger = logging.getLogger(__name__)

_SEQUENCER_LOCK = 0x7472_7573_7431  # "trust1": PostgreSQL advisory lock key of the sequencer
_CHECKPOINT_LOCK = 0x7472_7573_7432
_ANCHOR_LOCK = 0x7472_7573_7433
_WRITE_OPTION = "trustledger_write"
_SMALL_BATCH = 20
INSERT_COLUMNS = (
    "id",
    "kind",
    "submitter",
    "idempotency_key",
    "request_hash",
    "received_at_us",
    "leaf",
    "leaf_hash",
)


INTEGRITY_ERRORS = (sa_exc.IntegrityError, psycopg.errors.IntegrityError, sqlite3.IntegrityError)
"""What a unique-key clash raises, through SQLAlchemy or from a driver used directly."""


class DuplicateRecord(StorageError):
    """An insert hit a unique key (a concurrent submission with the same idempotency key)."""

    reason = "duplicate-record"


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite database ``path`` with mode 0600 (its -wal and -shm files follow that mode)
    and narrow an existing database, -wal or -shm file that others may read to 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if candidate.stat().st_mode & 0o077:
                os.chmod(candidate, 0o600)
        except FileNotFoundError:
            continue
        except PermissionError:  # another user's file: say so, but the owner's choice stands
            _logger.warning("cannot narrow the mode of a database file", extra={"path": str(candidate)})


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the settings trustledger relies on.

    SQLite: WAL, ``synchronous=FULL`` (an acknowledged write survives power loss), a 64 MiB
    page cache and ``BEGIN IMMEDIATE`` transactions so that writers serialise instead of failing
    on upgrade. The database file is created with mode 0600 (SQLite gives its -wal and -shm files
    the database file's mode), and an existing one readable by others is narrowed to 0600.
    """
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_sqlite_file(Path(database))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # 64 MiB page cache per connection (default 2 MiB): index lookups into multi-GB tables
            # (a subject's events, idempotency keys) otherwise go to the OS for most pages.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Writers take the write lock up front; readers use a deferred (snapshot) transaction.
            write = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # No pre-ping: it costs a round trip per checkout; recycled connections cover server restarts.
    return create_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800)


class LogStore:
    """The SQL store of one log. Safe to share between threads and processes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction; database errors become :class:`StorageError`."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{_WRITE_OPTION: True})
                with conn.begin():
                    yield conn
        except INTEGRITY_ERRORS:
            raise
        except (sa_exc.SQLAlchemyError, psycopg.Error, sqlite3.Error) as e:  # driver errors: bulk insert
            raise StorageError(f"database error: {type(e).__name__}: {e}") from e

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read connection (its transaction is rolled back at the end); database errors become
        :class:`StorageError`. On SQLite the reads see one snapshot (a deferred ``BEGIN``)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except (sa_exc.SQLAlchemyError, psycopg.Error, sqlite3.Error) as e:
            raise StorageError(f"database error: {type(e).__name__}: {e}") from e

    def dispose(self, *, close: bool = True) -> None:
        """Drop the pooled connections; ``close=False`` in a forked child leaves the parent's
        connections open (the child must never reuse them)."""
        self.engine.dispose(close=close)

    # --- schema -----------------------------------------------------------------------------

    def create_schema(self, *, origin: str, hash_alg: str, empty_root: bytes) -> None:
        """Create tables and the log-state row (idempotent); refuse a different log's database."""
        try:
            SQLModel.metadata.create_all(self.engine)
        except sa_exc.SQLAlchemyError as e:
            raise StorageError(f"cannot create the schema: {e}") from e
        with self.transaction() as conn:
            row = conn.execute(select(STATE).where(STATE.c.id == 1)).first()
            if row is None:
                conn.execute(
                    STATE.insert().values(
                        id=1, origin=origin, hash_alg=hash_alg, size=0, root_hash=empty_root
                    )
                )
                return
        self.check_log(origin=origin, hash_alg=hash_alg)

    def create_tables(self, tables: Sequence[Table]) -> None:
        """Create ``tables`` and their indexes where missing (idempotent), in one transaction."""
        with self.transaction() as conn:
            for table in tables:
                table.create(conn, checkfirst=True)
                for index in table.indexes:
                    index.create(conn, checkfirst=True)

    def has_table(self, name: str) -> bool:
        """Whether the database has a table ``name``."""
        with self.reading() as conn:
            return bool(inspect(conn).has_table(name))

    def check_log(self, *, origin: str, hash_alg: str) -> None:
        """Raise :class:`ConfigurationError` unless the database holds this log."""
        state = self.state()
        if state.origin != origin or state.hash_alg != hash_alg:
            raise ConfigurationError(
                f"the database holds log {state.origin!r} ({state.hash_alg}), "
                f"not {origin!r} ({hash_alg}); settings and database do not match"
            )

    def state(self) -> LogState:
        """The current log state."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(STATE).where(STATE.c.id == 1)).first()
        except sa_exc.SQLAlchemyError as e:
            raise StorageError(f"database error: {e}") from e
        if row is None:
            raise ConfigurationError("the database has no log; run `trustledger init` first")
        return LogState(**row._mapping)

    # --- records ----------------------------------------------------------------------------

    def insert_records(self, rows: Iterable[tuple[Any, ...]], *, expected: int | None = None) -> int:
        """Insert records (tuples in ``INSERT_COLUMNS`` order) in a transaction of their own, all or
        none (see :meth:`insert_rows`)."""
        with self.transaction() as conn:
            return self.insert_rows(conn, rows, expected=expected)

    def insert_rows(
        self, conn: Connection, rows: Iterable[tuple[Any, ...]], *, expected: int | None = None
    ) -> int:
        """Insert records (tuples in ``INSERT_COLUMNS`` order) in ``conn``'s transaction; how many.

        ``rows`` may be a generator: it is consumed here, so on PostgreSQL the server ingests the
        COPY stream while the caller is still building rows (two cores busy), and an exception
        raised by the generator leaves the transaction to be rolled back. Goes to the driver
        directly (sqlite3 ``executemany``, ``COPY``): SQLAlchemy's per-row processing cost more
        than the database. Raises :class:`DuplicateRecord` when an idempotency key is taken
        (the transaction is then unusable on PostgreSQL: roll it back).
        """
        count = 0

        def counted() -> Iterator[tuple[Any, ...]]:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        columns = ", ".join(INSERT_COLUMNS)
        try:
            if self.dialect == "postgresql" and expected is not None and expected <= _SMALL_BATCH:
                # A COPY costs more than a plain INSERT for a handful of rows (single submissions).
                placeholders = ", ".join(["%s"] * len(INSERT_COLUMNS))
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.executemany(f"INSERT INTO record ({columns}) VALUES ({placeholders})", list(counted()))
            elif self.dialect == "postgresql":
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                with cursor.copy(f"COPY record ({columns}) FROM STDIN") as copy:
                    for row in counted():
                        copy.write_row(row)
            else:
                placeholders = ", ".join("?" * len(INSERT_COLUMNS))
                conn.connection.driver_connection.executemany(  # type: ignore[union-attr]
                    f"INSERT INTO record ({columns}) VALUES ({placeholders})", counted()
                )
        except INTEGRITY_ERRORS as e:
            raise DuplicateRecord("an idempotency key or record id is already stored") from e
        return count

    def find_idempotent(
        self, submitter: str, keys: Sequence[str], conn: Connection | None = None
    ) -> dict[str, IdempotentHit]:
        """Existing records of ``submitter`` by idempotency key (read in ``conn`` when given, so
        that a transaction sees the records it inserted itself)."""
        if conn is None:
            with self.reading() as own:
                return self.find_idempotent(submitter, keys, own)
        t = RECORDS
        found: dict[str, IdempotentHit] = {}
        for start in range(0, len(keys), 1000):
            chunk = list(keys[start : start + 1000])
            stmt = select(
                t.c.idempotency_key, t.c.id, t.c.request_hash, t.c.received_at_us, t.c.leaf_hash
            ).where(t.c.submitter == submitter, t.c.idempotency_key.in_(chunk))
            for key, rid, rhash, received, leaf_hash in conn.execute(stmt):
                found[key] = IdempotentHit(rid, bytes(rhash), int(received), bytes(leaf_hash))
        return found

    def get_record(self, record_id: str) -> StoredRecord | None:
        """A record by id."""
        return self._one_record(RECORDS.c.id == record_id)

    def record_at(self, log_index: int) -> StoredRecord | None:
        """The record sequenced at ``log_index``."""
        return self._one_record(RECORDS.c.log_index == log_index)

    def _one_record(self, condition: Any) -> StoredRecord | None:
        t = RECORDS
        stmt = select(
            t.c.id, t.c.seq, t.c.log_index, t.c.submitter, t.c.leaf, t.c.leaf_hash, t.c.received_at_us
        ).where(condition)
        try:
            with self.engine.connect() as conn:
                row = conn.execute(stmt).first()
        except sa_exc.SQLAlchemyError as e:
            raise StorageError(f"database error: {e}") from e
        return StoredRecord(*row) if row else None

    def records(self, record_ids: Sequence[str]) -> list[StoredRecord]:
        """The stored records among ``record_ids`` (any order)."""
        t = RECORDS
        found: list[StoredRecord] = []
        with self.engine.connect() as conn:
            for start in range(0, len(record_ids), 1000):
                stmt = select(
                    t.c.id, t.c.seq, t.c.log_index, t.c.submitter, t.c.leaf, t.c.leaf_hash, t.c.received_at_us
                ).where(t.c.id.in_(list(record_ids[start : start + 1000])))
                found.extend(StoredRecord(*row) for row in conn.execute(stmt))
        return found

    def iter_records(self, kinds: Sequence[str], chunk: int = 20_000) -> Iterator[StoredRecord]:
        """Every record of ``kinds`` in intake order (sequenced or not), streaming."""
        t = RECORDS
        after = 0
        while True:
            stmt = (
                select(
                    t.c.id, t.c.seq, t.c.log_index, t.c.submitter, t.c.leaf, t.c.leaf_hash, t.c.received_at_us
                )
                .where(t.c.seq > after, t.c.kind.in_(list(kinds)))
                .order_by(t.c.seq)
                .limit(chunk)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                return
            for row in rows:
                yield StoredRecord(*row)
            after = int(rows[-1][1])

    def pending_upper_bound(self) -> int:
        """A cheap upper bound of the backlog: highest queue position minus the tree size.

        Positions are dense except for gaps left by rolled-back inserts, so this never
        undercounts; it reads two index ends instead of counting rows.
        """
        with self.engine.connect() as conn:
            top = conn.execute(select(func.coalesce(func.max(RECORDS.c.seq), 0))).scalar_one()
            size = conn.execute(select(STATE.c.size).where(STATE.c.id == 1)).scalar_one_or_none() or 0
        return max(0, int(top) - int(size))

    def pending_count(self) -> int:
        """How many records wait for sequencing."""
        t = RECORDS
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(t).where(t.c.log_index.is_(None))).scalar_one()
            )

    def iter_sequenced(self, start: int = 0, chunk: int = 20_000) -> Iterator[tuple[int, str, bytes, bytes]]:
        """Yield (log index, record id, leaf, stored leaf hash) in index order, streaming."""
        t = RECORDS
        position = start
        while True:
            stmt = (
                select(t.c.log_index, t.c.id, t.c.leaf, t.c.leaf_hash)
                .where(t.c.log_index >= position, t.c.log_index < position + chunk)
                .order_by(t.c.log_index)
            )
            with self.engine.connect() as conn:
                rows = conn.execute(stmt).all()
            if not rows:
                return
            for row in rows:
                yield int(row[0]), row[1], bytes(row[2]), bytes(row[3])
            position += chunk

    # --- sequencing -------------------------------------------------------------------------

    def sequence_batch(self, hasher: TreeHasher, max_records: int) -> SequencedBatch | None:
        """Integrate up to ``max_records`` pending records into the tree in one transaction.

        Exactly one sequencer runs at a time: PostgreSQL takes an advisory transaction lock (a
        process that cannot get it returns None), SQLite's BEGIN IMMEDIATE serialises writers.
        A crash anywhere before commit leaves the batch pending, to be sequenced once later.
        """
        t = RECORDS
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                got = conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _SEQUENCER_LOCK}
                ).scalar()
                if not got:
                    return None
            state = conn.execute(select(STATE).where(STATE.c.id == 1)).first()
            if state is None:
                raise ConfigurationError("the database has no log; run `trustledger init` first")
            size = int(state.size)
            if self.dialect == "postgresql":
                # Walk the partial pending index in seq order. Before autovacuum has analysed a
                # fast-growing table the planner chose a full scan and sort: ~500 ms instead of
                # ~10 ms per 10,000-record batch at a million pending rows.
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                conn.execute(text("SET LOCAL enable_bitmapscan = off"))
            pending = conn.execute(
                select(t.c.seq, t.c.leaf_hash)
                .where(t.c.log_index.is_(None))
                .order_by(t.c.seq)
                .limit(max_records)
            ).all()
            if not pending:
                return SequencedBatch(0, size, bytes(state.root_hash))
            writer = TileWriter(
                hasher, size, self._fetch_tiles(conn, [tid for tid, _ in tiles_for_size(size)])
            )
            writer.append(bytes(row[1]) for row in pending)
            seqs = [int(row[0]) for row in pending]
            self._assign_indices(conn, seqs, size)
            self._write_tiles(conn, writer.dirty_tiles())
            root = writer.root()
            conn.execute(update(STATE).where(STATE.c.id == 1).values(size=writer.size, root_hash=root))
        return SequencedBatch(len(pending), writer.size, root)

    def _assign_indices(self, conn: Connection, seqs: list[int], base: int) -> None:
        if self.dialect == "postgresql":
            conn.execute(
                text(
                    "UPDATE record SET log_index = v.idx FROM "
                    "unnest(CAST(:seqs AS bigint[]), CAST(:idxs AS bigint[])) AS v(seq, idx) "
                    "WHERE record.seq = v.seq"
                ),
                {"seqs": seqs, "idxs": list(range(base, base + len(seqs)))},
            )
        else:
            conn.exec_driver_sql(
                "UPDATE record SET log_index = ? WHERE seq = ?",
                [(base + i, s) for i, s in enumerate(seqs)],
            )

    def _write_tiles(self, conn: Connection, tiles: Mapping[TileId, Sequence[bytes]]) -> None:
        if not tiles:
            return
        values = [
            {"level": tid.level, "idx": tid.index, "width": len(h), "hashes": b"".join(h)}
            for tid, h in tiles.items()
        ]
        table = TILES
        insert = postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)
        stmt = insert.on_conflict_do_update(
            index_elements=["level", "idx"],
            set_={"width": insert.excluded.width, "hashes": insert.excluded.hashes},
        )
        conn.execute(stmt, values)

    def _fetch_tiles(self, conn: Connection, ids: Sequence[TileId]) -> dict[TileId, list[bytes]]:
        if not ids:
            return {}
        table = TILES
        wanted = {(tid.level, tid.index) for tid in ids}
        levels = {level for level, _ in wanted}
        stmt = select(table.c.level, table.c.idx, table.c.hashes).where(
            table.c.level.in_(levels), table.c.idx.in_({idx for _, idx in wanted})
        )
        result: dict[TileId, list[bytes]] = {}
        for level, idx, blob in conn.execute(stmt):
            if (level, idx) in wanted:
                blob = bytes(blob)
                result[TileId(level, idx)] = [blob[i : i + 32] for i in range(0, len(blob), 32)]
        return result

    def fetch_tiles(self, ids: Sequence[TileId]) -> dict[TileId, list[bytes]]:
        """Stored tiles by id (missing ones are absent from the result)."""
        try:
            with self.engine.connect() as conn:
                return self._fetch_tiles(conn, ids)
        except sa_exc.SQLAlchemyError as e:
            raise StorageError(f"database error: {e}") from e

    def iter_tiles(self) -> Iterator[tuple[TileId, bytes]]:
        """All stored tiles (for audit)."""
        table = TILES
        with self.engine.connect() as conn:
            for level, idx, blob in conn.execute(select(table.c.level, table.c.idx, table.c.hashes)):
                yield TileId(int(level), int(idx)), bytes(blob)

    # --- checkpoints ------------------------------------------------------------------------

    @contextmanager
    def checkpoint_lock(self) -> Iterator[Connection | None]:
        """A transaction holding the checkpoint issuer's lock, or None if another process holds it."""
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                got = conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _CHECKPOINT_LOCK}
                ).scalar()
                if not got:
                    yield None
                    return
            yield conn

    def add_checkpoint(
        self, conn: Connection, tree_size: int, root_hash: bytes, timestamp_us: int, note: str
    ) -> None:
        """Store a signed checkpoint (inside :meth:`checkpoint_lock`)."""
        conn.execute(
            CHECKPOINTS.insert().values(
                tree_size=tree_size, root_hash=root_hash, timestamp_us=timestamp_us, note=note
            )
        )

    def latest_checkpoint(self, conn: Connection | None = None) -> StoredCheckpoint | None:
        """The newest checkpoint."""
        table = CHECKPOINTS
        stmt = select(table).order_by(table.c.tree_size.desc()).limit(1)
        if conn is not None:
            row = conn.execute(stmt).first()
        else:
            with self.engine.connect() as c:
                row = c.execute(stmt).first()
        return StoredCheckpoint(**row._mapping) if row else None

    def checkpoints(self) -> list[StoredCheckpoint]:
        """All checkpoints, oldest first."""
        table = CHECKPOINTS
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).order_by(table.c.tree_size)).all()
        return [StoredCheckpoint(**r._mapping) for r in rows]

    def add_client(self, name: str, role: str, key_hash: bytes, created_at_us: int) -> None:
        """Register a calling system."""
        with self.transaction() as conn:
            conn.execute(
                CLIENTS.insert().values(
                    name=name, role=role, key_hash=key_hash, created_at_us=created_at_us, disabled=False
                )
            )

    def client_by_key_hash(self, key_hash: bytes) -> RegisteredClient | None:
        """The enabled client owning this key hash."""
        t = CLIENTS
        with self.reading() as conn:
            row = conn.execute(
                select(t.c.name, t.c.role).where(t.c.key_hash == key_hash, t.c.disabled.is_(False))
            ).first()
        return RegisteredClient(str(row[0]), str(row[1])) if row else None

    def add_seal_key(self, key_id: str, system: str, public_key_hex: str, created_at_us: int) -> None:
        """Register an SM2 seal key for a calling system."""
        with self.transaction() as conn:
            conn.execute(
                SEAL_KEYS.insert().values(
                    key_id=key_id, system=system, public_key=public_key_hex, created_at_us=created_at_us
                )
            )

    def seal_keys(self, system: str) -> dict[str, str]:
        """The unrevoked seal keys of ``system``: key id → public key hex."""
        t = SEAL_KEYS
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.key_id, t.c.public_key).where(t.c.system == system, t.c.revoked_at_us.is_(None))
            )
            return {r[0]: r[1] for r in rows}

    # --- anchors ----------------------------------------------------------------------------

    @contextmanager
    def anchor_lock(self) -> Iterator[bool]:
        """Hold the anchorer's lock for a whole run (yields False if another process has it).

        Not a transaction: a run waits on the chain, and must not block intake meanwhile. PostgreSQL
        uses a session advisory lock; SQLite a ``flock`` on a file beside the database.
        """
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                got = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ANCHOR_LOCK}).scalar()
                )
                conn.commit()
                try:
                    yield got
                finally:
                    if got:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ANCHOR_LOCK})
                        conn.commit()
            return
        path = f"{self.engine.url.database or 'memory'}.anchor.lock"
        with open(path, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add_anchor(self, **values: Any) -> StoredAnchor:
        """Insert a new anchor row; returns the stored row (the existing one if its size exists)."""
        try:
            with self.transaction() as conn:
                conn.execute(ANCHORS.insert().values(**values))
        except INTEGRITY_ERRORS:
            pass
        found = self.anchor_by_size(int(values["tree_size"]))
        if found is None:  # pragma: no cover - the insert or the conflict guarantees a row
            raise StorageError(f"anchor row for size {values['tree_size']} vanished")
        return found

    def update_anchor(self, seq: int, *, expect_state: str, **values: Any) -> bool:
        """Move anchor ``seq`` on, only if it is still in ``expect_state`` (False if it was not)."""
        with self.transaction() as conn:
            result = conn.execute(
                update(ANCHORS).where(ANCHORS.c.seq == seq, ANCHORS.c.state == expect_state).values(**values)
            )
        return bool(result.rowcount)

    def anchor_by_size(self, tree_size: int) -> StoredAnchor | None:
        """The anchor row of the checkpoint of ``tree_size``."""
        return self._one_anchor(select(ANCHORS).where(ANCHORS.c.tree_size == tree_size))

    def latest_anchor(self, states: Sequence[str]) -> StoredAnchor | None:
        """The anchor row of the largest tree size among rows in ``states``."""
        stmt = select(ANCHORS).where(ANCHORS.c.state.in_(states)).order_by(ANCHORS.c.tree_size.desc())
        return self._one_anchor(stmt.limit(1))

    def anchors(self, *, states: Sequence[str] | None = None, limit: int = 100) -> list[StoredAnchor]:
        """Anchor rows, newest first."""
        stmt = select(ANCHORS).order_by(ANCHORS.c.tree_size.desc()).limit(limit)
        if states is not None:
            stmt = stmt.where(ANCHORS.c.state.in_(states))
        with self.engine.connect() as conn:
            return [StoredAnchor(**r._mapping) for r in conn.execute(stmt)]

    def anchored_checkpoint(self, min_size: int) -> tuple[StoredAnchor, StoredCheckpoint] | None:
        """The newest final anchor covering a tree of more than ``min_size`` leaves, with its checkpoint."""
        a, c = ANCHORS, CHECKPOINTS
        stmt = (
            select(a, c.c.seq.label("cp_seq"), c.c.root_hash, c.c.timestamp_us, c.c.note)
            .join(c, c.c.tree_size == a.c.tree_size)
            .where(a.c.state == "final", a.c.tree_size > min_size)
            .order_by(a.c.tree_size.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        m = dict(row._mapping)
        checkpoint = StoredCheckpoint(
            seq=m.pop("cp_seq"),
            tree_size=m["tree_size"],
            root_hash=m.pop("root_hash"),
            timestamp_us=m.pop("timestamp_us"),
            note=m.pop("note"),
        )
        return StoredAnchor(**m), checkpoint

    def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        """The checkpoint issued at ``tree_size``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.tree_size == tree_size)).first()
        return StoredCheckpoint(**row._mapping) if row else None

    def _one_anchor(self, stmt: Any) -> StoredAnchor | None:
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return StoredAnchor(**row._mapping) if row else None

    # --- witness cosignatures ---------------------------------------------------------------

    def add_cosignature(
        self, tree_size: int, witness: str, line: str, cosigned_at: int, received_at_us: int
    ) -> None:
        """Store ``witness``'s cosignature line of the checkpoint of ``tree_size`` (the first one stays)."""
        table = COSIGNATURES
        insert = postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)
        with self.transaction() as conn:
            conn.execute(
                insert.values(
                    tree_size=tree_size,
                    witness=witness,
                    line=line,
                    cosigned_at=cosigned_at,
                    received_at_us=received_at_us,
                ).on_conflict_do_nothing(index_elements=["tree_size", "witness"])
            )

    def cosignature_lines(self, tree_size: int) -> list[str]:
        """The stored cosignature lines of the checkpoint of ``tree_size``, by witness name."""
        t = COSIGNATURES
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.line).where(t.c.tree_size == tree_size).order_by(t.c.witness))
            return [str(r[0]) for r in rows]

    def cosigning_witnesses(self, tree_size: int) -> list[str]:
        """The names of the witnesses that cosigned the checkpoint of ``tree_size``."""
        t = COSIGNATURES
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.witness).where(t.c.tree_size == tree_size).order_by(t.c.witness))
            return [str(r[0]) for r in rows]

    def latest_cosigned_size(self, witness: str) -> int | None:
        """The largest checkpoint ``witness`` cosigned."""
        t = COSIGNATURES
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(t.c.tree_size)).where(t.c.witness == witness)).scalar()
        return None if value is None else int(value)

    def checkpoints_to_cosign(self, witness: str, min_size: int, limit: int) -> list[StoredCheckpoint]:
        """The newest ``limit`` checkpoints of at least ``min_size`` leaves that ``witness`` has not
        cosigned, oldest first."""
        c, w = CHECKPOINTS, COSIGNATURES
        cosigned = select(w.c.tree_size).where(w.c.witness == witness, w.c.tree_size == c.c.tree_size)
        stmt = (
            select(c)
            .where(c.c.tree_size >= min_size, ~cosigned.exists())
            .order_by(c.c.tree_size.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [StoredCheckpoint(**r._mapping) for r in reversed(rows)]

    def witness_peer(self, name: str) -> StoredWitnessPeer | None:
        """What the log knows of witness ``name``."""
        t = WITNESS_PEERS
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.name == name)).first()
        return StoredWitnessPeer(**row._mapping) if row else None

    def record_witness_attempt(
        self, name: str, *, acknowledged_size: int | None, error: str | None, now_us: int
    ) -> None:
        """Record a submission to witness ``name``: the size it acknowledged (None: unchanged) and
        the error (None: it succeeded)."""
        table = WITNESS_PEERS
        values: dict[str, Any] = {"last_attempt_us": now_us, "last_error": error}
        if error is None:
            values["last_success_us"] = now_us
        if acknowledged_size is not None:
            values["acknowledged_size"] = acknowledged_size
        insert = postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)
        with self.transaction() as conn:
            conn.execute(
                insert.values(name=name, **values).on_conflict_do_update(index_elements=["name"], set_=values)
            )
