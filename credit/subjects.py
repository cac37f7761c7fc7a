"""Subjects: keyed references, sealed personal data, and crypto-shredding.

A subject (a person or an organization) is known to the ledger only by its keyed reference
(HMAC-SM3 of the identifier, :meth:`ledger.log.Ledger.subject_ref`). Its identifier and name live
only in its ``credit_subject`` row, SM4-sealed under a per-subject data key that is itself wrapped
under the deployment's master key; erasing the data key (crypto-shredding, PIPL arts. 46-47)
leaves every receipt and proof valid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from credit.errors import UnknownSubject
from credit.identifiers import (
    CreditCode,
    ResidentId,
    SubjectKind,
    parse_credit_code,
    parse_identifier,
    parse_resident_id,
)
from credit.models import PersonalData, SubjectReference
from credit.store import SUBJECTS
from credit.unit_of_work import LedgerGateway, PendingWrite, credit_record
from credit.vault import new_data_key, open_field, seal_field, unwrap_key, wrap_key
from ledger.core.leaf import RecordKind
from ledger.log import SubjectFamily

ERASED_STEP = "personal-data-erased"  # the workflow step that records an erasure


class Subjects:
    """Subject references and their sealed personal data (see the module docstring)."""

    def __init__(self, gateway: LedgerGateway, *, master_key: bytes, today: Callable[[], date]) -> None:
        self.gateway = gateway
        self._master_key = master_key
        self.today = today

    def reference(self, identifier: str, kind: SubjectKind | None = None) -> SubjectReference:
        """Validate an identifier; its keyed reference, kind and canonical form.

        ``kind`` settles the rare all-digit strings that are both a valid resident ID and a valid
        credit code (about 1 in 1,000); without it those are refused as ambiguous.
        """
        parsed: ResidentId | CreditCode
        if kind is SubjectKind.PERSON:
            parsed = parse_resident_id(identifier, today=self.today())
        elif kind is SubjectKind.ORGANIZATION:
            parsed = parse_credit_code(identifier)
        else:
            parsed = parse_identifier(identifier, today=self.today())
        number = parsed.number if isinstance(parsed, ResidentId) else parsed.code
        ref = self.gateway.ledger.subject_ref(number, family=SubjectFamily.CREDIT)
        return SubjectReference(ref, parsed.kind, number)

    def new_row(self, ref: bytes, kind: SubjectKind, identifier: str, name: str | None) -> dict[str, object]:
        """The ``credit_subject`` row of a new subject: identifier and name sealed under a new key."""
        data_key = new_data_key()
        return {
            "ref": ref,
            "kind": kind.value,
            "wrapped_key": wrap_key(self._master_key, data_key, subject_ref=ref),
            "sealed_identifier": seal_field(data_key, identifier, subject_ref=ref, field="identifier"),
            "sealed_name": seal_field(data_key, name, subject_ref=ref, field="name") if name else None,
            "created_at_us": time.time_ns() // 1000,
        }

    def kind_of(self, ref: bytes) -> SubjectKind:
        """A known subject's kind (:class:`UnknownSubject` otherwise)."""
        with self.gateway.reading() as conn:
            kind = conn.execute(select(SUBJECTS.c.kind).where(SUBJECTS.c.ref == ref)).scalar_one_or_none()
        if kind is None:
            raise UnknownSubject("no credit data for this subject", reason="unknown-subject")
        return SubjectKind(kind)

    def personal_data(self, ref: bytes) -> PersonalData:
        """The subject's identifier and name, decrypted (for the subject and authorised officials)."""
        with self.gateway.reading() as conn:
            row = conn.execute(select(SUBJECTS).where(SUBJECTS.c.ref == ref)).first()
        if row is None or row.wrapped_key is None:
            raise UnknownSubject("no personal data for this subject (unknown or erased)", reason="erased")
        key = unwrap_key(self._master_key, bytes(row.wrapped_key), subject_ref=ref)
        name = (
            open_field(key, bytes(row.sealed_name), subject_ref=ref, field="name")
            if row.sealed_name
            else None
        )
        identifier = open_field(key, bytes(row.sealed_identifier), subject_ref=ref, field="identifier")
        return PersonalData(identifier, name)

    def erase(self, ref: bytes, *, by: str) -> None:
        """Crypto-shred: delete the subject's data key and ciphertexts (PIPL arts. 46-47).

        Leaves hold only the keyed reference, so every receipt and proof stays valid; the erasure
        itself is a ``credit_workflow`` record.
        """
        self.kind_of(ref)
        write = PendingWrite()
        write.record(credit_record(RecordKind.CREDIT_WORKFLOW, {"v": 1, "step": ERASED_STEP, "by": by}, ref))

        def erase(conn: Connection) -> None:
            conn.execute(
                update(SUBJECTS)
                .where(SUBJECTS.c.ref == ref)
                .values(
                    wrapped_key=None,
                    sealed_identifier=None,
                    sealed_name=None,
                    erased_at_us=time.time_ns() // 1000,
                )
            )

        self.gateway.commit(write, extra=erase)
