#!/usr/bin/env python
"""Anchoring cost on one devnet node: one transaction per record vs trustledger's checkpoint anchors.

Run from the repository root::

    .venv/bin/python bench/bench_anchoring.py            # 2,000 baseline txs; 5,000 rec/s for 60 s per log
    .venv/bin/python bench/bench_anchoring.py --quick    # 300 baseline txs; 2,000 rec/s for 25 s per log

Everything runs against one anvil node (the pinned ``chain-devnet`` anvil, automine, chain id
31337) started for the run on a free 127.0.0.1 port and stopped at the end, even after an error.

1. **Baseline**: ``EvidenceStore`` (``contracts/src/baseline/EvidenceStore.sol``), the common
   "blockchain evidence" pattern: one transaction per record, storing the record's hash in a
   mapping and emitting an event. N records (random 32-byte hashes) are signed from one funded
   anvil account with local nonces (untimed: the signing time is reported apart), then sent
   back to back over one keep-alive connection (pipelined: nothing waits for a receipt), then
   the bench waits (bounded) for the receipt of the last nonce. Records/s is N over first send
   → last receipt; the gas is the mean ``gasUsed`` of all N receipts.
2. **trustledger**, same node, same run, once with a SHA-256 log and once with an SM3 log: a
   ``Ledger`` on a SQLite file in a temp dir, the real ``Sequencer`` thread, the checkpoint
   scheduler and the ``Anchorer`` on it, all at the service defaults (``Settings`` and
   ``AnchorPolicy()``: sequencer batch 10,000 / age 0.2 s, checkpoint every 2 s, anchor every
   10 s or 10,000 entries, anchoring tick 1 s), with an ``AnchorRegistry`` deployed on the node.
   Records are fed with ``Ledger.submit`` in batches of 1,000 at a steady offered rate for a
   fixed time, then the bench waits (bounded) until an anchor covering the last record is
   final. From the database afterwards: records/s over first submit → that anchor's
   ``final_at_us``; the summed ``gasUsed`` of every anchor transaction (receipts fetched by the
   tx hashes of the anchor rows); anchor transactions per 100,000 records; and for every
   record the anchoring latency ``final_at_us`` of the first final anchor covering it minus the
   record's ``received_at_us``.
3. The ratios baseline / trustledger, with PASS/MISS against the targets (gas per record
   >= 1,000x for SHA-256, records/s >= 100x).

The trustledger records/s is bounded by the offered rate: this is not the pipeline's maximum.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import logging
import math
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from _common import Stats, code_version, fmt_rate, fmt_ratio, log, print_table, rate, verdict
from bench_log import SUBJECT_SECRET, SUBMITTER, Workload, sqlite_durability
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from sqlalchemy import text
from web3 import Web3
from web3.contract import Contract
from web3.providers.rpc import HTTPProvider

from contracts import load_artifact
from ledger.anchoring import Anchorer, AnchorPolicy, AnchorState
from ledger.chain.connect import ChainConnection
from ledger.chain.registry import Endpoint, RegistryClient, deploy_registry, fee_fields
from ledger.core.crypto import HashAlgorithm, Sm2PrivateKey
from ledger.errors import LogOverloaded
from ledger.log import Ledger
from ledger.sequencer import Sequencer, start_checkpoint_scheduler
from ledger.settings import Settings
from ledger.store import LogStore, make_engine

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # for tests.anvil (the tests package is not installed)
from tests.anvil import CHAIN_ID, AnvilNode, devnet_unavailable_reason  # noqa: E402

TARGET_GAS_RATIO = 1_000  # baseline gas per record / ours (SHA-256 log)
TARGET_RATE_RATIO = 100  # ours records/s / baseline
PER = 100_000  # "transactions per 100,000 records"
ORIGIN = "bench.trustledger.local/anchoring-{alg}"
RPC_TIMEOUT_S = 30.0
STORE_SELECTOR = keccak(text="store(bytes32)")[:4]


def setting(name: str) -> Any:
    """The service default of a ``Settings`` field (not read from the environment)."""
    return Settings.model_fields[name].default


# --- small helpers ----------------------------------------------------------------------------------


class Rpc:
    """A minimal JSON-RPC client over one keep-alive HTTP session (the baseline's fastest path)."""

    def __init__(self, url: str, timeout_s: float = RPC_TIMEOUT_S) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self._id = 0

    def call(self, method: str, params: Sequence[Any]) -> Any:
        """One call; RuntimeError on a JSON-RPC error."""
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one HTTP request (a JSON-RPC batch); results in order."""
        body = []
        for method, params in calls:
            self._id += 1
            body.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)})
        response = self.session.post(
            self.url, json=body if len(body) > 1 else body[0], timeout=self.timeout_s
        )
        response.raise_for_status()
        answer = response.json()
        answers = answer if isinstance(answer, list) else [answer]
        by_id = {a.get("id"): a for a in answers}
        results = []
        for request in body:
            reply = by_id.get(request["id"])
            if reply is None or "error" in reply:
                error = reply.get("error") if reply else "no answer"
                raise RuntimeError(f"{request['method']}: {error}")
            results.append(reply["result"])
        return results

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def own_cpu_s() -> float:
    """CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_s() -> float:
    """CPU seconds so far of this process's live direct children (the anvil node), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def anvil_version(node: AnvilNode) -> str:
    """The first line of ``anvil --version`` of the node's binary."""
    try:
        out = subprocess.run(
            [str(node.binary), "--version"], capture_output=True, text=True, check=True, timeout=15
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "anvil (version unknown)"
    return out.splitlines()[0].strip() if out else "anvil (version unknown)"


class WarningCounter(logging.Handler):
    """Counts warnings by logger (APScheduler's skipped or missed runs, the anchorer's pauses)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "maximum number of running instances" in message:
            key = f"{record.name}: run skipped (previous run still busy)"
        elif "was missed by" in message:
            key = f"{record.name}: run missed its time"
        else:
            key = f"{record.name}: {message[:100]}"
        self.counts[key] = self.counts.get(key, 0) + 1

    def reset(self) -> dict[str, int]:
        """The counts so far; start again from zero."""
        counts, self.counts = self.counts, {}
        return counts


def send_and_wait(w3: Web3, account: LocalAccount, tx: dict[str, Any], timeout_s: float = 60.0) -> Any:
    """Sign, send and wait (bounded) for a setup transaction; RuntimeError if it reverted."""
    tx = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "chainId": CHAIN_ID,
        **fee_fields(w3, None, 0),
        **tx,
    }
    if "gas" not in tx:
        estimate = w3.eth.estimate_gas(tx)  # type: ignore[arg-type]
        tx["gas"] = estimate + estimate // 5
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.05)
    if receipt["status"] != 1:
        raise RuntimeError(f"setup transaction {tx_hash.hex()} reverted")
    return receipt


# --- 1. the baseline -----------------------------------------------------------------------------


@dataclass
class BaselineResult:
    """One transaction per record into EvidenceStore."""

    records: int
    rpc_batch: int
    sign_s: float = math.nan
    send_s: float = math.nan
    e2e_s: float = math.nan
    rate: float = math.nan
    rate_with_signing: float = math.nan
    gas: Stats | None = None
    gas_total: int = 0
    mined: int = 0
    reverted: int = 0
    blocks: int = 0
    client_cpu_s: float = math.nan
    node_cpu_s: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def gas_per_record(self) -> float:
        """Mean gasUsed of the mined transactions."""
        return self.gas.mean if self.gas else math.nan


def deploy_evidence_store(w3: Web3, account: LocalAccount) -> tuple[Contract, int]:
    """Deploy EvidenceStore; (contract, deployment gas)."""
    artifact = load_artifact("EvidenceStore")
    receipt = send_and_wait(w3, account, {"data": "0x" + artifact.bytecode.hex()})
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi), int(receipt["gasUsed"])


def run_baseline(
    node: AnvilNode, w3: Web3, account: LocalAccount, store: Contract, records: int, rpc_batch: int, seed: int
) -> BaselineResult:
    """Store ``records`` fresh hashes in ``store``, one signed transaction each."""
    res = BaselineResult(records=records, rpc_batch=rpc_batch)
    rng = random.Random(seed)
    hashes = [rng.randbytes(32) for _ in range(records)]
    probe = {"from": account.address, "to": store.address, "data": "0x" + (STORE_SELECTOR + hashes[0]).hex()}
    estimate = int(w3.eth.estimate_gas(probe))  # type: ignore[arg-type]
    fees = fee_fields(w3, None, 0)
    nonce = int(w3.eth.get_transaction_count(account.address, "pending"))

    log(f"baseline: signing {records:,} store(bytes32) transactions (local nonces from {nonce})")
    started = time.perf_counter()
    raws: list[str] = []
    tx_hashes: list[str] = []
    for offset, record_hash in enumerate(hashes):
        signed = account.sign_transaction(
            {
                "to": store.address,
                "data": STORE_SELECTOR + record_hash,
                "value": 0,
                "nonce": nonce + offset,
                "gas": estimate + estimate // 5,
                "chainId": CHAIN_ID,
                **fees,
            }
        )
        raws.append("0x" + bytes(signed.raw_transaction).hex())
        tx_hashes.append("0x" + bytes(signed.hash).hex())
    res.sign_s = time.perf_counter() - started

    log(f"baseline: sending {records:,} transactions pipelined (JSON-RPC batch {rpc_batch}), then waiting")
    rpc = Rpc(node.rpc_url)
    cpu0, node_cpu0 = own_cpu_s(), children_cpu_s()
    try:
        started = time.perf_counter()
        for part in chunks(raws, rpc_batch):
            answers = rpc.batch([("eth_sendRawTransaction", [raw]) for raw in part])
            if len(answers) != len(part):
                raise RuntimeError("the node did not answer every eth_sendRawTransaction")
        res.send_s = time.perf_counter() - started
        deadline = time.monotonic() + max(60.0, records / 20)
        while rpc.call("eth_getTransactionReceipt", [tx_hashes[-1]]) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the last baseline transaction was not mined within {records / 20:.0f} s")
            time.sleep(0.005)
        res.e2e_s = time.perf_counter() - started
        res.client_cpu_s = own_cpu_s() - cpu0
        res.node_cpu_s = children_cpu_s() - node_cpu0

        log("baseline: reading the receipts (untimed)")
        gas: list[float] = []
        blocks: set[str] = set()
        for part in chunks(tx_hashes, 500):
            for found in rpc.batch([("eth_getTransactionReceipt", [h]) for h in part]):
                if found is None:
                    continue
                if int(found["status"], 16) != 1:
                    res.reverted += 1
                    continue
                res.mined += 1
                gas.append(int(found["gasUsed"], 16))
                blocks.add(found["blockNumber"])
    finally:
        rpc.close()
    res.gas = Stats.of(gas)
    res.gas_total = int(sum(gas))
    res.blocks = len(blocks)
    res.rate = rate(records, res.e2e_s)
    res.rate_with_signing = rate(records, res.e2e_s + res.sign_s)
    if res.mined != records:
        res.notes.append(f"baseline: {res.mined} of {records} transactions mined, {res.reverted} reverted")
    for record_hash in (hashes[0], hashes[-1]):
        if int(store.functions.storedAt(record_hash).call()) == 0:
            res.notes.append(f"baseline: hash {record_hash.hex()} is not stored")
    return res


# --- 2. trustledger ------------------------------------------------------------------------------


@dataclass
class OursResult:
    """One log (SHA-256 or SM3) fed at a steady rate, anchored by the real pipeline."""

    alg: str
    offered_rate: float
    duration_s: float
    batch: int
    records: int = 0
    durability: str = ""
    feed_s: float = math.nan
    max_lag_s: float = 0.0
    overloaded: int = 0
    submit: Stats | None = None
    e2e_s: float = math.nan
    drain_s: float = math.nan
    rate: float = math.nan
    anchored_size: int = 0
    anchor_rows: int = 0
    anchor_txs: int = 0
    anchor_states: dict[str, int] = field(default_factory=dict)
    resubmissions: int = 0
    gas_total: int = 0
    gas_per_anchor: Stats | None = None
    entries_per_anchor: Stats | None = None
    chain_time: Stats | None = None
    to_submitted: Stats | None = None
    to_confirmed: Stats | None = None
    latency: Stats | None = None
    latency_records: int = 0
    latency_during_feed: Stats | None = None
    feed_end: float = math.nan
    checkpoints: int = 0
    cpu_s: float = math.nan
    node_cpu_s: float = math.nan
    warnings: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def gas_per_record(self) -> float:
        """All anchor gas over all records fed."""
        return self.gas_total / self.records if self.records else math.nan

    @property
    def txs_per_100k(self) -> float:
        """Anchor transactions per 100,000 records."""
        return self.anchor_txs * PER / self.records if self.records else math.nan


def run_ours(
    node: AnvilNode,
    alg: HashAlgorithm,
    account: LocalAccount,
    registry: str,
    args: argparse.Namespace,
    workdir: Path,
    warnings: WarningCounter,
) -> OursResult:
    """Feed one log at the offered rate with the service's background jobs, then wait until anchored."""
    res = OursResult(alg=alg.value, offered_rate=args.rate, duration_s=args.duration, batch=args.batch)
    total = int(args.rate * args.duration)
    work = Workload(total, args.batch, args.seed + (1 if alg is HashAlgorithm.SM3 else 0))
    folder = Path(tempfile.mkdtemp(prefix=f"{alg.value}-", dir=workdir))
    ledger = Ledger(
        LogStore(make_engine(f"sqlite:///{folder / 'ledger.db'}")),
        origin=ORIGIN.format(alg=alg.value),
        hash_alg=alg,
        signing_key=Sm2PrivateKey.generate(),
        subject_secret=SUBJECT_SECRET,
        max_pending=setting("max_pending"),
    )
    try:
        ledger.create_schema()
        res.durability = sqlite_durability(ledger)
        run_pipeline(res, ledger, node, account, registry, args, work, warnings)
    finally:
        ledger.store.engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return res


def run_pipeline(
    res: OursResult,
    ledger: Ledger,
    node: AnvilNode,
    account: LocalAccount,
    registry: str,
    args: argparse.Namespace,
    work: Workload,
    warnings: WarningCounter,
) -> None:
    """Start the background jobs, feed, wait for the last anchor, stop the jobs, analyse."""
    alg = ledger.hash_alg
    total = work.entries
    policy = AnchorPolicy()
    client = RegistryClient(
        [Endpoint.http(node.rpc_url, 10.0)], registry_address=registry, chain_id=CHAIN_ID, account=account
    )
    anchorer = Anchorer(ledger, lambda: ChainConnection(client, lambda: None), policy)
    sequencer = Sequencer(
        ledger, batch_size=setting("sequencer_batch_size"), max_age_s=setting("sequencer_max_age_s")
    )
    scheduler = None
    warnings.reset()
    try:
        sequencer.start()
        scheduler = start_checkpoint_scheduler(ledger, setting("checkpoint_interval_s"))
        anchorer.schedule(scheduler, setting("anchor_tick_s"))

        log(f"{alg.value}: feeding {total:,} records at {args.rate:,.0f}/s for {args.duration:.0f} s")
        cpu0, node_cpu0 = own_cpu_s(), children_cpu_s()
        submit_times: list[float] = []
        first_submit = time.time()
        start = time.monotonic()
        next_progress = start + 10
        for number in range(work.batches):
            subs = work.submissions(number)  # the client's work, done in the slack before it is due
            delay = start + number * args.batch / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                res.max_lag_s = max(res.max_lag_s, -delay)
            for _attempt in range(100):
                began = time.perf_counter()
                try:
                    ledger.submit(SUBMITTER, subs)
                except LogOverloaded as e:
                    res.overloaded += 1
                    time.sleep(min(1.0, e.retry_after))
                    continue
                submit_times.append(time.perf_counter() - began)
                break
            else:
                raise RuntimeError("the log stayed overloaded for 100 retries")
            sequencer.notify(len(subs))
            res.records += len(subs)
            if time.monotonic() >= next_progress:
                next_progress += 10
                status = ledger.store.latest_anchor([AnchorState.FINAL])
                log(
                    f"{alg.value}:   {res.records:,} submitted, {ledger.current_size():,} sequenced, "
                    f"{status.tree_size if status else 0:,} anchored final"
                )
        res.feed_s = time.monotonic() - start
        res.feed_end = time.time()
        res.submit = Stats.of(submit_times)

        log(f"{alg.value}: fed in {res.feed_s:.1f} s; waiting until the last record is anchored final")
        fed = time.monotonic()
        deadline = fed + policy.interval_s + args.drain_timeout
        final = None
        while time.monotonic() < deadline:
            final = ledger.store.latest_anchor([AnchorState.FINAL])
            if final is not None and final.tree_size >= res.records:
                break
            time.sleep(0.05)
        res.drain_s = time.monotonic() - fed
        res.cpu_s = own_cpu_s() - cpu0
        res.node_cpu_s = children_cpu_s() - node_cpu0
        res.last_error = anchorer.last_error
        if final is None or final.tree_size < res.records:
            res.notes.append(
                f"{alg.value}: only {final.tree_size if final else 0:,} of {res.records:,} records were "
                f"anchored final within {policy.interval_s + args.drain_timeout:.0f} s of the end of the feed"
            )
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        anchorer.close()
        sequencer.stop()
        res.warnings = warnings.reset()

    analyse(res, ledger, node, first_submit)


def analyse(res: OursResult, ledger: Ledger, node: AnvilNode, first_submit: float) -> None:
    """Gas, anchor counts and per-record latency, from the database and the node, after the run."""
    rows = ledger.store.anchors(limit=1_000_000)
    res.anchor_rows = len(rows)
    for row in rows:
        res.anchor_states[row.state] = res.anchor_states.get(row.state, 0) + 1
        res.resubmissions += max(0, row.attempts - 1)
    res.checkpoints = len(ledger.store.checkpoints())
    w3 = Web3(HTTPProvider(node.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
    gas: list[float] = []
    for row in rows:
        if row.tx_hash is None:
            continue
        receipt = w3.eth.get_transaction_receipt(HexBytes(row.tx_hash))
        res.anchor_txs += 1
        gas.append(int(receipt["gasUsed"]))
        if receipt["status"] != 1:
            res.notes.append(f"{res.alg}: anchor tx {row.tx_hash} (size {row.tree_size}) reverted")
    res.gas_total = int(sum(gas))
    res.gas_per_anchor = Stats.of(gas)

    final = sorted((r for r in rows if r.state == AnchorState.FINAL), key=lambda r: r.tree_size)
    sizes = [r.tree_size for r in final]
    res.anchored_size = sizes[-1] if sizes else 0
    res.entries_per_anchor = Stats.of([float(b - a) for a, b in zip([0, *sizes], sizes, strict=False)])
    res.chain_time = Stats.of(
        [(r.final_at_us - r.created_at_us) / 1e6 for r in final if r.final_at_us is not None]
    )
    res.to_submitted = Stats.of(
        [(r.submitted_at_us - r.created_at_us) / 1e6 for r in final if r.submitted_at_us is not None]
    )
    res.to_confirmed = Stats.of(
        [
            (r.confirmed_at_us - r.submitted_at_us) / 1e6
            for r in final
            if r.confirmed_at_us is not None and r.submitted_at_us is not None
        ]
    )
    covering = [r for r in final if r.tree_size >= res.records]
    if covering and covering[0].final_at_us is not None:
        res.e2e_s = covering[0].final_at_us / 1e6 - first_submit
        res.rate = rate(res.records, res.e2e_s)

    # Every record: received -> final_at_us of the first (smallest) final anchor whose tree covers it.
    finals_at = [r.final_at_us or 0 for r in final]
    # Anchors created while records still arrived (the others waited out the interval at the end).
    during_feed = [r.created_at_us / 1e6 <= res.feed_end for r in final]
    latencies: list[float] = []
    steady: list[float] = []
    uncovered = 0
    with ledger.store.engine.connect() as conn:
        result = conn.execute(
            text("SELECT log_index, received_at_us FROM record WHERE log_index IS NOT NULL")
        ).yield_per(50_000)
        for log_index, received_at_us in result:
            position = bisect.bisect_right(sizes, log_index)
            if position == len(sizes):
                uncovered += 1
                continue
            latency = (finals_at[position] - received_at_us) / 1e6
            latencies.append(latency)
            if during_feed[position]:
                steady.append(latency)
    res.latency = Stats.of(latencies)
    res.latency_during_feed = Stats.of(steady)
    res.latency_records = len(latencies)
    if uncovered:
        res.notes.append(f"{res.alg}: {uncovered:,} sequenced records are not covered by a final anchor")


# --- 3. report -------------------------------------------------------------------------------------


def fmt_gas(value: float) -> str:
    """Gas with thousands separators (one decimal below 100)."""
    if math.isnan(value):
        return "n/a"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_s(value: float) -> str:
    """Seconds with two decimals."""
    return "n/a" if math.isnan(value) else f"{value:,.2f} s"


def report(bases: list[BaselineResult], deploy_gas: int, ours: list[OursResult]) -> None:
    """The three tables: baseline variants, trustledger logs, ratios with verdicts."""

    def brow(name: str, fn: Any) -> list[str]:
        return [name, *(fn(b) for b in bases)]

    records = ", ".join(sorted({f"{b.records:,}" for b in bases}))
    print_table(
        f"Baseline: EvidenceStore.store(bytes32), one transaction per record ({records} records per column)",
        ["measure", *(f"{b.rpc_batch} tx per request" for b in bases)],
        [
            brow("records/s end to end (first send -> last receipt)", lambda b: fmt_rate(b.rate)),
            brow("  send phase (all eth_sendRawTransaction)", lambda b: fmt_s(b.send_s)),
            brow("  first send -> last receipt", lambda b: fmt_s(b.e2e_s)),
            brow("records/s including client-side signing", lambda b: fmt_rate(b.rate_with_signing)),
            brow(
                "  signing (eth_account, untimed above)", lambda b: f"{b.sign_s * 1000 / b.records:.2f} ms/tx"
            ),
            brow("gas per record (mean gasUsed)", lambda b: fmt_gas(b.gas_per_record)),
            brow(
                "  gasUsed p50 / max",
                lambda b: f"{b.gas.p50:,.0f} / {b.gas.max:,.0f}" if b.gas and b.gas.count else "n/a",
            ),
            brow("total gas", lambda b: f"{b.gas_total:,}"),
            brow("transactions per 100,000 records", lambda b: f"{PER:,}"),
            brow("mined / reverted", lambda b: f"{b.mined:,} / {b.reverted:,}"),
            brow("blocks used (automine)", lambda b: f"{b.blocks:,}"),
            brow(
                "bench CPU (send + wait) / anvil CPU",
                lambda b: f"{b.client_cpu_s:.1f} s / {b.node_cpu_s:.1f} s",
            ),
            brow("contract deployment (one-off, not counted)", lambda b: f"{deploy_gas:,} gas"),
        ],
    )
    # The baseline's best case: the fastest variant, and the mean gas over every receipt.
    base = max(bases, key=lambda b: b.rate if not math.isnan(b.rate) else -1.0)
    mined = sum(b.mined for b in bases)
    base_gas = sum(b.gas_total for b in bases) / mined if mined else math.nan
    header = ["measure", *(f"trustledger {r.alg}" for r in ours)]

    def row(name: str, fn: Any) -> list[str]:
        return [name, *(fn(r) for r in ours)]

    print_table(
        "trustledger: Ledger + Sequencer + checkpoint scheduler + Anchorer (service defaults), SQLite",
        header,
        [
            row("offered rate (steady, bulk submits)", lambda r: fmt_rate(r.offered_rate)),
            row("records fed", lambda r: f"{r.records:,} in {r.feed_s:.1f} s (batch {r.batch:,})"),
            row("feeder max lag behind schedule", lambda r: f"{r.max_lag_s * 1000:.0f} ms"),
            row("submit() per batch p50 / p99", lambda r: r.submit.ms() if r.submit else "n/a"),
            row("records/s end to end (-> anchor final)", lambda r: fmt_rate(r.rate)),
            row("  first submit -> last record final", lambda r: fmt_s(r.e2e_s)),
            row("  end of feed -> last record final", lambda r: fmt_s(r.drain_s)),
            row("anchor transactions", lambda r: f"{r.anchor_txs:,}"),
            row("anchor transactions per 100,000 records", lambda r: f"{r.txs_per_100k:,.1f}"),
            row("entries per final anchor mean / max", lambda r: stats_pair(r.entries_per_anchor, 1.0, "")),
            row("total anchor gas", lambda r: f"{r.gas_total:,}"),
            row("gas per anchor mean / max", lambda r: stats_pair(r.gas_per_anchor, 1.0, "")),
            row("gas per record", lambda r: fmt_gas(r.gas_per_record)),
            row(
                "latency accepted -> anchor final p50",
                lambda r: fmt_s(r.latency.p50) if r.latency else "n/a",
            ),
            row("  p99", lambda r: fmt_s(r.latency.p99) if r.latency else "n/a"),
            row("  max", lambda r: fmt_s(r.latency.max) if r.latency else "n/a"),
            row("  records measured", lambda r: f"{r.latency_records:,} (all)"),
            row(
                "  p50 / p99, anchors created during the feed",
                lambda r: stats_p50_p99(r.latency_during_feed),
            ),
            row("anchor created -> final mean / max", lambda r: stats_pair(r.chain_time, 1000.0, " ms")),
            row("  created -> submitted (signed, sent)", lambda r: stats_pair(r.to_submitted, 1000.0, " ms")),
            row("  submitted -> seen mined", lambda r: stats_pair(r.to_confirmed, 1000.0, " ms")),
            row("checkpoints issued", lambda r: f"{r.checkpoints:,}"),
            row(
                "anchor rows by state",
                lambda r: ", ".join(f"{k} {v}" for k, v in sorted(r.anchor_states.items())),
            ),
            row("re-sent anchor txs", lambda r: f"{r.resubmissions:,}"),
            row("bench CPU / anvil CPU", lambda r: f"{r.cpu_s:.1f} s / {r.node_cpu_s:.1f} s"),
            row("durability", lambda r: r.durability.split(" ", 2)[-1]),
        ],
    )

    rows: list[list[str]] = []
    for r in ours:
        gas_ratio = base_gas / r.gas_per_record if r.gas_per_record else math.nan
        rate_ratio = r.rate / base.rate if base.rate else math.nan
        tx_ratio = PER / r.txs_per_100k if r.txs_per_100k else math.nan
        gas_ok = None if math.isnan(gas_ratio) else gas_ratio >= TARGET_GAS_RATIO
        rate_ok = None if math.isnan(rate_ratio) else rate_ratio >= TARGET_RATE_RATIO
        rows += [
            [
                f"gas per record, baseline / {r.alg}",
                f"{fmt_gas(base_gas)} / {fmt_gas(r.gas_per_record)}",
                fmt_ratio(gas_ratio),
                f">= {TARGET_GAS_RATIO:,}x" + ("" if r.alg == "sha256" else " (set for sha256)"),
                verdict(gas_ok),
            ],
            [
                f"records/s, {r.alg} / baseline",
                f"{r.rate:,.0f} / {base.rate:,.0f}",
                fmt_ratio(rate_ratio),
                f">= {TARGET_RATE_RATIO}x",
                verdict(rate_ok),
            ],
            [
                f"transactions per 100,000, baseline / {r.alg}",
                f"{PER:,} / {r.txs_per_100k:,.1f}",
                fmt_ratio(tx_ratio),
                "",
                "",
            ],
        ]
    if len(ours) == 2:
        sha, sm3 = ours
        rows.append(
            [
                "gas per anchor, sm3 / sha256 (on-chain SM3)",
                f"{fmt_gas(sm3.gas_per_anchor.mean if sm3.gas_per_anchor else math.nan)} / "
                f"{fmt_gas(sha.gas_per_anchor.mean if sha.gas_per_anchor else math.nan)}",
                fmt_ratio(
                    sm3.gas_per_anchor.mean / sha.gas_per_anchor.mean
                    if sm3.gas_per_anchor and sha.gas_per_anchor and sha.gas_per_anchor.mean
                    else math.nan
                ),
                "",
                "",
            ]
        )
    rate_basis = (
        f"baseline records/s: its fastest variant ({base.rpc_batch} tx per request), first send -> "
        "last receipt, pre-signed"
    )
    print_table(
        f"Ratios (same run, same node; {rate_basis})",
        ["comparison", "figures", "ratio", "target", "verdict"],
        rows,
    )


def stats_p50_p99(stats: Stats | None) -> str:
    """``p50 / p99 s (count records)`` of a latency sample in seconds."""
    if stats is None or not stats.count:
        return "n/a"
    return f"{stats.p50:.2f} / {stats.p99:.2f} s ({stats.count:,} records)"


def stats_pair(stats: Stats | None, scale: float, unit: str) -> str:
    """``mean / max`` of a sample, scaled."""
    if stats is None or not stats.count:
        return "n/a"
    return f"{stats.mean * scale:,.0f} / {stats.max * scale:,.0f}{unit}"


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="300 baseline txs; 2,000 rec/s for 25 s per log")
    parser.add_argument(
        "--baseline-records", type=int, help="baseline transactions (default 2,000; quick 300)"
    )
    parser.add_argument("--rate", type=float, help="offered records/s per log (default 5,000; quick 2,000)")
    parser.add_argument("--duration", type=float, help="seconds of feeding per log (default 60; quick 25)")
    parser.add_argument("--batch", type=int, default=1_000, help="records per submit() call")
    parser.add_argument(
        "--rpc-batches",
        default="1,20",
        help="baseline variants: raw transactions per JSON-RPC request (1: one request each; 20: batches)",
    )
    parser.add_argument("--algs", default="sha256,sm3", help="logs to run: sha256, sm3 or both")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds beyond the anchor interval to wait at the end",
    )
    parser.add_argument("--seed", type=int, default=20260101)
    args = parser.parse_args(argv)
    args.baseline_records = args.baseline_records or (300 if args.quick else 2_000)
    args.rate = args.rate or (2_000.0 if args.quick else 5_000.0)
    args.duration = args.duration or (25.0 if args.quick else 60.0)
    try:
        algs = [HashAlgorithm(a.strip()) for a in args.algs.split(",") if a.strip()]
        rpc_batches = [int(b) for b in args.rpc_batches.split(",") if b.strip()]
    except ValueError as e:
        parser.error(str(e))
    if not algs or not rpc_batches or min(rpc_batches) < 1:
        parser.error("--algs and --rpc-batches need at least one valid entry")
    if args.batch < 1 or args.baseline_records < 1 or args.rate <= 0 or args.duration <= 0:
        parser.error("--batch, --baseline-records, --rate and --duration must be positive")
    reason = devnet_unavailable_reason()
    if reason:
        print(f"bench_anchoring: {reason}", file=sys.stderr)
        return 2

    def on_sigterm(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwind through the finally blocks: stop threads and anvil

    signal.signal(signal.SIGTERM, on_sigterm)
    warnings = WarningCounter()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(warnings)

    started = time.perf_counter()
    policy = AnchorPolicy()
    print(
        f"bench_anchoring: baseline {args.baseline_records:,} records; trustledger "
        f"{', '.join(a.value for a in algs)} logs at {args.rate:,.0f} rec/s offered for "
        f"{args.duration:.0f} s each, submit batches of {args.batch:,}"
    )
    print(code_version())
    print(
        f"host: {platform.machine()} cpus={os.cpu_count()}, Python {platform.python_version()}, "
        f"contracts: solc {load_artifact('EvidenceStore').solc_version}"
    )
    print(
        f"service defaults: sequencer batch {setting('sequencer_batch_size'):,} / age "
        f"{setting('sequencer_max_age_s')} s, checkpoint every {setting('checkpoint_interval_s')} s, "
        f"anchor every {policy.interval_s:.0f} s or {policy.min_entries:,} entries (tick "
        f"{setting('anchor_tick_s')} s, confirmations {policy.confirmations})"
    )

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-anchoring-"))
    (tmp / "anvil").mkdir()
    node = AnvilNode(workdir=tmp / "anvil")
    bases: list[BaselineResult] = []
    results: list[OursResult] = []
    try:
        node.start()
        print(f"node: {anvil_version(node)}, automine, chain id {CHAIN_ID}, {node.rpc_url}")
        keys = node.private_keys
        account: LocalAccount = Account.from_key(keys[0])
        w3 = Web3(HTTPProvider(node.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
        store, deploy_gas = deploy_evidence_store(w3, account)
        for number, rpc_batch in enumerate(rpc_batches):
            base = run_baseline(
                node, w3, account, store, args.baseline_records, rpc_batch, args.seed * 100 + number
            )
            bases.append(base)
            log(f"baseline: {base.rate:,.0f} rec/s, {base.gas_per_record:,.0f} gas per record")

        admin: LocalAccount = Account.from_key(keys[1])
        endpoint = Endpoint.http(node.rpc_url, RPC_TIMEOUT_S)
        registry = deploy_registry(endpoint, admin, chain_id=CHAIN_ID)
        RegistryClient([endpoint], registry_address=registry, chain_id=CHAIN_ID, account=admin).transact(
            "addMember", admin.address, "bench"
        )
        log(f"AnchorRegistry at {to_checksum_address(registry)} (SM3 in Solidity; no precompile)")
        for alg in algs:
            result = run_ours(node, alg, admin, registry, args, tmp, warnings)
            results.append(result)
            log(
                f"{alg.value}: {result.rate:,.0f} rec/s end to end, {result.gas_per_record:,.1f} gas per "
                f"record, latency p99 {result.latency.p99 if result.latency else math.nan:.2f} s"
            )
    finally:
        node.close()
        shutil.rmtree(tmp, ignore_errors=True)

    report(bases, deploy_gas, results)
    notes = [note for b in bases for note in b.notes]
    for r in results:
        notes += r.notes
        if r.last_error:
            notes.append(f"{r.alg}: the anchorer's last error: {r.last_error}")
        for what, count in sorted(r.warnings.items()):
            notes.append(f"{r.alg}: {count} x warning {what}")
    notes += [
        "trustledger records/s is bounded by the offered rate and includes the wait for the last anchor "
        "(up to the 10 s interval): it is not the pipeline's maximum sustainable rate",
        "gas counts every anchor transaction's gasUsed (21,000 base included); the one-off registry and "
        "EvidenceStore deployments are not counted on either side",
        "anvil automines: a transaction is mined as soon as it arrives. On a chain with block times "
        "both sides wait longer, and the baseline's transactions compete for block space",
    ]
    print()
    for note in notes:
        print(f"note: {note}")
    print(f"total wall time {time.perf_counter() - started:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
