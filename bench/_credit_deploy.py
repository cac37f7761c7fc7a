"""A fresh deployment for the credit benchmark, and the one place that knows the service's formats.

Everything the bench knows about the credit tables' columns and the event record's document is in
this module (``SUBJECT_COLUMNS``, ``EVENT_COLUMNS``, :func:`event_document`, ``SUBMITTER``): adapt
it here when the service's schema changes. :func:`check_columns` refuses to load when a table
gained a required column the bench does not fill.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from _common import normalise_pg_url, pg_scratch_database
from _credit_district import TODAY, District, DistrictEvent
from _resources import run_forked
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from credit.service import CreditService
from ledger.core.crypto import HashAlgorithm, digest_function
from ledger.core.leaf import RecordKind, canonical_metadata
from ledger.log import Ledger, SubjectFamily, Submission
from ledger.service import init_deployment, open_ledger
from ledger.settings import Settings

SUBMITTER = "credit"  # the ledger submitter of every credit record (as the service submits them)

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


def change_cause(kind: str) -> Any:
    """The ``cause`` argument of ``recompute``/``recompute_all``: a typed ``ChangeCause`` where the
    service has one (issue 10), else the plain document ``{"kind": …}`` it took before."""
    try:
        cause_type = getattr(importlib.import_module("credit.models"), "ChangeCause", None)
    except ImportError:
        cause_type = None
    return {"kind": kind} if cause_type is None else cause_type(kind)


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
