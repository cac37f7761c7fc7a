"""A fresh deployment for the credit benchmark, the district's bulk load, and what it costs on disk.

The bulk load is a migration-style import, not intake: the rows go straight into
``credit_subject`` and ``credit_event`` (sqlite3 ``executemany`` / PostgreSQL ``COPY``, keys and
indexes rebuilt afterwards). With ``--load ledger`` (the default) every event first gets its real
``credit_event`` ledger record through ``Ledger.submit`` (the document the service would record,
the service's submitter and idempotency key), so the ledger holds what years of intake would have
left and a subject's page can be read back from the records. With ``--load rows`` only the
subjects of the page sample get real records; the other events carry fake record ids (``bulk-…``)
and no records, which saves the ledger's share of time and disk.

Everything the bench knows about the credit tables' columns and the event record's document is in
this module (``SUBJECT_COLUMNS``, ``EVENT_COLUMNS``, :func:`event_document`): adapt it here when
the service's schema changes. :func:`check_columns` refuses to load when a table gained a
required column the bench does not fill.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from _common import log, normalise_pg_url, pg_scratch_database
from _credit_district import BLOCK_SUBJECTS, TODAY, District, DistrictEvent
from _resources import run_forked
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from credit.service import CreditService
from credit.vault import new_data_key, seal_field, wrap_key
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import RecordKind, canonical_metadata
from ledger.log import Ledger, SubjectFamily, Submission
from ledger.service import init_deployment, open_ledger
from ledger.settings import Settings

SUBMITTER = "credit"  # the ledger submitter of every credit record (as the service submits them)
BLOCK_EVENTS = 200_000  # events generated, shuffled and loaded together
RECORD_BATCH = 10_000  # records per Ledger.submit call in the load
SEAL_PROBE = 2_000  # subjects sealed before deciding whether all can be, within the budget

SUBJECT_COLUMNS = ("ref", "kind", "wrapped_key", "sealed_identifier", "sealed_name", "created_at_us")
EVENT_COLUMNS = (
    "id",
    "subject_ref",
    "type",
    "occurred_on",
    "ended_on",
    "quantity",
    "source",
    "source_ref",
    "refers_to",
    "record_id",
    "recorded_at_us",
)


def _sm3(data: bytes) -> bytes:
    return digest_function(HashAlgorithm.SM3)(data)


def document_submission(
    kind: RecordKind, document: dict[str, Any], subject_ref: bytes | None, key: str | None
) -> Submission:
    """A record whose content is its document (the shape of every credit record)."""
    of_document = getattr(Submission, "of_document", None)
    if of_document is not None:  # the ledger encodes it (issue 10: encodings only in ledger/core)
        built: Submission = of_document(kind, document, subject_ref=subject_ref, idempotency_key=key)
        return built
    encoded = canonical_metadata(document)
    return Submission(
        kind=kind,
        content_hash=_sm3(encoded),
        metadata=document,
        metadata_json=encoded,
        subject_ref=subject_ref,
        idempotency_key=key,
    )


def event_document(ev: DistrictEvent, kind: str) -> dict[str, Any]:
    """The ``credit_event`` record's document (record format v1, as the service writes it)."""
    return {
        "v": 1,
        "id": ev.id,
        "type": ev.type,
        "subject_kind": kind,
        "occurred_on": ev.occurred_on.isoformat(),
        "ended_on": ev.ended_on.isoformat() if ev.ended_on else None,
        "quantity": ev.quantity,
        "source": ev.source,
        "source_ref": ev.source_ref,
        "refers_to": ev.refers_to,
        "evidence": None,
    }


def submit_records(ledger: Ledger, submitter: str, subs: Sequence[Submission]) -> list[str]:
    """``Ledger.submit`` (the plain ledger path): the accepted record ids, in order."""
    return [a.id for a in ledger.submit(submitter, subs)]


# --- the deployment ----------------------------------------------------------------------------------


@dataclass
class Deployment:
    """One fresh deployment: the service, its ledger, and the bench's own engine for its reads."""

    database: str  # "sqlite" or "postgres"
    service: CreditService
    ledger: Ledger
    url: str
    tmp: Path
    master_key: bytes
    db: Engine  # the bench's reads (counts, sizes, backends), apart from the service's pools

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file (SQLite deployments only)."""
        return self.tmp / "trustledger.db"

    def scalar(self, sql: str, **params: Any) -> Any:
        """One value of a read-only query."""
        with self.db.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def count(self, table: str) -> int:
        """Rows of a table."""
        return int(self.scalar(f"SELECT count(*) FROM {table}") or 0)

    def max_record_seq(self) -> int:
        """The ledger's newest intake position (records accepted so far, gaps aside)."""
        return int(self.scalar("SELECT coalesce(max(seq), 0) FROM record") or 0)

    def backend_pids(self) -> list[int]:
        """PostgreSQL backends connected to this database (none for SQLite)."""
        if self.database != "postgres":
            return []
        with self.db.connect() as conn:
            return [
                int(p)
                for p in conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
                ).scalars()
            ]

    def close_service_pools(self) -> None:
        """Close the service's pooled connections (before the loader alters its tables)."""
        close = getattr(self.ledger, "close", None)
        if close is not None:
            close()
        else:
            self.ledger.store.engine.dispose()


@contextmanager
def deployment(
    database: str, *, workdir: str | None, pg_url: str, keep: bool, secret: str, max_pending: int
) -> Iterator[Deployment]:
    """A fresh deployment as the tests build one; removed afterwards unless ``keep``."""
    base = Path(workdir) if workdir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"tl-bench-credit-{database}-", dir=base))
    try:
        with _database_url(database, pg_url, keep, tmp) as url:
            settings = Settings(
                data_dir=tmp / "data",
                database_url=url,
                chain_backend="none",
                subject_secret=secret,
                max_pending=max_pending,
            )
            init_deployment(settings)
            ledger = open_ledger(settings)
            master_key = os.urandom(16)
            service = CreditService(ledger, master_key=master_key, today=lambda: TODAY)
            service.create_schema()
            service.ensure_rulebook()  # as `trustledger init` does: the shipped default, recorded
            db = create_engine(url)
            dep = Deployment(database, service, ledger, url, tmp, master_key, db)
            try:
                yield dep
            finally:
                dep.close_service_pools()
                db.dispose()
    finally:
        if keep:
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def _database_url(database: str, pg_url: str, keep: bool, tmp: Path) -> Iterator[str]:
    if database == "sqlite":
        yield f"sqlite:///{tmp / 'trustledger.db'}"
        return
    if not keep:
        with pg_scratch_database(pg_url, "credit") as url:
            yield url
        return
    server = make_url(normalise_pg_url(pg_url))
    name = f"tl_bench_credit_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    print(f"kept: PostgreSQL database {name} (drop it with DROP DATABASE {name})")
    yield server.set(database=name).render_as_string(hide_password=False)


def compute_refs(district: District, ledger: Ledger, workers: int = 2) -> float:
    """The keyed subject references (HMAC-SM3), as the service computes them, in ``workers``
    forked processes for large districts; seconds taken."""
    start = time.perf_counter()

    def refs_of(lo: int, hi: int) -> bytes:
        out = bytearray()
        for i in range(lo, hi):
            out += ledger.subject_ref(district.identifier(i), family=SubjectFamily.CREDIT)
        return bytes(out)

    n = district.subjects
    if n < 200_000 or workers <= 1:
        district.refs = bytearray(refs_of(0, n))
    else:
        cuts = [n * k // workers for k in range(workers + 1)]
        parts = run_forked([partial(refs_of, cuts[k], cuts[k + 1]) for k in range(workers)])
        district.refs = bytearray(b"".join(parts))
    return time.perf_counter() - start


def check_columns(dep: Deployment) -> None:
    """Refuse to load if a credit table has a required column the bulk load leaves empty."""
    with dep.db.connect() as conn:
        inspector = inspect(conn)
        for table, written in (("credit_subject", SUBJECT_COLUMNS), ("credit_event", EVENT_COLUMNS)):
            for column in inspector.get_columns(table):
                needed = (
                    not column["nullable"]
                    and column.get("default") is None
                    and not column.get("autoincrement")
                )
                if needed and column["name"] not in written:
                    raise SystemExit(
                        f"bench_credit: {table}.{column['name']} is required but the bulk load does not "
                        f"fill it: add it to the columns in bench/_credit_load.py"
                    )


# --- the bulk load -----------------------------------------------------------------------------------


@dataclass
class LoadFigures:
    """What the bulk load took (seconds unless named otherwise)."""

    mode: str = "ledger"
    refs_s: float = 0.0
    seal_us: float = float("nan")  # per subject: a wrapped key and two sealed fields
    sealed_real: int = 0
    seal_s: float = 0.0
    subjects_s: float = 0.0  # inserting the subjects, sealing excluded
    events_s: float = 0.0  # the events, wall time (the three below are summed over the loaders)
    load_workers: int = 1
    gen_s: float = 0.0  # generating and shuffling the events
    records_s: float = 0.0  # building and submitting the events' ledger records
    records: int = 0
    insert_s: float = 0.0  # inserting the event rows
    index_s: float = 0.0  # rebuilding keys and indexes (and VACUUM ANALYZE on PostgreSQL)
    block_finish: list[tuple[float, int]] = field(default_factory=list)  # (s since start, events)

    @property
    def total_s(self) -> float:
        """The whole load, wall time, references and sealing included."""
        return self.refs_s + self.seal_s + self.subjects_s + self.events_s + self.index_s

    def decile_rates(self) -> tuple[float, float]:
        """Events/s over the first and over the last tenth of the blocks (the load's slowdown)."""
        done = self.block_finish
        if not done:
            return float("nan"), float("nan")
        tenth = max(1, len(done) // 10)
        first = sum(n for _t, n in done[:tenth]) / done[tenth - 1][0]
        before = done[-tenth - 1][0] if len(done) > tenth else 0.0
        last = sum(n for _t, n in done[-tenth:]) / max(1e-9, done[-1][0] - before)
        return first, last


class _TableWriter(Protocol):
    def prepare(self) -> None: ...
    def subjects(self, rows: Iterable[tuple[Any, ...]]) -> None: ...
    def events(self, rows: Sequence[tuple[Any, ...]]) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


class _SqliteWriter:
    """sqlite3 ``executemany`` in one transaction per block; the subject index is rebuilt after."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)

    def prepare(self) -> None:
        self.con.execute("PRAGMA cache_size=-1048576")  # 1 GiB page cache for the load
        self.con.execute("PRAGMA synchronous=OFF")  # a one-off import: made durable by the final sync
        self.con.execute("DROP INDEX IF EXISTS ix_credit_event_subject")

    def subjects(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self.con.execute("BEGIN")
        marks = ", ".join("?" * len(SUBJECT_COLUMNS))
        self.con.executemany(
            f"INSERT INTO credit_subject ({', '.join(SUBJECT_COLUMNS)}) VALUES ({marks})", rows
        )
        self.con.execute("COMMIT")

    def events(self, rows: Sequence[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(EVENT_COLUMNS))
        self.con.execute("BEGIN")
        self.con.executemany(
            f"INSERT INTO credit_event ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})",
            ((r[0], r[1], r[2], r[3].isoformat(), r[4].isoformat() if r[4] else None, *r[5:]) for r in rows),
        )
        self.con.execute("COMMIT")

    def finish(self) -> None:
        self.con.execute("CREATE INDEX ix_credit_event_subject ON credit_event (subject_ref)")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.con.execute("ANALYZE")

    def close(self) -> None:
        self.con.close()


class _PostgresWriter:
    """``COPY``; the primary keys and the subject index are dropped for the load and rebuilt after."""

    def __init__(self, url: str) -> None:
        import psycopg

        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.pg = psycopg.connect(conninfo)
        self.cur = self.pg.cursor()
        self.keys: dict[str, tuple[str, str]] = {}

    def prepare(self) -> None:
        self.cur.execute("SET maintenance_work_mem = '1GB'")
        self.cur.execute("SET synchronous_commit = off")
        for table in ("credit_subject", "credit_event"):
            self.cur.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'p'",
                (table,),
            )
            found = self.cur.fetchone()
            if found is not None:
                self.keys[table] = (str(found[0]), str(found[1]))
                self.cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{found[0]}"')
        self.cur.execute("DROP INDEX IF EXISTS ix_credit_event_subject")
        self.pg.commit()

    def subjects(self, rows: Iterable[tuple[Any, ...]]) -> None:
        with self.cur.copy(f"COPY credit_subject ({', '.join(SUBJECT_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.pg.commit()

    def events(self, rows: Sequence[tuple[Any, ...]]) -> None:
        with self.cur.copy(f"COPY credit_event ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.pg.commit()

    def finish(self) -> None:
        for table, (name, definition) in self.keys.items():
            self.cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        self.cur.execute("CREATE INDEX ix_credit_event_subject ON credit_event (subject_ref)")
        self.cur.execute("SET synchronous_commit = on")
        self.pg.commit()
        self.pg.autocommit = True
        for table in ("credit_subject", "credit_event", "record"):
            self.cur.execute(f"VACUUM (ANALYZE) {table}")

    def close(self) -> None:
        self.pg.close()


def _subject_rows(
    district: District, master_key: bytes, fig: LoadFigures, budget_s: float
) -> Iterator[tuple[Any, ...]]:
    """``credit_subject`` rows, sealed with credit.vault as the service seals them.

    If sealing everyone would take more than ``budget_s``, only the first 10,000 subjects are
    sealed for real; the others store copies of one subject's ciphertexts, of the same size.
    """
    now_us = time.time_ns() // 1000
    real_limit = district.subjects
    template: tuple[bytes, bytes, bytes] | None = None
    for i in range(district.subjects):
        ref = district.ref(i)
        if i < real_limit:
            t0 = time.perf_counter()
            data_key = new_data_key()
            wrapped = wrap_key(master_key, data_key, subject_ref=ref)
            ident = seal_field(data_key, district.identifier(i), subject_ref=ref, field="identifier")
            name = seal_field(data_key, district.name(i), subject_ref=ref, field="name")
            fig.seal_s += time.perf_counter() - t0
            fig.sealed_real += 1
            if fig.sealed_real == min(SEAL_PROBE, district.subjects):
                fig.seal_us = fig.seal_s / fig.sealed_real * 1e6
                if fig.seal_us * 1e-6 * district.subjects > budget_s:
                    real_limit = max(SEAL_PROBE, 10_000)
            if template is None:
                template = (wrapped, ident, name)
        elif template is not None:
            wrapped, ident, name = template
        yield (ref, "organization" if district.orgs[i] else "person", wrapped, ident, name, now_us)


def bulk_load(
    dep: Deployment,
    district: District,
    *,
    mode: str,
    seal_budget: float,
    recorded: set[int],
    workers: int = 1,
) -> LoadFigures:
    """Load the district; ``recorded`` subjects get real event records even in ``rows`` mode.

    The events are loaded by ``workers`` forked processes at once (PostgreSQL only: SQLite has one
    writer), each with its own connections, each taking every ``workers``-th block.
    """
    fig = LoadFigures(mode=mode)
    check_columns(dep)
    dep.close_service_pools()
    writer = _writer(dep)
    try:
        writer.prepare()
        log(f"{dep.database}: loading {district.subjects:,} subjects (sealed with credit.vault)")
        t0 = time.perf_counter()
        writer.subjects(_subject_rows(district, dep.master_key, fig, seal_budget))
        fig.subjects_s = time.perf_counter() - t0 - fig.seal_s
        log(f"{dep.database}: {fig.sealed_real:,} subjects sealed for real, {fig.seal_us:,.0f} us each")
        blocks = event_blocks(district)
        workers = 1 if dep.database == "sqlite" else max(1, min(workers, len(blocks)))
        log(
            f"{dep.database}: loading {district.events:,} events in {len(blocks):,} blocks, "
            f"{workers} process(es)"
        )
        t0 = time.perf_counter()
        if workers == 1:
            parts = [_load_share(dep, district, writer, mode, recorded, blocks, 0, 1, t0)]
        else:
            parts = run_forked(
                [
                    partial(_load_share_forked, dep, district, mode, recorded, blocks, w, workers, t0)
                    for w in range(workers)
                ]
            )
        fig.events_s = time.perf_counter() - t0
        for part in parts:
            fig.gen_s += part.gen_s
            fig.records_s += part.records_s
            fig.insert_s += part.insert_s
            fig.records += part.records
            fig.block_finish.extend(part.block_finish)
        fig.block_finish.sort()
        fig.load_workers = workers
        log(f"{dep.database}: rebuilding keys and indexes")
        t0 = time.perf_counter()
        writer.finish()
        fig.index_s = time.perf_counter() - t0
    finally:
        writer.close()
    return fig


def _writer(dep: Deployment) -> _TableWriter:
    return _SqliteWriter(dep.sqlite_path) if dep.database == "sqlite" else _PostgresWriter(dep.url)


def event_blocks(district: District) -> list[tuple[int, int]]:
    """Subject ranges of about ``BLOCK_EVENTS`` events, cut where the district's generators start."""
    blocks = []
    start = events = 0
    for i, count in enumerate(district.counts):
        events += count
        end = i + 1
        if (events >= BLOCK_EVENTS and end % BLOCK_SUBJECTS == 0) or end == district.subjects:
            blocks.append((start, end))
            start, events = end, 0
    return blocks


def _load_share_forked(
    dep: Deployment,
    district: District,
    mode: str,
    recorded: set[int],
    blocks: Sequence[tuple[int, int]],
    worker: int,
    workers: int,
    started: float,
) -> LoadFigures:
    """In a forked child: forget the parent's pooled connections, then load a share of the blocks."""
    after_fork = getattr(dep.ledger, "after_fork", None)
    if after_fork is not None:
        after_fork()
    else:
        dep.ledger.store.engine.dispose(close=False)
    dep.db.dispose(close=False)
    writer = _writer(dep)
    try:
        return _load_share(dep, district, writer, mode, recorded, blocks, worker, workers, started)
    finally:
        writer.close()


def _load_share(
    dep: Deployment,
    district: District,
    writer: _TableWriter,
    mode: str,
    recorded: set[int],
    blocks: Sequence[tuple[int, int]],
    worker: int,
    workers: int,
    started: float,
) -> LoadFigures:
    """Blocks ``worker``, ``worker + workers``, ...: generate and shuffle, record, insert the rows."""
    fig = LoadFigures(mode=mode)
    now_us = time.time_ns() // 1000
    fake = 0
    mine = blocks[worker::workers]
    done = 0
    every = max(1, len(mine) // 10)
    for number, (start, stop) in enumerate(mine):
        t0 = time.perf_counter()
        block = [(i, ev) for i, events in district.iter_events(start, stop) for ev in events]
        # Shuffled within the block, so a subject's events are spread over the table (and the
        # ledger) as after years of intake.
        random.Random(district.seed * 7 + start).shuffle(block)
        t1 = time.perf_counter()
        fig.gen_s += t1 - t0
        record_of = (
            _record_block(dep, district, block, recorded, fig) if (mode == "ledger" or recorded) else {}
        )
        t2 = time.perf_counter()
        fig.records_s += t2 - t1
        rows = []
        for n, (i, ev) in enumerate(block):
            record_id = record_of.get(n)
            if record_id is None:
                record_id = f"bulk-{worker:02x}{fake:039x}"
                fake += 1
            rows.append(
                (
                    ev.id,
                    district.ref(i),
                    ev.type,
                    ev.occurred_on,
                    ev.ended_on,
                    ev.quantity,
                    ev.source,
                    ev.source_ref,
                    ev.refers_to,
                    record_id,
                    now_us,
                )
            )
        writer.events(rows)
        finished = time.perf_counter()
        fig.insert_s += finished - t2
        fig.block_finish.append((finished - started, len(block)))
        done += len(block)
        if (number + 1) % every == 0 or number + 1 == len(mine):
            log(
                f"{dep.database}:   loader {worker + 1}/{workers}: {done:,} events "
                f"({len(block) / (finished - t0):,.0f} events/s in the last block)"
            )
    return fig


def _record_block(
    dep: Deployment,
    district: District,
    block: Sequence[tuple[int, DistrictEvent]],
    recorded: set[int],
    fig: LoadFigures,
) -> dict[int, str]:
    """Real ``credit_event`` records for the block's events (all, or the ``recorded`` subjects')."""
    positions: list[int] = []
    subs: list[Submission] = []
    out: dict[int, str] = {}
    for n, (i, ev) in enumerate(block):
        if fig.mode != "ledger" and i not in recorded:
            continue
        ref = district.ref(i)
        doc = event_document(ev, "organization" if district.orgs[i] else "person")
        subs.append(document_submission(RecordKind.CREDIT_EVENT, doc, ref, f"credit-event:{ev.id}"))
        positions.append(n)
        if len(subs) >= RECORD_BATCH:
            out.update(zip(positions, submit_records(dep.ledger, SUBMITTER, subs), strict=True))
            positions, subs = [], []
    if subs:
        out.update(zip(positions, submit_records(dep.ledger, SUBMITTER, subs), strict=True))
    fig.records += len(out)
    return out


# --- disk ----------------------------------------------------------------------------------------------


@dataclass
class TableSize:
    """One table: rows and bytes (heap, indexes and TOAST on PostgreSQL; pages via dbstat on SQLite)."""

    rows: int
    bytes: int


@dataclass
class DiskFigures:
    """Disk used by a deployment and its attribution to subjects and events."""

    database_bytes: int = 0
    method: str = ""
    tables: dict[str, TableSize] = field(default_factory=dict)
    record_kinds: dict[str, tuple[int, float]] = field(default_factory=dict)  # kind: (records, mean bytes)
    per_subject: float = float("nan")
    per_event: float = float("nan")
    other_bytes: float = 0.0


def measure_disk(dep: Deployment, subjects: int, events: int) -> DiskFigures:
    """Bytes per table, split into a per-subject and a per-event figure.

    Per event: ``credit_event`` plus the ledger ``record`` table's share of the ``credit_event``
    records. Per subject: every other ``credit_*`` table (subjects, scores, changes, any state the
    service keeps) plus the share of the ``credit_change`` records. The ``record`` table is split
    by kind in proportion to count x mean row size (sampled); the rest (the ledger's other tables,
    baseline and access records) is left in ``other_bytes``.
    """
    disk = DiskFigures()
    if dep.database == "postgres":
        _postgres_sizes(dep, disk)
    else:
        _sqlite_sizes(dep, disk)
    disk.record_kinds = _record_kinds(dep)
    record = disk.tables.get("record", TableSize(0, 0))
    weights = {k: n * size for k, (n, size) in disk.record_kinds.items()}
    total_weight = sum(weights.values()) or 1.0
    record_share = {k: record.bytes * w / total_weight for k, w in weights.items()}
    event_bytes = disk.tables.get("credit_event", TableSize(0, 0)).bytes + record_share.get(
        "credit_event", 0.0
    )
    subject_bytes = sum(
        t.bytes
        for name, t in disk.tables.items()
        if name.startswith("credit_") and name not in ("credit_event", "credit_access", "credit_rulebook")
    ) + record_share.get("credit_change", 0.0)
    disk.per_event = event_bytes / events if events else float("nan")
    disk.per_subject = subject_bytes / subjects if subjects else float("nan")
    disk.other_bytes = disk.database_bytes - event_bytes - subject_bytes
    return disk


def _postgres_sizes(dep: Deployment, disk: DiskFigures) -> None:
    disk.method = "pg_total_relation_size (heap + indexes + TOAST), exact row counts"
    with dep.db.connect() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 2 DESC"
            )
        ).all()
        for name, size in names:
            rows = int(conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar() or 0)
            disk.tables[str(name)] = TableSize(rows, int(size))
        disk.database_bytes = int(
            conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0
        )


def _sqlite_sizes(dep: Deployment, disk: DiskFigures) -> None:
    path = dep.sqlite_path
    disk.database_bytes = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    try:
        with sqlite3.connect(path) as con:
            owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_master"))
            pages: dict[str, int] = {}
            for name, size in con.execute("SELECT name, pgsize FROM dbstat WHERE aggregate = TRUE"):
                table = owner.get(name, name)
                pages[table] = pages.get(table, 0) + int(size)
            for table, size in pages.items():
                if table.startswith("sqlite_"):
                    continue
                rows = int(con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
                disk.tables[table] = TableSize(rows, size)
        disk.method = "dbstat pages per table (indexes included), exact row counts"
    except sqlite3.OperationalError:
        disk.method = "file size only (no dbstat in this SQLite)"
        for table in ("credit_event", "record"):
            with suppress(Exception):
                disk.tables[table] = TableSize(dep.count(table), 0)


def _record_kinds(dep: Deployment, ranges: int = 40, width: int = 500) -> dict[str, tuple[int, float]]:
    """Records per kind (exact) and their mean stored size (sampled in ``ranges`` runs of positions)."""
    top = dep.max_record_seq()
    rng = random.Random(7)
    sizes: dict[str, list[int]] = {}
    size_of = (
        "pg_column_size(r.*)"
        if dep.database == "postgres"
        else (
            "length(id) + length(kind) + length(submitter) + coalesce(length(idempotency_key), 0) "
            "+ coalesce(length(request_hash), 0) + length(leaf) + length(leaf_hash) + 16"
        )
    )
    with dep.db.connect() as conn:
        counts = {
            str(k): int(n) for k, n in conn.execute(text("SELECT kind, count(*) FROM record GROUP BY kind"))
        }
        for _ in range(ranges):
            lo = rng.randrange(max(1, top))
            for kind, size in conn.execute(
                text(f"SELECT kind, {size_of} FROM record r WHERE seq BETWEEN :lo AND :hi"),
                {"lo": lo, "hi": lo + width},
            ):
                sizes.setdefault(str(kind), []).append(int(size))
        out = {}
        for kind, n in counts.items():
            sample = sizes.get(kind)
            if not sample:  # a rare kind the ranges missed: measure a few of its own
                sample = [
                    int(s)
                    for (s,) in conn.execute(
                        text(f"SELECT {size_of} FROM record r WHERE kind = :k LIMIT 200"), {"k": kind}
                    )
                ]
            out[kind] = (n, sum(sample) / len(sample) if sample else 0.0)
    return out
