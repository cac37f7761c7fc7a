"""The embedded chain: an in-process EVM (py-evm via eth-tester) whose state survives restarts.

eth-tester keeps its chain in memory; here py-evm's key-value database is a SQLite table, committed
after every JSON-RPC request, so anchors made before a restart are still on this chain after it (a
crash loses at most the request in progress, which the anchoring state machine re-sends). It is a
single-operator development chain: it gives zero-setup anchoring and the same code path as a real
network, not the witness of other organisations that a consortium chain gives.

One process owns the chain at a time (an exclusive ``flock``); another process opening it gets
:class:`~ledger.errors.ChainUnavailable` and retries on its next run.
"""

from __future__ import annotations

import ast
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.exceptions import CanonicalHeadNotFound
from eth.vm.forks.prague import PragueVM
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import PyEVMBackend, get_default_genesis_params
from eth_tester.exceptions import TransactionFailed
from eth_utils.address import to_canonical_address
from web3 import Web3
from web3.exceptions import ContractCustomError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from ledger.errors import ChainUnavailable

EMBEDDED_CHAIN_ID = 131277322940537
"""eth-tester's chain id, which its ``eth_chainId`` reports."""
_GENESIS_BALANCE = 10**27
_CALLER = Web3.to_checksum_address("0x" + "00" * 20)


class _SqliteKeyValue(BaseDB):
    """py-evm's key-value database interface over one SQLite table; writes wait for :meth:`commit`."""

    def __init__(self, path: Path) -> None:
        # Created 0600 before SQLite opens it; SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if candidate.exists() and candidate.stat().st_mode & 0o077:
                os.chmod(candidate, 0o600)  # an older deployment's world-readable chain state
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        self._in_transaction = False

    def __getitem__(self, key: bytes) -> bytes:
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._begin()
        self._conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        self._begin()
        if self._conn.execute("DELETE FROM kv WHERE k = ?", (key,)).rowcount == 0:
            raise KeyError(key)

    def _exists(self, key: bytes) -> bool:
        return self._conn.execute("SELECT 1 FROM kv WHERE k = ?", (key,)).fetchone() is not None

    def _begin(self) -> None:
        if not self._in_transaction:
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_transaction = True

    def commit(self) -> None:
        """Make every write since the last commit durable, atomically."""
        if self._in_transaction:
            self._conn.execute("COMMIT")
            self._in_transaction = False

    def rollback(self) -> None:
        """Drop the writes since the last commit."""
        if self._in_transaction:
            self._conn.execute("ROLLBACK")
            self._in_transaction = False

    def close(self) -> None:
        """Close the database (uncommitted writes are dropped)."""
        self.rollback()
        self._conn.close()


class _TesterChain(MiningChain):
    """eth-tester's proof-of-stake tester chain, reopened from a database when it exists."""

    chain_id = EMBEDDED_CHAIN_ID
    vm_configuration: Any = ((0, PragueVM),)

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        header_params["gas_limit"] = parent_header.gas_limit  # constant gas limit, as eth-tester
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return super().get_vm().get_transaction_builder()


class _CommittingProvider(EthereumTesterProvider):
    """An eth-tester provider that commits the chain database after each request, one at a time."""

    def __init__(self, tester: EthereumTester, kv: _SqliteKeyValue) -> None:
        super().__init__(ethereum_tester=tester)
        self._kv = kv
        self._lock = threading.Lock()

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            try:
                response = super().make_request(method, params)
            except TransactionFailed as e:
                self._kv.rollback()
                raise ContractCustomError("execution reverted", data=_revert_data(e)) from e
            except BaseException:
                self._kv.rollback()
                raise
            self._kv.commit()
            return response


def _revert_data(error: TransactionFailed) -> str | None:
    """The raw revert data as a JSON-RPC node would return it (eth-tester only keeps it in the cause)."""
    for cause in (error.__context__, error):
        raw = cause.args[0] if cause is not None and cause.args else None
        if isinstance(raw, Exception) and raw.args:
            raw = raw.args[0]
        if isinstance(raw, str) and raw.startswith(("b'", 'b"')):
            raw = ast.literal_eval(raw)  # eth-tester hands the bytes over as their repr
        if isinstance(raw, bytes):
            return "0x" + raw.hex()
    return None


class EmbeddedChain:
    """An open embedded chain: ``w3`` talks to it; :meth:`close` releases it for other processes."""

    def __init__(self, w3: Web3, kv: _SqliteKeyValue, lock: IO[bytes]) -> None:
        self.w3 = w3
        self._kv = kv
        self._lock = lock

    def close(self) -> None:
        """Close the database and release ownership."""
        self._kv.close()
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()


def open_embedded_chain(path: Path, *, fund: Iterable[str] = ()) -> EmbeddedChain:
    """Open the embedded chain stored at ``path``, creating it (with ``fund`` accounts funded) if new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.fdopen(os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600), "a+b")  # held until close()
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as e:
        lock.close()
        raise ChainUnavailable(f"the embedded chain {path} is in use by another process") from e
    kv = _SqliteKeyValue(path)
    db = AtomicDB(kv)
    chain: Any
    try:
        chain = _TesterChain(db)
    except CanonicalHeadNotFound:
        account: Any = {"balance": _GENESIS_BALANCE, "nonce": 0, "code": b"", "storage": {}}
        state = {to_canonical_address(address): account for address in (*fund, _CALLER)}
        chain = _TesterChain.from_genesis(db, get_default_genesis_params(), state)
        kv.commit()
    backend = PyEVMBackend.__new__(PyEVMBackend)  # skip its in-memory genesis; use our chain
    backend.chain = chain
    backend.account_keys = []
    provider = _CommittingProvider(EthereumTester(backend=backend), kv)
    w3 = Web3(provider)
    w3.eth.default_account = _CALLER  # eth-tester wants a sender even for eth_call
    return EmbeddedChain(w3, kv, lock)
