"""The rulebooks in force: activated versions, their recorded hashes, and which one applies now.

Not the rulebook's schema (that is :mod:`credit.rulebook`): this module keeps the register of
activated versions (``credit_rulebook`` rows, each with a ``credit_rulebook`` ledger record holding
its SM3 canonical hash). Reading the register never writes: with nothing activated,
:meth:`RulebooksInForce.in_force` refuses with ``no-rulebook``; activating one (and recomputing
every subject under it) is :class:`credit.jobs.RulebookActivation`'s job, done at set-up.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date

from sqlalchemy import select

from credit.errors import Conflict, CreditError, NoRulebookInForce, NotFoundError
from credit.models import RulebookVersion
from credit.rulebook import Rulebook, rulebook_from_data
from credit.store import RULEBOOKS
from credit.unit_of_work import LedgerGateway, PendingWrite
from ledger.core.leaf import RecordKind
from ledger.log import Submission

_logger = logging.getLogger(__name__)


class RulebooksInForce:
    """The register of activated rulebook versions (see the module docstring)."""

    def __init__(self, gateway: LedgerGateway, *, today: Callable[[], date]) -> None:
        self.gateway = gateway
        self.today = today
        self._rulebooks: dict[str, Rulebook] = {}
        self._hashes: dict[str, str] = {}

    def version_in_force(self) -> str | None:
        """The most recently activated version, or None when none is."""
        with self.gateway.reading() as conn:
            row = conn.execute(
                select(RULEBOOKS.c.version).order_by(RULEBOOKS.c.seq.desc()).limit(1)
            ).scalar_one_or_none()
        return None if row is None else str(row)

    def in_force(self) -> Rulebook:
        """The rulebook in force (the most recently activated version); ``no-rulebook`` if none is."""
        version = self.version_in_force()
        if version is None:
            raise NoRulebookInForce("no rulebook is active (trustledger init activates the shipped default)")
        return self.version(version)

    def version(self, version: str) -> Rulebook:
        """An activated rulebook version, checked against the hash recorded at activation."""
        cached = self._rulebooks.get(version)
        if cached is not None:
            return cached
        with self.gateway.reading() as conn:
            row = conn.execute(select(RULEBOOKS).where(RULEBOOKS.c.version == version)).first()
        if row is None:
            raise NotFoundError(f"no activated rulebook version {version!r}", reason="unknown-rulebook")
        rulebook = rulebook_from_data(json.loads(bytes(row.canonical)))
        if rulebook.canonical_hash() != bytes(row.hash):
            raise CreditError(
                f"stored rulebook {version!r} does not match its recorded hash", reason="rulebook-hash"
            )
        self._rulebooks[version] = rulebook
        return rulebook

    def hash_hex(self, rulebook: Rulebook) -> str:
        """The SM3 canonical hash of ``rulebook``, in hex (computed once per version)."""
        cached = self._hashes.get(rulebook.version)
        if cached is None:
            cached = self._hashes[rulebook.version] = rulebook.canonical_hash().hex()
        return cached

    def versions(self) -> list[RulebookVersion]:
        """Every activated version, oldest first: version, hash, activation date and record."""
        with self.gateway.reading() as conn:
            rows = conn.execute(select(RULEBOOKS).order_by(RULEBOOKS.c.seq)).all()
        return [
            RulebookVersion(r.version, bytes(r.hash), r.activated_on, r.activated_by, r.record_id)
            for r in rows
        ]

    def record_activation(self, rulebook: Rulebook, *, by: str) -> None:
        """Record ``rulebook`` as in force from today: its ``credit_rulebook`` record and row.

        The subjects' scores are not touched here (:class:`credit.jobs.RulebookActivation` recomputes
        them); a version activated before is a :class:`~credit.errors.Conflict`.
        """
        with self.gateway.reading() as conn:
            exists = conn.execute(
                select(RULEBOOKS.c.hash).where(RULEBOOKS.c.version == rulebook.version)
            ).first()
        if exists is not None:
            raise Conflict(
                f"rulebook version {rulebook.version!r} was already activated", reason="rulebook-version"
            )
        digest = rulebook.canonical_hash()
        document = {
            "v": 1,
            "version": rulebook.version,
            "effective_from": rulebook.effective_from.isoformat(),
            "title": rulebook.title,
            "by": by,
        }
        row = {
            "version": rulebook.version,
            "hash": digest,
            "canonical": rulebook.canonical_json(),
            "activated_on": self.today(),
            "activated_by": by,
        }
        write = PendingWrite()
        write.record(
            Submission(kind=RecordKind.CREDIT_RULEBOOK, content_hash=digest, metadata=document),
            RULEBOOKS,
            row,
        )
        self.gateway.commit(write)
        self._rulebooks[rulebook.version] = rulebook
        _logger.info("rulebook activated", extra={"version": rulebook.version, "hash": digest.hex()})
