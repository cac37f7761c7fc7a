"""The district's bulk load: a migration-style import, not intake.

The rows go straight into ``credit_subject`` and ``credit_event`` (sqlite3 ``executemany`` /
PostgreSQL ``COPY``, keys and indexes rebuilt afterwards). With ``--load ledger`` (the default)
every event first gets its real ``credit_event`` ledger record through ``Ledger.submit`` (the
document the service would record, the service's submitter and idempotency key), so the ledger
holds what years of intake would have left and a subject's page can be read back from the records.
With ``--load rows`` only the subjects of the page sample get real records; the other events carry
fake record ids (``bulk-…``) and no records, which saves the ledger's share of time and disk.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from _common import log
from _credit_deploy import (
    EVENT_COLUMNS,
    SUBJECT_COLUMNS,
    SUBMITTER,
    Deployment,
    check_columns,
    document_submission,
    event_document,
    submit_records,
)
from _credit_district import BLOCK_SUBJECTS, District, DistrictEvent
from _resources import run_forked
from sqlalchemy.engine import make_url

from credit.vault import new_data_key, seal_field, wrap_key
from ledger.core.leaf import RecordKind
from ledger.log import Submission

BLOCK_EVENTS = 200_000  # events generated, shuffled and loaded together
RECORD_BATCH = 10_000  # records per Ledger.submit call in the load
SEAL_PROBE = 2_000  # subjects sealed before deciding whether all can be, within the budget


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
