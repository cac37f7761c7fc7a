"""The ledger's tables (SQLModel): the log state, records, tiles, checkpoints, clients, seal keys,
anchors and witness state.

Only :mod:`ledger.store` reads and writes them; everything else goes through
:class:`~ledger.log.Ledger`. Packages built on the ledger keep their own tables in the same database
(see :meth:`~ledger.log.Ledger.create_tables`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text, text
from sqlmodel import Field, SQLModel

_BIGINT = BigInteger().with_variant(Integer(), "sqlite")


class LogState(SQLModel, table=True):
    """The single row describing the log: its parameters and current tree head."""

    __tablename__ = "log_state"
    id: int = Field(default=1, primary_key=True)
    origin: str
    hash_alg: str
    size: int = Field(default=0, sa_type=BigInteger)
    root_hash: bytes = Field(sa_type=LargeBinary)


class RecordRow(SQLModel, table=True):
    """A submitted record. ``log_index`` is NULL until the sequencer integrates it."""

    __tablename__ = "record"
    seq: int | None = Field(default=None, sa_column=Column(_BIGINT, primary_key=True, autoincrement=True))
    id: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    log_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    submitter: str = Field(sa_column=Column(String(128), nullable=False))
    idempotency_key: str | None = Field(default=None, sa_column=Column(String(200), nullable=True))
    request_hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    received_at_us: int = Field(sa_column=Column(BigInteger, nullable=False))
    leaf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))

    # Partial unique indexes: most rows have no idempotency key, and no row has a log index when
    # it is inserted, so indexing their NULLs would only slow intake.
    __table_args__ = (
        Index(
            "uq_record_idempotency",
            "submitter",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index(
            "uq_record_log_index",
            "log_index",
            unique=True,
            sqlite_where=text("log_index IS NOT NULL"),
            postgresql_where=text("log_index IS NOT NULL"),
        ),
        Index(
            "ix_record_pending",
            "seq",
            sqlite_where=text("log_index IS NULL"),
            postgresql_where=text("log_index IS NULL"),
        ),
    )


class TileRow(SQLModel, table=True):
    """A tlog-tiles style block of up to 256 node hashes at one tree level."""

    __tablename__ = "tile"
    level: int = Field(primary_key=True)
    idx: int = Field(primary_key=True, sa_type=BigInteger)
    width: int
    hashes: bytes = Field(sa_type=LargeBinary)


class CheckpointRow(SQLModel, table=True):
    """An issued, signed checkpoint."""

    __tablename__ = "checkpoint"
    seq: int | None = Field(default=None, primary_key=True)
    tree_size: int = Field(sa_type=BigInteger, unique=True)
    root_hash: bytes = Field(sa_type=LargeBinary)
    timestamp_us: int = Field(sa_type=BigInteger)
    note: str = Field(sa_type=Text)


class ApiClientRow(SQLModel, table=True):
    """A calling system with a role; only the SM3 hash of its API key is stored."""

    __tablename__ = "api_client"
    name: str = Field(primary_key=True, max_length=128)
    role: str = Field(max_length=32)
    key_hash: bytes = Field(sa_type=LargeBinary, unique=True)
    created_at_us: int = Field(sa_type=BigInteger)
    disabled: bool = False


class SealKeyRow(SQLModel, table=True):
    """An SM2 public key a calling system seals its records with."""

    __tablename__ = "seal_key"
    key_id: str = Field(primary_key=True, max_length=64)
    system: str = Field(max_length=128, index=True)
    public_key: str = Field(max_length=128)
    created_at_us: int = Field(sa_type=BigInteger)
    revoked_at_us: int | None = Field(default=None, sa_type=BigInteger)


class AnchorRow(SQLModel, table=True):
    """One checkpoint's way onto the chain: a persisted state machine (see ``ledger.anchoring``).

    pending → submitted (tx hash, nonce, raw tx) → confirmed (block) → final (confirmation depth);
    or superseded (a later checkpoint was anchored first) or failed (the registry refused it).
    """

    __tablename__ = "anchor"
    seq: int | None = Field(default=None, primary_key=True)
    tree_size: int = Field(sa_type=BigInteger, unique=True)
    checkpoint_hash: bytes = Field(sa_type=LargeBinary)
    state: str = Field(max_length=16, index=True)
    chain_id: int = Field(sa_type=BigInteger)
    registry_address: str = Field(max_length=42)
    tx_hash: str | None = Field(default=None, max_length=66)
    nonce: int | None = Field(default=None, sa_type=BigInteger)
    raw_tx: bytes | None = Field(default=None, sa_type=LargeBinary)
    sequence: int | None = Field(default=None, sa_type=BigInteger)
    block_number: int | None = Field(default=None, sa_type=BigInteger)
    block_hash: str | None = Field(default=None, max_length=66)
    attempts: int = 0
    created_at_us: int = Field(sa_type=BigInteger)
    submitted_at_us: int | None = Field(default=None, sa_type=BigInteger)
    confirmed_at_us: int | None = Field(default=None, sa_type=BigInteger)
    final_at_us: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, sa_type=Text)


class WitnessCosignatureRow(SQLModel, table=True):
    """A witness's cosignature of one checkpoint, as the signed-note line it returned (verified)."""

    __tablename__ = "witness_cosignature"
    tree_size: int = Field(primary_key=True, sa_type=BigInteger)
    witness: str = Field(primary_key=True, max_length=200)
    line: str = Field(sa_type=Text)
    cosigned_at: int = Field(sa_type=BigInteger, description="the cosignature's timestamp (unix s)")
    received_at_us: int = Field(sa_type=BigInteger)


class WitnessPeerRow(SQLModel, table=True):
    """What the log knows of one witness: the size it acknowledged last, and how the last try went."""

    __tablename__ = "witness_peer"
    name: str = Field(primary_key=True, max_length=200)
    acknowledged_size: int | None = Field(default=None, sa_type=BigInteger)
    last_attempt_us: int | None = Field(default=None, sa_type=BigInteger)
    last_success_us: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, sa_type=Text)


def _table(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


STATE = _table(LogState)
RECORDS = _table(RecordRow)
TILES = _table(TileRow)
CHECKPOINTS = _table(CheckpointRow)
CLIENTS = _table(ApiClientRow)
SEAL_KEYS = _table(SealKeyRow)
ANCHORS = _table(AnchorRow)
COSIGNATURES = _table(WitnessCosignatureRow)
WITNESS_PEERS = _table(WitnessPeerRow)
