"""The credit tables (SQLModel), in the ledger's database.

Each table mirrors ledger records: a row is written in the same transaction as the record it
refers to (one ``Ledger.unit_of_work``, :mod:`credit.unit_of_work`), so a row never exists
without its record and a record never without its row. Raw identifiers and names exist only
here, SM4-sealed under a per-subject key (crypto-shredding deletes the key). Nothing is ever
deleted except those keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    any_,
    bindparam,
    inspect,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine
from sqlmodel import Field, SQLModel

from credit.engine import Effect, EffectKind, Event, RedListAction, RedListDecision
from credit.models import CaseKind, CaseState

_BIGINT = BigInteger().with_variant(Integer(), "sqlite")


class SubjectRow(SQLModel, table=True):
    """A subject: its keyed reference, kind, and its SM4-sealed identifier and name."""

    __tablename__ = "credit_subject"
    ref: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    sealed_identifier: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    sealed_name: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    erased_at_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class RulebookRow(SQLModel, table=True):
    """An activated rulebook version: its canonical JSON, hash and ledger record."""

    __tablename__ = "credit_rulebook"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    version: str = Field(sa_column=Column(String(40), nullable=False, unique=True))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    canonical: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    activated_on: date = Field(sa_column=Column(Date, nullable=False))
    activated_by: str = Field(sa_column=Column(String(128), nullable=False))


class EventRow(SQLModel, table=True):
    """A credit event (its ``credit_event`` record holds the same facts, minus personal data)."""

    __tablename__ = "credit_event"
    id: str = Field(sa_column=Column(String(40), primary_key=True))
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    occurred_on: date = Field(sa_column=Column(Date, nullable=False))
    ended_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    quantity: int = Field(default=1, sa_column=Column(Integer, nullable=False))
    source: str = Field(sa_column=Column(String(128), nullable=False))
    source_ref: str = Field(sa_column=Column(String(200), nullable=False))
    refers_to: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    evidence_record_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    record_id: str = Field(sa_column=Column(String(64), nullable=False))
    recorded_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))

    __table_args__ = (Index("ix_credit_event_subject", "subject_ref"),)


class EffectRow(SQLModel, table=True):
    """A workflow outcome on an event (repaired, withdrawn), effective from a date."""

    __tablename__ = "credit_effect"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    event_id: str = Field(sa_column=Column(String(40), nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    effective_on: date = Field(sa_column=Column(Date, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))


class ScoreRow(SQLModel, table=True):
    """A subject's current assessment (what replay compares against)."""

    __tablename__ = "credit_score"
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    score: int = Field(sa_column=Column(Integer, nullable=False))
    level: str = Field(sa_column=Column(String(8), nullable=False))
    black: list[str] = Field(sa_column=Column(JSON, nullable=False))
    red: bool = Field(sa_column=Column(Integer, nullable=False))
    red_eligible: bool = Field(sa_column=Column(Integer, nullable=False))
    rulebook_version: str = Field(sa_column=Column(String(40), nullable=False))
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    next_change_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True, index=True))
    version: int = Field(sa_column=Column(Integer, nullable=False))  # optimistic concurrency
    change_record_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    # The subject's incremental scoring state (credit.subject_state), derived from its events under
    # ``rulebook_version``: a cache that spares re-reading the history; replay never uses it.
    state: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class ChangeRow(SQLModel, table=True):
    """A score change (its ``credit_change`` record holds the same, with reasons)."""

    __tablename__ = "credit_change"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    document: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class CaseRow(SQLModel, table=True):
    """An objection, repair application or list decision, with its current state and deadline."""

    __tablename__ = "credit_case"
    id: str = Field(sa_column=Column(String(40), primary_key=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))  # objection | repair | list
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    event_id: str | None = Field(default=None, sa_column=Column(String(40), nullable=True))
    state: str = Field(sa_column=Column(String(24), nullable=False, index=True))
    opened_on: date = Field(sa_column=Column(Date, nullable=False))
    due_on: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    detail: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))


class CaseStepRow(SQLModel, table=True):
    """One transition of a case, with its ``credit_workflow`` record."""

    __tablename__ = "credit_case_step"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    case_id: str = Field(sa_column=Column(String(40), nullable=False, index=True))
    step: str = Field(sa_column=Column(String(32), nullable=False))
    actor: str = Field(sa_column=Column(String(128), nullable=False))
    on: date = Field(sa_column=Column(Date, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    detail: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RedDecisionRow(SQLModel, table=True):
    """A confirmed red-list entry or exit."""

    __tablename__ = "credit_red_decision"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    action: str = Field(sa_column=Column(String(8), nullable=False))
    effective_on: date = Field(sa_column=Column(Date, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))


class ListSnapshotRow(SQLModel, table=True):
    """A published list snapshot: its members' references and Merkle root."""

    __tablename__ = "credit_list_snapshot"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    list_name: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    as_of: date = Field(sa_column=Column(Date, nullable=False))
    size: int = Field(sa_column=Column(Integer, nullable=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    members: list[str] = Field(sa_column=Column(JSON, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))


class AccessRow(SQLModel, table=True):
    """Someone read a subject's credit data (the subject can see these).

    One row and one ``access`` record per reader, role, subject, purpose and kind of data per time
    window (:mod:`credit.access`); repeat reads in the window only count up ``count`` and move
    ``last_at_us``, so reading cannot grow the log without bound.
    """

    __tablename__ = "credit_access"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    subject_ref: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))
    accessor: str = Field(sa_column=Column(String(128), nullable=False))
    role: str = Field(sa_column=Column(String(32), nullable=False))
    purpose: str = Field(sa_column=Column(String(200), nullable=False))
    what: str = Field(sa_column=Column(String(64), nullable=False))
    at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    record_id: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    note: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    window_s: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    count: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    last_at_us: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


def _t(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


SUBJECTS = _t(SubjectRow)
RULEBOOKS = _t(RulebookRow)
EVENTS = _t(EventRow)
EFFECTS = _t(EffectRow)
SCORES = _t(ScoreRow)
CHANGES = _t(ChangeRow)
CASES = _t(CaseRow)
CASE_STEPS = _t(CaseStepRow)
RED_DECISIONS = _t(RedDecisionRow)
SNAPSHOTS = _t(ListSnapshotRow)
ACCESSES = _t(AccessRow)
TABLES = [
    SUBJECTS,
    RULEBOOKS,
    EVENTS,
    EFFECTS,
    SCORES,
    CHANGES,
    CASES,
    CASE_STEPS,
    RED_DECISIONS,
    SNAPSHOTS,
    ACCESSES,
]


# Columns added after tables were first created: (table, column) -> DDL type (text, or a type
# compiled for the database's dialect).
_ADDED_COLUMNS: dict[tuple[str, str], str | TypeEngine[Any]] = {
    ("credit_access", "note"): "VARCHAR(200)",
    ("credit_access", "window_s"): "INTEGER",
    ("credit_access", "count"): "INTEGER NOT NULL DEFAULT 1",
    ("credit_access", "last_at_us"): "BIGINT",
    ("credit_score", "state"): LargeBinary(),
}


def add_missing_columns(conn: Connection) -> None:
    """Bring credit tables created by an older version up to date: add the columns added since
    (before :meth:`~ledger.log.Ledger.create_tables` adds the indexes that may name them)."""
    tables = inspect(conn)
    present = {
        (table, c["name"])
        for table in {t for t, _c in _ADDED_COLUMNS}
        if tables.has_table(table)
        for c in tables.get_columns(table)
    }
    for (table, column), type_ in _ADDED_COLUMNS.items():
        ddl = type_ if isinstance(type_, str) else type_.compile(dialect=conn.dialect)
        if tables.has_table(table) and (table, column) not in present:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")


def event_of(row: Row[Any]) -> Event:
    """The engine's view of an event row."""
    m = row._mapping
    return Event(
        id=m["id"],
        type=m["type"],
        occurred_on=m["occurred_on"],
        source=m["source"],
        quantity=m["quantity"],
        ended_on=m["ended_on"],
        refers_to=m["refers_to"],
    )


class SubjectInputs:
    """Everything the engine needs for a set of subjects, read in a few queries."""

    def __init__(self) -> None:
        self.events: dict[bytes, list[Event]] = {}
        self.effects: dict[bytes, list[Effect]] = {}
        self.red: dict[bytes, list[RedListDecision]] = {}
        self.pending_red_exit: set[bytes] = set()

    @classmethod
    def load(cls, conn: Connection, refs: Sequence[bytes], *, contiguous: bool = False) -> SubjectInputs:
        """Read the events, effects and red-list decisions of ``refs``.

        ``contiguous``: ``refs`` are every subject between the first and the last (a sorted chunk
        of :func:`iter_subject_refs`), so one range query replaces the IN lists.
        """
        inputs = cls()
        events = inputs.events
        for where in _subject_filters(conn, refs, contiguous):
            # Straight from the driver into Event: SQLAlchemy's per-row processing cost as much as
            # the engine itself in recomputes.
            query = select(EVENTS.c.subject_ref, *_EVENT_COLUMNS).where(where(EVENTS))
            for ref, event_id, type_, occurred, source, quantity, ended, refers_to in _driver_rows(
                conn, query
            ):
                key = bytes(ref)
                found = events.get(key)
                if found is None:
                    events[key] = found = []
                found.append(
                    Event(event_id, type_, _as_date(occurred), source, quantity, _as_date(ended), refers_to)
                )
            for ref, event_id, kind, effective_on in conn.execute(
                select(
                    EFFECTS.c.subject_ref, EFFECTS.c.event_id, EFFECTS.c.kind, EFFECTS.c.effective_on
                ).where(where(EFFECTS))
            ):
                effect = Effect(event_id, EffectKind(kind), effective_on)
                inputs.effects.setdefault(bytes(ref), []).append(effect)
            red = select(RED_DECISIONS.c.subject_ref, RED_DECISIONS.c.action, RED_DECISIONS.c.effective_on)
            for ref, action, effective_on in conn.execute(
                red.where(where(RED_DECISIONS)).order_by(RED_DECISIONS.c.seq)
            ):
                inputs.red.setdefault(bytes(ref), []).append(
                    RedListDecision(RedListAction(action), effective_on)
                )
            pending = select(CASES.c.subject_ref, CASES.c.detail).where(
                where(CASES), CASES.c.kind == CaseKind.LIST.value, CASES.c.state == CaseState.PROPOSED.value
            )
            for ref, detail in conn.execute(pending):
                if detail.get("action") == "exit":
                    inputs.pending_red_exit.add(bytes(ref))
        return inputs


_EVENT_COLUMNS = (
    EVENTS.c.id,
    EVENTS.c.type,
    EVENTS.c.occurred_on,
    EVENTS.c.source,
    EVENTS.c.quantity,
    EVENTS.c.ended_on,
    EVENTS.c.refers_to,
)  # Event's field order


def _driver_rows(conn: Connection, query: Select[Any]) -> list[tuple[Any, ...]]:
    """Run a SELECT on the DB-API cursor and return plain tuples (no SQLAlchemy type processing:
    dates come back as ISO text from SQLite, as dates from PostgreSQL; see :func:`_as_date`)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    if compiled.positiontup is not None:  # SQLite: qmark parameters, in order
        cursor.execute(compiled.string, [compiled.params[name] for name in compiled.positiontup])
    else:
        cursor.execute(compiled.string, compiled.params)
    rows: list[tuple[Any, ...]] = cursor.fetchall()
    cursor.close()
    return rows


def _as_date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _subject_filters(
    conn: Connection, refs: Sequence[bytes], contiguous: bool
) -> Iterator[Callable[[Table], ColumnElement[bool]]]:
    """WHERE clauses selecting ``refs`` in a table's ``subject_ref``, a few at a time."""
    if not refs:
        return
    if contiguous:
        yield lambda t: t.c.subject_ref.between(refs[0], refs[-1])
        return
    if conn.dialect.name == "postgresql":
        # One array parameter: psycopg re-parses statements with more than 50 parameters.
        array = bindparam("refs", list(refs), type_=ARRAY(LargeBinary))
        yield lambda t: t.c.subject_ref == any_(array)
        return
    for start in range(0, len(refs), 500):
        chunk = list(refs[start : start + 500])
        yield lambda t, chunk=chunk: t.c.subject_ref.in_(chunk)  # type: ignore[misc]


def pending_red_exits(conn: Connection, refs: Sequence[bytes]) -> set[bytes]:
    """Which of ``refs`` have a red-list exit proposed and not yet decided."""
    pending: set[bytes] = set()
    for where in _subject_filters(conn, refs, contiguous=False):
        query = select(CASES.c.subject_ref, CASES.c.detail).where(
            where(CASES), CASES.c.kind == "list", CASES.c.state == "proposed"
        )
        pending |= {bytes(ref) for ref, detail in conn.execute(query) if detail.get("action") == "exit"}
    return pending


def scores(conn: Connection, refs: Sequence[bytes], *, contiguous: bool = False) -> dict[bytes, Row[Any]]:
    """The score rows of ``refs`` (``contiguous`` as for :meth:`SubjectInputs.load`)."""
    found: dict[bytes, Row[Any]] = {}
    for where in _subject_filters(conn, refs, contiguous):
        for row in conn.execute(select(SCORES).where(where(SCORES))):
            found[bytes(row.subject_ref)] = row
    return found


def iter_subject_refs(conn: Connection, chunk: int = 5000) -> Iterator[list[bytes]]:
    """All subject references, in chunks."""
    after = b""
    while True:
        rows = conn.execute(
            select(SUBJECTS.c.ref).where(SUBJECTS.c.ref > after).order_by(SUBJECTS.c.ref).limit(chunk)
        ).all()
        if not rows:
            return
        batch = [bytes(r[0]) for r in rows]
        yield batch
        after = batch[-1]


def keyset_pages(conn: Connection, query: Any, key: Any, size: int) -> Iterator[list[Row[Any]]]:
    """The rows of ``query`` in ``key`` order, ``size`` at a time (keyset pagination)."""
    after: Any = None
    while True:
        page = query.order_by(key).limit(size)
        if after is not None:
            page = page.where(key > after)
        rows = conn.execute(page).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1]._mapping[key.name]


def subject_ranges(
    conn: Connection, refs: Sequence[bytes] | None
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Ranges of subject references covering every reference: ``(low, high]``, the first open below
    and the last open above, so that rows of a subject without a subject row are still visited.
    With ``refs``, exactly those references (``low == high``)."""
    if refs is not None:
        for ref in refs:
            yield ref, ref
        return
    low: bytes | None = None
    while True:
        query = select(SUBJECTS.c.ref).order_by(SUBJECTS.c.ref).limit(1000)
        if low is not None:
            query = query.where(SUBJECTS.c.ref > low)
        batch = [bytes(r[0]) for r in conn.execute(query)]
        if len(batch) < 1000:
            yield (low if low is not None else None), None
            return
        yield (low if low is not None else None), batch[-1]
        low = batch[-1]
