"""Disk: what a run will need (checked before it starts) and what a deployment uses, per table,
per subject and per event."""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from _common import normalise_pg_url, print_table
from _credit_deploy import Deployment
from _resources import GIB, free_bytes, gib, same_filesystem
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

# Disk a run needs, bytes per subject and per event with everything a run writes (subject rows, first
# scores and their change rows and records, event rows, event records with --load ledger, indexes),
# measured by this bench at 20,000 / 200,000 and 86,000 / 200,000 (README), plus 25%, plus room for
# PostgreSQL's WAL and the index rebuilds' sort files.
DISK_PER_SUBJECT = {"postgres": 3_000, "sqlite": 2_700}
DISK_PER_EVENT = {
    ("postgres", "ledger"): 1_530,
    ("postgres", "rows"): 420,
    ("sqlite", "ledger"): 1_420,
    ("sqlite", "rows"): 390,
}
DISK_FIXED = 2 * GIB  # WAL (max_wal_size), sort files of the index rebuild beyond the per-event share
DISK_HEADROOM = 0.95  # refuse above this share of the free space


def disk_needed(database: str, load: str, subjects: int, events: int) -> int:
    """Estimated bytes a run of this size leaves on disk at its largest."""
    return int(DISK_PER_SUBJECT[database] * subjects + DISK_PER_EVENT[(database, load)] * events + DISK_FIXED)


def pg_data_directory(url: str) -> Path | None:
    """The server's data directory when it is on this machine and readable to us, else None."""
    engine = create_engine(make_url(normalise_pg_url(url)).set(database="postgres"))
    try:
        with engine.connect() as conn:
            path = Path(str(conn.execute(text("SHOW data_directory")).scalar()))
    except Exception:  # noqa: BLE001 - not allowed to read it: no check possible
        return None
    finally:
        engine.dispose()
    host = make_url(normalise_pg_url(url)).host or "localhost"
    return path if host in ("127.0.0.1", "localhost", "::1") else None


def check_disk(args: argparse.Namespace, databases: list[str], sizes: list[tuple[int, int]]) -> bool:
    """Print the estimate for each size and database; False if the largest one cannot fit."""
    places: dict[str, Path | None] = {"sqlite": Path(args.workdir or tempfile.gettempdir())}
    if "postgres" in databases:
        places["postgres"] = pg_data_directory(args.pg_url)
    rows, ok = [], True
    for subjects, events in sizes:
        needs = {db: disk_needed(db, args.load, subjects, events) for db in databases}
        for db in databases:
            place = places[db]
            if place is None:
                rows.append(
                    [
                        f"{subjects:,} / {events:,}",
                        db,
                        gib(needs[db]),
                        "unknown (remote server)",
                        "not checked",
                    ]
                )
                continue
            # Runs are sequential and each removes its data, unless --keep leaves everything behind.
            together = [d for d in databases if places[d] is not None and same_filesystem(place, places[d])]  # type: ignore[arg-type]
            if args.keep:
                need = sum(disk_needed(d, args.load, s, e) for s, e in sizes for d in together)
            else:
                need = needs[db]
            free = free_bytes(place)
            fits = need <= free * DISK_HEADROOM
            ok = ok and fits
            rows.append(
                [
                    f"{subjects:,} / {events:,}",
                    db,
                    gib(need),
                    f"{gib(free)} at {place}",
                    "fits" if fits else "DOES NOT FIT",
                ]
            )
    print_table(
        f"disk estimate (--load {args.load}; bytes per subject and per event from the smoke runs)",
        ["size", "database", "needs", "free", ""],
        rows,
    )
    if not ok and not args.ignore_disk_check:
        biggest = sizes[-1]
        db = "postgres" if "postgres" in databases else databases[0]
        place = places[db] or Path(tempfile.gettempdir())
        usable = free_bytes(place) * DISK_HEADROOM - DISK_FIXED
        per_unit = DISK_PER_SUBJECT[db] * biggest[0] + DISK_PER_EVENT[(db, args.load)] * biggest[1]
        fraction = max(0.0, usable / per_unit)
        print(
            f"bench_credit: REFUSED: the disk cannot hold this run. At the ratio of "
            f"{biggest[0]:,} / {biggest[1]:,}, about {fraction:.0%} of it fits on {db} "
            f"({int(biggest[0] * fraction):,} subjects / {int(biggest[1] * fraction):,} events). Run smaller "
            f"sizes with --sizes and let the growth table project, use --load rows (no event records), "
            f"free some disk, or pass --ignore-disk-check if you know better."
        )
    return ok or args.ignore_disk_check


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
