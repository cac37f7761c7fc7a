"""The access log: who read a subject's credit data, for what purpose — recorded, and shown to the
subject.

Every read names a purpose from the catalogue (:mod:`credit.access`). A read is recorded as an
``access`` ledger record with its ``credit_access`` row, once per reader, role, subject, purpose
and kind of data per window; repeat reads in the window count up that row instead of growing the
log. Record a read last, once it succeeded: a failed read leaves nothing behind.
"""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from credit.access import MAX_NOTE, AccessPolicy, check_text
from credit.models import AccessEntry
from credit.store import ACCESSES
from credit.unit_of_work import LedgerGateway, PendingWrite, credit_record
from ledger.core.leaf import RecordKind


class AccessLog:
    """Recording and listing reads of subjects' data (see the module docstring)."""

    def __init__(self, gateway: LedgerGateway, policy: AccessPolicy) -> None:
        self.gateway = gateway
        self.policy = policy

    def check_purpose(self, purpose: str, role: str, note: str | None = None) -> tuple[str, str | None]:
        """A reader's purpose code from the catalogue (:class:`~credit.errors.UnknownPurpose`
        otherwise) and its note, checked as bounded text; call before reading."""
        self.policy.purpose(purpose, role)
        return purpose, check_text(note, name="purpose note", max_length=MAX_NOTE) if note else None

    def record(
        self, ref: bytes, *, accessor: str, role: str, purpose: str, what: str, note: str | None = None
    ) -> None:
        """Record that ``accessor`` read ``what`` of the subject's data for ``purpose``: an
        ``access`` ledger record, or within its window a repeat counted on it."""
        purpose, note = self.check_purpose(purpose, role, note)
        now = time.time_ns() // 1000
        window = self.policy.window_s(role)
        who = {"accessor": accessor, "role": role, "purpose": purpose, "what": what}
        if window > 0:
            with self.gateway.transaction() as conn:
                if _count_repeat(conn, ref, who, window_s=window, now_us=now):
                    return
        document: dict[str, object] = {"v": 1, **who, "window_s": window} | ({"note": note} if note else {})
        row = {"subject_ref": ref, **who, "note": note, "window_s": window, "at_us": now, "last_at_us": now}
        write = PendingWrite()
        write.record(credit_record(RecordKind.ACCESS, document, ref), ACCESSES, row)
        self.gateway.commit(write)

    def entries(self, ref: bytes, *, limit: int = 200) -> list[AccessEntry]:
        """Who read the subject's data, newest first; ``count`` reads in the window from ``at_us``."""
        with self.gateway.reading() as conn:
            rows = conn.execute(
                select(ACCESSES)
                .where(ACCESSES.c.subject_ref == ref)
                .order_by(ACCESSES.c.seq.desc())
                .limit(limit)
            ).all()
        return [
            AccessEntry(
                accessor=r.accessor,
                role=r.role,
                purpose=r.purpose,
                note=r.note,
                what=r.what,
                at_us=r.at_us,
                count=r._mapping["count"],  # (Row.count is the tuple method)
                window_s=r.window_s,
                record_id=r.record_id,
                last_at_us=r.last_at_us or r.at_us,
            )
            for r in rows
        ]


def _count_repeat(conn: Connection, ref: bytes, who: dict[str, str], *, window_s: int, now_us: int) -> bool:
    """Count a read against the access recorded for the same reader, role, subject, purpose and
    kind of data within the window; False when there is none (the caller records a new access)."""
    seq = conn.execute(
        select(ACCESSES.c.seq)
        .where(
            ACCESSES.c.subject_ref == ref,
            ACCESSES.c.accessor == who["accessor"],
            ACCESSES.c.role == who["role"],
            ACCESSES.c.purpose == who["purpose"],
            ACCESSES.c.what == who["what"],
            ACCESSES.c.at_us > now_us - window_s * 1_000_000,
        )
        .order_by(ACCESSES.c.seq.desc())
        .limit(1)
    ).scalar()
    if seq is None:
        return False
    conn.execute(
        update(ACCESSES).where(ACCESSES.c.seq == seq).values(count=ACCESSES.c.count + 1, last_at_us=now_us)
    )
    return True
