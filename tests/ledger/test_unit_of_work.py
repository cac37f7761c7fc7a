"""The unit of work on every backend: ledger records and a caller's own rows, together or not at all."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, text
from sqlalchemy.engine import Connection

from ledger.core.leaf import RecordKind
from ledger.errors import Conflict, InvalidRequest, NotFound, WriteConflict
from ledger.log import Accepted, Ledger, Submission
from tests.conftest import LedgerFactory

NOTES = Table(
    "uow_test_note",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(64), nullable=False, unique=True),
    Column("text", String(100), nullable=False),
)
"""A table of a package built on the ledger: each note names the record it was written with."""


def submission(i: int, **kwargs: object) -> Submission:
    """A record whose content hash is derived from ``i``."""
    options: dict[str, object] = {"kind": RecordKind.GENERIC, "content_hash": i.to_bytes(32, "big")}
    options.update(kwargs)
    return Submission(**options)  # type: ignore[arg-type]


@pytest.fixture
def notes(ledger: Ledger) -> Iterator[Table]:
    """The caller's table, created through the ledger (and dropped again: PostgreSQL keeps it)."""
    ledger.create_tables([NOTES])
    ledger.create_tables([NOTES])  # idempotent
    yield NOTES
    with ledger.unit_of_work() as unit:
        NOTES.drop(unit.connection, checkfirst=True)


def note_count(ledger: Ledger) -> int:
    with ledger.reading() as conn:
        return int(conn.execute(select(func.count()).select_from(NOTES)).scalar_one())


def write_note(conn: Connection, accepted: Accepted, words: str) -> None:
    conn.execute(NOTES.insert().values(record_id=accepted.id, text=words))


def test_clean_exit_commits_records_and_rows(ledger: Ledger, notes: Table) -> None:
    heard: list[int] = []
    ledger.add_commit_listener(heard.append)
    with ledger.unit_of_work() as unit:
        first = unit.submit("pkg", [submission(1), submission(2)])
        write_note(unit.connection, first[0], "one")
        second = unit.submit("pkg", [submission(3)])  # a unit may submit more than once
        write_note(unit.connection, second[0], "three")
        assert ledger.pending_count() == 0  # nothing is visible before the commit
        assert heard == []
    assert ledger.pending_count() == 3 and note_count(ledger) == 2
    assert heard == [3]  # once, after the commit, with every new record of the unit
    assert {ledger.record(a.id).leaf.content_hash for a in (*first, *second)} == {
        i.to_bytes(32, "big") for i in (1, 2, 3)
    }
    with ledger.reading() as conn:
        stored = dict(conn.execute(select(notes.c.record_id, notes.c.text)).all())
    assert stored == {first[0].id: "one", second[0].id: "three"}
    assert ledger.sequence_all() == 3


def test_exception_rolls_back_records_and_rows(ledger: Ledger, notes: Table) -> None:
    heard: list[int] = []
    ledger.add_commit_listener(heard.append)
    with pytest.raises(RuntimeError, match="caller failed"), ledger.unit_of_work() as unit:
        accepted = unit.submit("pkg", [submission(1)])
        write_note(unit.connection, accepted[0], "lost")
        raise RuntimeError("caller failed")
    assert ledger.pending_count() == 0 and note_count(ledger) == 0
    assert heard == []
    with pytest.raises(NotFound):  # nothing of the unit is stored
        ledger.record(accepted[0].id)


def test_idempotent_duplicate_inside_a_unit(ledger: Ledger, notes: Table) -> None:
    with ledger.unit_of_work() as unit:
        (first,) = unit.submit("pkg", [submission(1, idempotency_key="k")])
        (again,) = unit.submit("pkg", [submission(1, idempotency_key="k")])  # sees its own insert
        write_note(unit.connection, first, "once")
    assert again.duplicate and again.id == first.id and not first.duplicate
    assert ledger.pending_count() == 1
    with ledger.unit_of_work() as unit:  # and a later unit sees the committed one
        (later,) = unit.submit("pkg", [submission(1, idempotency_key="k")])
        assert unit.stored == 0
    assert later.duplicate and later.id == first.id
    with pytest.raises(Conflict) as error, ledger.unit_of_work() as unit:
        unit.submit("pkg", [submission(9)])
        unit.submit("pkg", [submission(2, idempotency_key="k")])  # other content
    assert error.value.reason == "idempotency-conflict"
    assert ledger.pending_count() == 1 and note_count(ledger) == 1  # the whole unit rolled back


def test_a_swallowed_submit_error_never_commits_a_partial_unit(ledger: Ledger, notes: Table) -> None:
    """A bad record 3 of a batch may leave records 0–2 in the transaction: the unit must not commit."""
    bad = [submission(0), submission(1), submission(2), submission(3, content_hash=b"short")]
    with pytest.raises(InvalidRequest) as error, ledger.unit_of_work() as unit:
        accepted = unit.submit("pkg", [submission(10)])
        write_note(unit.connection, accepted[0], "kept?")
        try:
            unit.submit("pkg", bad)
        except InvalidRequest:
            pass  # the caller carries on as if nothing happened
        with pytest.raises(InvalidRequest):
            unit.submit("pkg", [submission(11)])  # the unit is unusable now
    assert error.value.reason == "invalid-hash"
    assert ledger.pending_count() == 0 and note_count(ledger) == 0


def test_a_unique_key_of_the_callers_rows_is_a_write_conflict(ledger: Ledger, notes: Table) -> None:
    with ledger.unit_of_work() as unit:
        (accepted,) = unit.submit("pkg", [submission(1)])
        write_note(unit.connection, accepted, "first")
    with pytest.raises(WriteConflict) as error, ledger.unit_of_work() as unit:
        unit.submit("pkg", [submission(2)])
        write_note(unit.connection, accepted, "names the same record again")
    assert isinstance(error.value, Conflict) and error.value.reason == "conflict"
    assert ledger.pending_count() == 1 and note_count(ledger) == 1


def test_a_unit_without_records_stores_the_callers_rows(ledger: Ledger, notes: Table) -> None:
    heard: list[int] = []
    ledger.add_commit_listener(heard.append)
    with ledger.unit_of_work() as unit:
        unit.connection.execute(NOTES.insert().values(record_id="none", text="rows only"))
        assert unit.submit("pkg", []) == []
    assert note_count(ledger) == 1 and ledger.pending_count() == 0 and heard == []


def test_a_failing_listener_does_not_fail_the_committed_write(ledger: Ledger) -> None:
    def broken(_count: int) -> None:
        raise RuntimeError("listener bug")

    heard: list[int] = []
    ledger.add_commit_listener(broken)
    ledger.add_commit_listener(heard.append)
    ledger.submit("pkg", [submission(1), submission(1, idempotency_key="x"), submission(2)])
    ledger.submit("pkg", [submission(1, idempotency_key="x")])  # a duplicate only: no new record
    assert heard == [3] and ledger.pending_count() == 3
    ledger.remove_commit_listener(heard.append)
    ledger.submit("pkg", [submission(5)])
    assert heard == [3]


def test_concurrent_unit_with_the_same_key_never_stores_twice(make_ledger: LedgerFactory) -> None:
    """A second unit using a key that an open unit inserted: once the first commits, the second
    gets the duplicate (SQLite serialises writers) or a WriteConflict to retry (PostgreSQL)."""
    first_ledger, second_ledger = make_ledger(), make_ledger()
    outcome: list[object] = []

    def second() -> None:
        try:
            with second_ledger.unit_of_work() as unit:
                outcome.append(unit.submit("pkg", [submission(1, idempotency_key="k")])[0])
        except WriteConflict as e:
            outcome.append(e)

    with first_ledger.unit_of_work() as unit:
        (stored,) = unit.submit("pkg", [submission(1, idempotency_key="k")])
        racer = threading.Thread(target=second)
        racer.start()
        _wait_until_blocked(first_ledger)
    racer.join(60)
    assert not racer.is_alive()
    if first_ledger.dialect == "postgresql":
        assert len(outcome) == 1 and isinstance(outcome[0], WriteConflict)
    else:
        assert len(outcome) == 1 and isinstance(outcome[0], Accepted)
        assert outcome[0].duplicate and outcome[0].id == stored.id
    assert first_ledger.pending_count() == 1
    retried = second_ledger.submit("pkg", [submission(1, idempotency_key="k")])[0]
    assert retried.duplicate and retried.id == stored.id


def _wait_until_blocked(ledger: Ledger) -> None:
    """Until another transaction waits on a lock (PostgreSQL); SQLite's writer waits in BEGIN
    IMMEDIATE, which it cannot leave before the first unit commits, so a short pause suffices."""
    if ledger.dialect != "postgresql":
        time.sleep(0.2)
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with ledger.reading() as conn:
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if conn.execute(waiting).scalar_one():
                return
        time.sleep(0.02)
    raise AssertionError("the second unit never waited for the first")
