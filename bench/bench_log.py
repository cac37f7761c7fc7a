#!/usr/bin/env python
"""Benchmark of the trustledger log core on SQLite and PostgreSQL, with pymerkle and raw floors.

Run from the repository root::

    .venv/bin/python bench/bench_log.py                      # 1,000,000 entries, both backends
    .venv/bin/python bench/bench_log.py --quick              # 100,000 entries (about 2 minutes)
    .venv/bin/python bench/bench_log.py --entries 300000 --backends sqlite

Per backend (SQLite file in a temp dir; PostgreSQL scratch database, dropped afterwards):

1. bulk append: ``Ledger.submit()`` in batches of 10,000 realistic records until N (durable:
   SQLite WAL + synchronous=FULL, PostgreSQL synchronous_commit as configured on the server);
2. sequencing: ``Ledger.sequence_all()`` over the N pending records;
3. inclusion proofs: ``Ledger.inclusion_proof`` for 2,000 random indices at size N on a fresh
   ``Ledger`` (empty tile cache: cold), then the same indices again (warm);
4. receipts: ``Ledger.receipt`` and ``verify_receipt`` (trusted key) for 500 records;
5. raw floor: a bare SQLAlchemy ``executemany`` insert of the same rows into a plain table.

Baselines in the same run: hashlib SM3 (and SHA-256) hashing of the same leaves, an in-memory SM3
Merkle root over them, and pymerkle 7 (``InmemoryTree`` and ``SqliteTree``; SHA-256, the only
family it offers) appending the same leaf bytes, proving inclusion and verifying proofs.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import platform
import random
import secrets
import shutil
import sqlite3
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_PG_URL,
    Stats,
    code_version,
    fmt_rate,
    fmt_ratio,
    log,
    ms,
    pg_scratch_database,
    pg_server_info,
    print_table,
    rate,
    verdict,
)
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey, digest_function
from ledger.core.hashing import tree_hasher
from ledger.core.leaf import LeafData, RecordKind, canonical_metadata, encode_leaf
from ledger.core.merkle import verify_inclusion
from ledger.core.receipt import Receipt, verify_receipt
from ledger.log import Ledger, Submission
from ledger.store import INSERT_COLUMNS, LogStore, make_engine

ORIGIN = "bench.trustledger.local/log"
SUBMITTER = "bench-approval-system"
SUBJECT_SECRET = b"bench-subject-secret-0123456789ab"
KINDS = (RecordKind.CERTIFICATE, RecordKind.APPROVAL, RecordKind.EVIDENCE)
KIND_WEIGHTS = (0.5, 0.3, 0.2)
DOC_PREFIX = {RecordKind.CERTIFICATE: "JY", RecordKind.APPROVAL: "SP", RecordKind.EVIDENCE: "ZJ"}
DEPTS = (
    "market-regulation",
    "housing-construction",
    "transport",
    "ecology-environment",
    "public-security",
    "taxation",
    "health-commission",
    "urban-management",
)

TARGET_APPEND = 50_000  # records/s on each backend
TARGET_PROOF_P99 = 0.005  # s, at 1,000,000 entries
TARGET_VERIFY = 0.010  # s, receipt verification


# --- the workload ---------------------------------------------------------------------------------


class Workload:
    """Deterministic records: the same N submissions for every backend and baseline."""

    def __init__(self, entries: int, batch: int, seed: int) -> None:
        self.entries = entries
        self.batch = batch
        self.seed = seed

    @property
    def batches(self) -> int:
        """Number of batches."""
        return math.ceil(self.entries / self.batch)

    def _rows(self, number: int) -> Iterator[tuple[RecordKind, bytes, dict[str, str]]]:
        rng = random.Random(self.seed * 1_000_003 + number)
        start = number * self.batch
        count = min(self.batch, self.entries - start)
        kinds = rng.choices(KINDS, weights=KIND_WEIGHTS, k=count)
        for offset, kind in enumerate(kinds):
            metadata = {"dept": rng.choice(DEPTS), "doc": f"{DOC_PREFIX[kind]}-2026-{start + offset:07d}"}
            yield kind, rng.randbytes(32), metadata

    def submissions(self, number: int) -> list[Submission]:
        """Batch ``number`` as submissions."""
        return [Submission(kind=k, content_hash=h, metadata=m) for k, h, m in self._rows(number)]

    def leaves(self, number: int, received_at_us: int) -> list[bytes]:
        """Batch ``number`` as the leaf bytes the ledger builds (the received time is a parameter)."""
        out = []
        for kind, content_hash, metadata in self._rows(number):
            # Plain json.dumps is RFC 8785 for these ASCII string-only objects (checked below).
            meta = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
            out.append(
                encode_leaf(
                    LeafData(
                        kind=kind,
                        hash_alg=HashAlgorithm.SM3,
                        content_hash=content_hash,
                        metadata_json=meta,
                        submitter=SUBMITTER,
                        received_at_us=received_at_us,
                    )
                )
            )
        return out

    def check_canonical(self) -> None:
        """The shortcut in :meth:`leaves` produces the same bytes as the ledger."""
        for _, _, metadata in self._rows(0):
            fast = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode()
            if fast != canonical_metadata(metadata):
                raise AssertionError(f"metadata shortcut differs from RFC 8785 for {metadata}")


def make_ledger(url: str, key: Sm2PrivateKey, entries: int) -> Ledger:
    """A Ledger over ``url`` exactly as the service builds one (schema created if missing)."""
    ledger = Ledger(
        LogStore(make_engine(url)),
        origin=ORIGIN,
        hash_alg=HashAlgorithm.SM3,
        signing_key=key,
        subject_secret=SUBJECT_SECRET,
        max_pending=max(2_000_000, entries + 20_000),
    )
    ledger.create_schema()
    return ledger


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# --- per-backend measurements ---------------------------------------------------------------------


@dataclass
class BackendResult:
    """Figures of one storage backend."""

    backend: str
    durability: str = ""
    entries: int = 0
    append_s: float = math.nan
    append_rate: float = math.nan
    append_rate_first10: float = math.nan
    append_rate_last10: float = math.nan
    append_batch: Stats | None = None
    pending_count_s: float = math.nan
    sequence_s: float = math.nan
    sequence_rate: float = math.nan
    checkpoint_s: float = math.nan
    proof_cold: Stats | None = None
    proof_warm: Stats | None = None
    proofs_checked: int = 0
    receipt_gen: Stats | None = None
    receipt_verify: Stats | None = None
    receipt_parse_verify: Stats | None = None
    bare_verify: Stats | None = None
    receipt_json_bytes: int = 0
    floor_rates: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def sqlite_durability(ledger: Ledger) -> str:
    """journal_mode and synchronous of a ledger's SQLite connections."""
    with ledger.store.engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
            int(conn.exec_driver_sql("PRAGMA synchronous").scalar() or 0), "?"
        )
    return f"SQLite {sqlite3.sqlite_version} journal_mode={mode}, synchronous={sync}"


def bench_backend(
    backend: str,
    url: str,
    work: Workload,
    args: argparse.Namespace,
    key: Sm2PrivateKey,
    floor_leaves: list[bytes],
    floor_hashes: list[bytes],
    fresh_database: Callable[[], AbstractContextManager[str]],
) -> BackendResult:
    """All ledger measurements on one backend, then the insert floors (``fresh_database``: another
    empty database on the same backend, for the real-schema floor)."""
    res = BackendResult(backend=backend, entries=work.entries)
    rng = random.Random(work.seed + 17)
    receipt_positions = set(rng.sample(range(work.entries), min(args.receipts, work.entries)))
    ledger = make_ledger(url, key, work.entries)
    res.durability = sqlite_durability(ledger) if backend == "sqlite" else "see server line"

    # 1. bulk append -------------------------------------------------------------------------------
    log(f"{backend}: appending {work.entries:,} records in batches of {work.batch:,} (Ledger.submit)")
    batch_times: list[float] = []
    sampled: dict[int, str] = {}
    progress_every = max(1, work.batches // 10)
    for number in range(work.batches):
        subs = work.submissions(number)  # built outside the timed region (the client's work)
        elapsed, accepted = timed(lambda subs=subs: ledger.submit(SUBMITTER, subs))
        batch_times.append(elapsed)
        base = number * work.batch
        for offset, acc in enumerate(accepted):
            if base + offset in receipt_positions:
                sampled[base + offset] = acc.id
        if (number + 1) % progress_every == 0:
            done = min(work.entries, (number + 1) * work.batch)
            log(f"{backend}:   {done:,} appended, {rate(done, sum(batch_times)):,.0f} rec/s so far")
    res.append_s = sum(batch_times)
    res.append_rate = rate(work.entries, res.append_s)
    tenth = max(1, len(batch_times) // 10)
    res.append_rate_first10 = rate(
        sum(min(work.batch, work.entries) for _ in range(tenth)), sum(batch_times[:tenth])
    )
    last_count = work.entries - (len(batch_times) - tenth) * work.batch
    res.append_rate_last10 = rate(last_count, sum(batch_times[-tenth:]))
    res.append_batch = Stats.of(batch_times)

    # submit() re-counts the pending records at most once a second (back pressure): its cost at N
    probes = [timed(ledger.store.pending_count)[0] for _ in range(3)]
    res.pending_count_s = sorted(probes)[1]

    # 2. sequencing --------------------------------------------------------------------------------
    log(f"{backend}: sequencing {work.entries:,} pending records (Ledger.sequence_all)")
    res.sequence_s, sequenced = timed(lambda: ledger.sequence_all(work.batch))
    if sequenced != work.entries:
        res.notes.append(f"sequence_all sequenced {sequenced}, expected {work.entries}")
    res.sequence_rate = rate(sequenced, res.sequence_s)
    res.checkpoint_s, checkpoint = timed(ledger.issue_checkpoint)
    if checkpoint is None or checkpoint.tree_size != work.entries:
        res.notes.append(
            f"checkpoint covers {getattr(checkpoint, 'tree_size', None)}, expected {work.entries}"
        )
    root = checkpoint.root_hash if checkpoint is not None else b""
    ledger.store.engine.dispose()

    # 3. inclusion proofs on a fresh Ledger (empty tile cache) -------------------------------------
    log(f"{backend}: {args.proofs:,} inclusion proofs, cold then warm")
    fresh = make_ledger(url, key, work.entries)
    size = fresh.current_size()
    indices = [rng.randrange(size) for _ in range(args.proofs)]
    cold: list[float] = []
    proofs: dict[int, list[bytes]] = {}
    for index in indices:
        elapsed, proof = timed(lambda index=index: fresh.inclusion_proof(index, size))
        cold.append(elapsed)
        proofs[index] = proof
    warm = [timed(lambda index=index: fresh.inclusion_proof(index, size))[0] for index in indices]
    res.proof_cold, res.proof_warm = Stats.of(cold), Stats.of(warm)
    hasher = tree_hasher(HashAlgorithm.SM3)
    for index in indices[:25]:  # correctness check, untimed
        stored = fresh.store.record_at(index)
        assert stored is not None
        verify_inclusion(hasher, stored.leaf_hash, index, size, proofs[index], root)
        res.proofs_checked += 1

    # 4. receipts -----------------------------------------------------------------------------------
    log(f"{backend}: {len(sampled)} receipts: generation, verification")
    receipts: list[tuple[int, Receipt]] = []
    gen: list[float] = []
    for position, record_id in sampled.items():
        elapsed, receipt = timed(lambda record_id=record_id: fresh.receipt(record_id))
        gen.append(elapsed)
        if receipt.inclusion.index != position:
            res.notes.append(f"record {record_id} at index {receipt.inclusion.index}, expected {position}")
        receipts.append((position, receipt))
    trusted = fresh.public_key
    verify: list[float] = []
    parse_verify: list[float] = []
    bare: list[float] = []
    for _, receipt in receipts:
        elapsed, result = timed(lambda receipt=receipt: verify_receipt(receipt, trusted_key=trusted))
        assert result.key_pinned and result.steps[-1] == "signature"
        verify.append(elapsed)
        document = receipt.to_json()
        res.receipt_json_bytes = max(res.receipt_json_bytes, len(document))
        parse_verify.append(
            timed(lambda document=document: verify_receipt(Receipt.from_json(document), trusted_key=trusted))[
                0
            ]
        )
        leaf_hash = bytes.fromhex(receipt.inclusion.leaf_hash)
        path = [bytes.fromhex(h) for h in receipt.inclusion.hashes]
        bare.append(
            timed(
                lambda leaf_hash=leaf_hash, path=path, receipt=receipt: verify_inclusion(
                    hasher, leaf_hash, receipt.inclusion.index, receipt.inclusion.tree_size, path, root
                )
            )[0]
        )
    res.receipt_gen = Stats.of(gen)
    res.receipt_verify = Stats.of(verify)
    res.receipt_parse_verify = Stats.of(parse_verify)
    res.bare_verify = Stats.of(bare)
    fresh.store.engine.dispose()

    # 5. raw floors: the same rows into plain tables (same database), and into a fresh real schema ---
    for variant in FLOORS:
        log(f"{backend}: {FLOORS[variant]}: {work.entries:,} rows")
        if variant == "store":
            try:
                with fresh_database() as fresh_url:
                    seconds = floor_insert(fresh_url, work, floor_leaves, floor_hashes, variant)
            except Exception as e:  # noqa: BLE001 - an internal interface: report it, finish the run
                res.notes.append(f"storage-only floor skipped: {type(e).__name__}: {e}")
                seconds = math.nan
        else:
            seconds = floor_insert(url, work, floor_leaves, floor_hashes, variant)
        res.floor_rates[variant] = rate(work.entries, seconds)
    return res


FLOOR_COLUMNS = INSERT_COLUMNS  # the floors insert exactly the columns the log inserts
FLOORS = {
    "sqlalchemy": "raw floor: SQLAlchemy Core executemany, plain table",
    "driver": "raw floor: driver bulk (COPY / sqlite3), plain table",
    "store": "storage only: LogStore.insert_records, real schema",
}
try:  # the ledger's id format when it has one (time prefix + 128 random bits), else random hex
    from ledger.log import new_record_id as _new_record_id
except ImportError:  # pragma: no cover - older ledger

    def _new_record_id(_now_us: int) -> str:
        return secrets.token_hex(16)


def floor_rows(
    work: Workload, number: int, leaves: list[bytes], hashes: list[bytes]
) -> list[tuple[Any, ...]]:
    """Batch ``number`` as finished record rows (ids, leaves and leaf hashes already computed)."""
    start = number * work.batch
    end = min(work.entries, start + work.batch)
    received = 1_780_000_000_000_000 + number
    kinds = [k.value for k in KINDS]
    return [
        (_new_record_id(received), kinds[i % 3], SUBMITTER, None, None, received, leaves[i], hashes[i])
        for i in range(start, end)
    ]


def store_rows(rows: list[tuple[Any, ...]]) -> list[Any]:
    """Rows as ``LogStore.insert_records`` takes them: tuples in ``INSERT_COLUMNS`` order when the
    store declares that order, else mappings (the earlier interface)."""
    import ledger.store

    order = getattr(ledger.store, "INSERT_COLUMNS", None)
    if order is None:
        return [dict(zip(FLOOR_COLUMNS, row, strict=True)) for row in rows]
    position = {name: i for i, name in enumerate(FLOOR_COLUMNS)}
    return [tuple(row[position[name]] for name in order) for row in rows]


def floor_insert(url: str, work: Workload, leaves: list[bytes], hashes: list[bytes], variant: str) -> float:
    """Seconds to insert the same finished rows (batches of ``work.batch``, one transaction each).

    ``sqlalchemy``: ``conn.execute(table.insert(), rows)`` into a plain table (the bare executemany);
    ``driver``: the DB-API driver directly (PostgreSQL ``COPY``, sqlite3 ``executemany``), plain table;
    ``store``: ``LogStore.insert_records`` into the real, empty schema (``url`` must be a fresh
    database): what storage alone costs, without building leaves.
    """
    if variant == "store":
        store = LogStore(make_engine(url))
        store.create_schema(
            origin=ORIGIN, hash_alg="sm3", empty_root=tree_hasher(HashAlgorithm.SM3).empty_root()
        )
        total = 0.0
        try:
            for number in range(work.batches):
                rows = store_rows(floor_rows(work, number, leaves, hashes))
                t0 = time.perf_counter()
                store.insert_records(rows)
                total += time.perf_counter() - t0
            if store.pending_count() != work.entries:
                raise AssertionError("the store floor lost rows")
        finally:
            store.engine.dispose()
        return total
    engine = make_engine(url)  # same durability settings as the ledger (WAL/FULL on SQLite)
    metadata = MetaData()
    name = f"bench_floor_{variant}"
    plain = Table(
        name,
        metadata,
        Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
        Column("id", String(64), nullable=False),
        Column("log_index", BigInteger, nullable=True),
        Column("kind", String(32), nullable=False),
        Column("submitter", String(128), nullable=False),
        Column("idempotency_key", String(200)),
        Column("request_hash", LargeBinary),
        Column("received_at_us", BigInteger, nullable=False),
        Column("leaf", LargeBinary, nullable=False),
        Column("leaf_hash", LargeBinary, nullable=False),
    )
    metadata.create_all(engine)
    columns = ", ".join(FLOOR_COLUMNS)
    total = 0.0
    try:
        for number in range(work.batches):
            rows = floor_rows(work, number, leaves, hashes)
            if variant == "sqlalchemy":
                dicts = [dict(zip(FLOOR_COLUMNS, row, strict=True)) for row in rows]
                t0 = time.perf_counter()
                with engine.begin() as conn:
                    conn.execute(plain.insert(), dicts)
            else:
                t0 = time.perf_counter()
                with engine.begin() as conn:
                    if engine.dialect.name == "postgresql":
                        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                        with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                            for row in rows:
                                copy.write_row(row)
                    else:
                        marks = ", ".join("?" * len(FLOOR_COLUMNS))
                        conn.exec_driver_sql(f"INSERT INTO {name} ({columns}) VALUES ({marks})", rows)
            total += time.perf_counter() - t0
        with engine.connect() as conn:
            stored = conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()
        if stored != work.entries:
            raise AssertionError(f"{name} holds {stored} rows, expected {work.entries}")
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {name}"))
    finally:
        engine.dispose()
    return total


# --- baselines ----------------------------------------------------------------------------------


@dataclass
class BaselineResult:
    """Figures independent of the storage backend."""

    entries: int = 0
    leaf_build_s: float = math.nan
    sm3_new_rate: float = math.nan
    sm3_copy_rate: float = math.nan
    sm3_ledger_rate: float = math.nan
    sha256_rate: float = math.nan
    sm3_root_s: float = math.nan
    pm_mem_entries: int = 0
    pm_mem_append_rate: float = math.nan
    pm_mem_proof: Stats | None = None
    pm_verify: Stats | None = None
    pm_sqlite_entries: int = 0
    pm_sqlite_append_rate: float = math.nan
    pm_sqlite_proof: Stats | None = None
    pm_sqlite_first_proof_s: float = math.nan
    notes: list[str] = field(default_factory=list)


def build_leaves(work: Workload) -> list[bytes]:
    """All N leaves (untimed preparation for the floors and pymerkle)."""
    leaves: list[bytes] = []
    for number in range(work.batches):
        leaves.extend(work.leaves(number, 1_780_000_000_000_000 + number))
    return leaves


def hash_floors(res: BaselineResult, leaves: list[bytes]) -> list[bytes]:
    """hashlib SM3 / SHA-256 hashing of the leaves (RFC 9162 leaf hashes); returns the SM3 hashes."""
    n = len(leaves)
    new = hashlib.new
    elapsed, _ = timed(lambda: [new("sm3", b"\x00" + leaf).digest() for leaf in leaves])
    res.sm3_new_rate = rate(n, elapsed)
    prepared = hashlib.new("sm3")

    def copy_ctx() -> list[bytes]:
        out = []
        for leaf in leaves:
            h = prepared.copy()
            h.update(b"\x00" + leaf)
            out.append(h.digest())
        return out

    elapsed, hashes = timed(copy_ctx)
    res.sm3_copy_rate = rate(n, elapsed)
    leaf_hash = tree_hasher(HashAlgorithm.SM3).leaf_hash
    elapsed, ledger_hashes = timed(lambda: [leaf_hash(leaf) for leaf in leaves])
    res.sm3_ledger_rate = rate(n, elapsed)
    if ledger_hashes != hashes:
        raise AssertionError("hashlib SM3 and the ledger's leaf hash disagree")
    sha = hashlib.sha256
    elapsed, _ = timed(lambda: [sha(b"\x00" + leaf).digest() for leaf in leaves])
    res.sha256_rate = rate(n, elapsed)
    res.sm3_root_s, _ = timed(lambda: tree_hasher(HashAlgorithm.SM3).root_of(hashes))
    return hashes


def bench_pymerkle(res: BaselineResult, leaves: list[bytes], args: argparse.Namespace, tmp: Path) -> None:
    """pymerkle InmemoryTree and SqliteTree over the same leaf bytes."""
    _pymerkle_inmemory(res, leaves, args)
    gc.collect()  # the in-memory tree is gone
    _pymerkle_sqlite(res, leaves, args, tmp)


def _pymerkle_inmemory(res: BaselineResult, leaves: list[bytes], args: argparse.Namespace) -> None:
    import pymerkle

    rng = random.Random(args.seed + 99)
    budget = args.pymerkle_budget
    # InmemoryTree -----------------------------------------------------------------------------------
    log(f"pymerkle InmemoryTree: appending up to {len(leaves):,} entries (budget {budget:.0f} s)")
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    spent = 0.0
    count = 0
    for start in range(0, len(leaves), 10_000):
        chunk = leaves[start : start + 10_000]
        t0 = time.perf_counter()
        for entry in chunk:
            tree.append_entry(entry)
        spent += time.perf_counter() - t0
        count += len(chunk)
        if spent > budget and count < len(leaves):
            res.notes.append(
                f"pymerkle InmemoryTree appended only {count:,} of {len(leaves):,} entries within "
                f"{budget:.0f} s; its proofs are at that size"
            )
            break
    res.pm_mem_entries = count
    res.pm_mem_append_rate = rate(count, spent)
    size = count
    root = tree.get_root(size)
    proof_times: list[float] = []
    sample: list[tuple[int, Any]] = []
    for _ in range(args.proofs):
        index = rng.randrange(1, size + 1)
        elapsed, proof = timed(lambda index=index: tree.prove_inclusion(index, size))
        proof_times.append(elapsed)
        if len(sample) < args.receipts:
            sample.append((index, proof))
    res.pm_mem_proof = Stats.of(proof_times)
    verify_times = []
    for index, proof in sample:
        base = tree.get_leaf(index)
        verify_times.append(
            timed(lambda base=base, proof=proof: pymerkle.verify_inclusion(base, root, proof))[0]
        )
    res.pm_verify = Stats.of(verify_times)


def _pymerkle_sqlite(res: BaselineResult, leaves: list[bytes], args: argparse.Namespace, tmp: Path) -> None:
    import pymerkle

    rng = random.Random(args.seed + 98)
    budget = args.pymerkle_budget
    # SqliteTree -------------------------------------------------------------------------------------
    log(f"pymerkle SqliteTree: appending up to {len(leaves):,} entries in batches of 10,000")
    db = tmp / "pymerkle.db"
    stree = pymerkle.SqliteTree(str(db), algorithm="sha256")
    try:
        spent = 0.0
        count = 0
        for start in range(0, len(leaves), 10_000):
            chunk = leaves[start : start + 10_000]
            t0 = time.perf_counter()
            stree.append_entries(chunk)  # one transaction per call (default journal, synchronous=FULL)
            spent += time.perf_counter() - t0
            count += len(chunk)
            if spent > budget and count < len(leaves):
                res.notes.append(
                    f"pymerkle SqliteTree appended only {count:,} of {len(leaves):,} entries "
                    f"within {budget:.0f} s"
                )
                break
        res.pm_sqlite_entries = count
        res.pm_sqlite_append_rate = rate(count, spent)
        size = count
        log(f"pymerkle SqliteTree: up to {args.proofs:,} inclusion proofs (budget {budget:.0f} s)")
        proof_times = []
        started = time.perf_counter()
        for _ in range(args.proofs):
            index = rng.randrange(1, size + 1)
            proof_times.append(timed(lambda index=index: stree.prove_inclusion(index, size))[0])
            if time.perf_counter() - started > budget:
                break
        if len(proof_times) < args.proofs:
            res.notes.append(
                f"pymerkle SqliteTree: only {len(proof_times)} of {args.proofs} proofs within {budget:.0f} s"
            )
        res.pm_sqlite_first_proof_s = proof_times[0]
        res.pm_sqlite_proof = Stats.of(proof_times)
    finally:
        stree.close()


# --- report -------------------------------------------------------------------------------------


def report(
    results: list[BackendResult], base: BaselineResult | None, args: argparse.Namespace, n: int
) -> None:
    """Print the tables."""
    names = [r.backend for r in results]
    at_full = n >= 1_000_000
    proof_target = f"p99 <= {ms(TARGET_PROOF_P99)} ms" + ("" if at_full else " (at 1M)")

    def row(label: str, cells: list[str], target: str = "", ok: list[bool | None] | None = None) -> list[str]:
        status = " ".join(verdict(o) for o in ok) if ok else ""
        return [label, *cells, target, status]

    rows = [
        row(
            "bulk append, Ledger.submit (durable)",
            [fmt_rate(r.append_rate) for r in results],
            f">= {TARGET_APPEND:,} rec/s",
            [r.append_rate >= TARGET_APPEND for r in results],
        ),
        row("  first 10% of batches", [fmt_rate(r.append_rate_first10) for r in results]),
        row("  last 10% of batches", [fmt_rate(r.append_rate_last10) for r in results]),
        row("  per 10k batch p50 / p99", [r.append_batch.ms() if r.append_batch else "n/a" for r in results]),
        row(
            f"  store.pending_count() at {n:,} pending",
            [f"{ms(r.pending_count_s)} ms" for r in results],
        ),
        row("sequencing, Ledger.sequence_all", [fmt_rate(r.sequence_rate) for r in results]),
        row("issue_checkpoint (SM2 sign)", [f"{ms(r.checkpoint_s)} ms" for r in results]),
        row(
            f"inclusion proof cold p50 / p99 (n={n:,})",
            [r.proof_cold.ms() if r.proof_cold else "n/a" for r in results],
            proof_target,
            [(r.proof_cold.p99 <= TARGET_PROOF_P99) if (r.proof_cold and at_full) else None for r in results],
        ),
        row(
            "inclusion proof warm p50 / p99",
            [r.proof_warm.ms() if r.proof_warm else "n/a" for r in results],
            proof_target,
            [(r.proof_warm.p99 <= TARGET_PROOF_P99) if (r.proof_warm and at_full) else None for r in results],
        ),
        row(
            "receipt generation mean / p99",
            [r.receipt_gen.mean_p99_ms() if r.receipt_gen else "n/a" for r in results],
        ),
        row(
            "receipt verification mean / p99",
            [r.receipt_verify.mean_p99_ms() if r.receipt_verify else "n/a" for r in results],
            f"<= {ms(TARGET_VERIFY)} ms",
            [(r.receipt_verify.p99 <= TARGET_VERIFY) if r.receipt_verify else None for r in results],
        ),
        row(
            "  incl. JSON parse (offline CLI path)",
            [r.receipt_parse_verify.mean_p99_ms() if r.receipt_parse_verify else "n/a" for r in results],
        ),
        row(
            "  bare SM3 inclusion check only",
            [r.bare_verify.mean_p99_ms() if r.bare_verify else "n/a" for r in results],
        ),
    ]
    for variant, label in FLOORS.items():
        rows.append(row(label, [fmt_rate(r.floor_rates.get(variant, math.nan)) for r in results]))
        rows.append(
            row(
                "  ours / this floor (append)",
                [fmt_ratio(r.append_rate / r.floor_rates.get(variant, math.nan)) for r in results],
            )
        )
    if base is not None:
        rows.append(
            row(
                "ours / raw SM3 hashing (append)",
                [fmt_ratio(r.append_rate / base.sm3_copy_rate) for r in results],
            )
        )
        tree_rate = rate(n, base.sm3_root_s)
        rows.append(
            row(
                "ours / in-memory SM3 tree (sequencing)",
                [fmt_ratio(r.sequence_rate / tree_rate) for r in results],
            )
        )
    print_table(
        f"trustledger log core, {n:,} entries, batches of {args.batch:,} (SM3 tree, SM2 checkpoints)",
        ["measure", *names, "target", "verdict"],
        rows,
    )
    if base is None:
        return
    brow = [
        ["hashlib SM3 leaf hash, hashlib.new per leaf", fmt_rate(base.sm3_new_rate, "hash/s"), f"{n:,}"],
        ["hashlib SM3 leaf hash, copied context (floor)", fmt_rate(base.sm3_copy_rate, "hash/s"), f"{n:,}"],
        ["ledger TreeHasher.leaf_hash (SM3)", fmt_rate(base.sm3_ledger_rate, "hash/s"), f"{n:,}"],
        ["hashlib SHA-256 leaf hash (pymerkle's hash)", fmt_rate(base.sha256_rate, "hash/s"), f"{n:,}"],
        ["in-memory SM3 root over leaf hashes", fmt_rate(rate(n, base.sm3_root_s), "leaf/s"), f"{n:,}"],
        ["leaf encoding (prep, encode_leaf)", fmt_rate(rate(n, base.leaf_build_s), "leaf/s"), f"{n:,}"],
    ]
    if base.pm_mem_proof is not None:
        brow += [
            [
                "pymerkle InmemoryTree append (not durable)",
                fmt_rate(base.pm_mem_append_rate),
                f"{base.pm_mem_entries:,}",
            ],
            [
                "pymerkle InmemoryTree prove_inclusion p50 / p99",
                base.pm_mem_proof.ms(),
                f"{base.pm_mem_entries:,}",
            ],
            [
                "pymerkle verify_inclusion mean / p99",
                base.pm_verify.mean_p99_ms() if base.pm_verify else "n/a",
                "",
            ],
        ]
    if base.pm_sqlite_proof is not None:
        brow += [
            [
                "pymerkle SqliteTree append (10k per txn)",
                fmt_rate(base.pm_sqlite_append_rate),
                f"{base.pm_sqlite_entries:,}",
            ],
            [
                f"pymerkle SqliteTree prove_inclusion p50 / p99 ({base.pm_sqlite_proof.count} proofs)",
                base.pm_sqlite_proof.ms(),
                f"{base.pm_sqlite_entries:,}",
            ],
            ["pymerkle SqliteTree first (cold) proof", f"{ms(base.pm_sqlite_first_proof_s)} ms", ""],
        ]
    print_table(
        "baselines (same leaf bytes; pymerkle 7 uses SHA-256)", ["measure", "figure", "entries"], brow
    )
    if base.pm_mem_proof is None:
        return
    ratios = []
    for r in results:
        pm_s = base.pm_sqlite_proof
        pm_m = base.pm_mem_proof
        ratios += [
            [
                f"{r.backend}: append, ours / SqliteTree",
                fmt_ratio(r.append_rate / base.pm_sqlite_append_rate),
            ],
            [f"{r.backend}: append, ours / InmemoryTree", fmt_ratio(r.append_rate / base.pm_mem_append_rate)],
            [
                f"{r.backend}: proof p99 cold, ours / SqliteTree (lower is better)",
                fmt_ratio(r.proof_cold.p99 / pm_s.p99) if (r.proof_cold and pm_s) else "n/a",
            ],
            [
                f"{r.backend}: proof p99 warm, ours / InmemoryTree (lower is better)",
                fmt_ratio(r.proof_warm.p99 / pm_m.p99) if r.proof_warm else "n/a",
            ],
            [
                f"{r.backend}: receipt verify mean, ours / verify_inclusion (lower is better)",
                fmt_ratio(r.receipt_verify.mean / base.pm_verify.mean)
                if (r.receipt_verify and base.pm_verify)
                else "n/a",
            ],
            [
                f"{r.backend}: bare inclusion check mean, ours SM3 / pymerkle SHA-256",
                fmt_ratio(r.bare_verify.mean / base.pm_verify.mean)
                if (r.bare_verify and base.pm_verify)
                else "n/a",
            ],
        ]
    print_table("ratios against pymerkle (throughput: higher is better)", ["ratio", "value"], ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--entries", type=int, help="records per backend (default 1,000,000; --quick 100,000)"
    )
    parser.add_argument("--backends", default="sqlite,postgres", help="comma list of sqlite, postgres")
    parser.add_argument("--quick", action="store_true", help="100,000 entries and tighter budgets")
    parser.add_argument("--batch", type=int, default=10_000, help="records per submit() call")
    parser.add_argument("--proofs", type=int, default=2_000, help="random inclusion proofs")
    parser.add_argument("--receipts", type=int, default=500, help="receipts generated and verified")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="any database URL on the PostgreSQL server")
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--no-pymerkle", action="store_true", help="skip pymerkle and the hashing floors")
    parser.add_argument(
        "--pymerkle-budget", type=float, help="seconds per pymerkle phase (default 120; quick 30)"
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    n = args.entries or (100_000 if args.quick else 1_000_000)
    if args.pymerkle_budget is None:
        args.pymerkle_budget = 30.0 if args.quick else 120.0
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backends {sorted(unknown)}")
    started = time.perf_counter()
    work = Workload(n, args.batch, args.seed)
    work.check_canonical()
    key = Sm2PrivateKey.generate()

    print(f"bench_log: {n:,} entries, backends {', '.join(backends)}, batch {args.batch:,}")
    print(code_version())
    print(
        f"host: {platform.machine()} {platform.processor() or ''} cpus={__import__('os').cpu_count()}, "
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, SM3 via "
        f"{'OpenSSL' if digest_function(HashAlgorithm.SM3).__name__ == 'sm3_openssl' else 'fallback'}"
    )
    if "postgres" in backends:
        print(f"server: {pg_server_info(args.pg_url)}")

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-log-"))
    results: list[BackendResult] = []
    base = BaselineResult(entries=n)
    try:
        log(f"preparing the {n:,} leaf byte strings for the floors and pymerkle (untimed)")
        base.leaf_build_s, leaves = timed(lambda: build_leaves(work))
        log("raw floor: hashlib SM3 / SHA-256 of the same leaves")
        hashes = hash_floors(base, leaves)
        gc.collect()
        gc.freeze()  # the big prepared lists are permanent; keep them out of the collector's scans
        for backend in backends:
            if backend == "sqlite":

                @contextmanager
                def fresh_sqlite() -> Iterator[str]:
                    folder = Path(tempfile.mkdtemp(prefix="sqlite-", dir=tmp))
                    yield f"sqlite:///{folder / 'ledger.db'}"

                with fresh_sqlite() as url:
                    results.append(bench_backend(backend, url, work, args, key, leaves, hashes, fresh_sqlite))
            else:

                def fresh_pg() -> AbstractContextManager[str]:
                    return pg_scratch_database(args.pg_url, "logfloor")

                with pg_scratch_database(args.pg_url, "log") as url:
                    results.append(bench_backend(backend, url, work, args, key, leaves, hashes, fresh_pg))
            log(f"{backend}: done")
        if not args.no_pymerkle:
            bench_pymerkle(base, leaves, args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if results and results[0].durability:
        for r in results:
            if r.backend == "sqlite":
                print(f"sqlite: {r.durability}")
    report(results, None if args.no_pymerkle else base, args, n)
    notes = [f"{r.backend}: {note}" for r in results for note in r.notes] + base.notes
    notes.append(
        "cold proofs: fresh Ledger and engine (empty tile cache); the DB and OS page caches are warm "
        "because the records were just written"
    )
    print()
    for note in notes:
        print(f"note: {note}")
    print(f"total wall time {time.perf_counter() - started:,.0f} s")
    if args.json:

        def plain(value: Any) -> Any:
            return asdict(value) if hasattr(value, "__dataclass_fields__") else value

        Path(args.json).write_text(
            json.dumps(
                {"entries": n, "backends": [asdict(r) for r in results], "baseline": plain(base)},
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
