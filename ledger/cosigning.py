"""Collecting witnesses' cosignatures of the log's checkpoints (the log's side of C2SP tlog-witness).

After checkpoints are issued, :meth:`Cosigner.collect` submits each one a witness has not cosigned
yet to every witness of the trust policy that has a ``url``, with the ``old`` size that witness
acknowledged last and a consistency proof from it. On 409 the witness names its size: the
submission is retried from there (a fresh proof), a bounded number of times. A 200 answer's lines
are verified against the policy's key for that witness; only a valid cosignature is stored
(:meth:`~ledger.store.LogStore.add_cosignature`), and receipts then carry it after the log's line.

Every request has a timeout and a total deadline, each round handles a bounded number of
checkpoints per witness, and witnesses are asked in parallel. A failure is logged and recorded
with the witness (``trustledger witnesses`` shows it); it never stops checkpoints or anchoring.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ledger.core.checkpoint import MAX_NOTE_SIGNATURES, NoteSignature, SignedCheckpoint
from ledger.core.cosignature import Cosignature, cosignature_key_hash
from ledger.core.policy import PolicyWitness, TrustPolicy
from ledger.errors import ConfigurationError, InvalidRequest, InvalidSignature, LedgerError
from ledger.log import Ledger, now_us
from ledger.policy_file import read_policy_if_present
from ledger.stored import StoredCheckpoint
from ledger.witness.protocol import add_checkpoint_body

_logger = logging.getLogger(__name__)
MAX_REPLY_BYTES = 64 * 1024
"""A witness's answer: a few signature lines, or a problem document."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class WitnessFailure(LedgerError):
    """A witness did not cosign: unreachable, refused, or answered something invalid."""

    reason = "witness-failure"


@dataclass(frozen=True)
class WitnessReply:
    """An HTTP answer of a witness (body already bounded)."""

    status: int
    content_type: str
    body: bytes


Post = Callable[[str, bytes, float], WitnessReply]
"""``post(add-checkpoint URL, body, timeout in s)``; raises :class:`WitnessFailure` when unreachable."""


class HttpPost:
    """:data:`Post` over HTTP (httpx), with a total deadline and a bounded answer."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(self, url: str, body: bytes, timeout_s: float) -> WitnessReply:
        deadline = time.monotonic() + timeout_s
        try:
            with self._client.stream(
                "POST", url, content=body, headers={"content-type": "text/plain"}, timeout=timeout_s
            ) as response:
                data = bytearray()
                for chunk in response.iter_bytes():
                    data += chunk
                    if len(data) > MAX_REPLY_BYTES:
                        raise WitnessFailure(
                            f"answer larger than {MAX_REPLY_BYTES} bytes", reason="bad-reply"
                        )
                    if time.monotonic() > deadline:
                        raise WitnessFailure(f"no full answer within {timeout_s} s", reason="timeout")
                return WitnessReply(
                    response.status_code, response.headers.get("content-type", ""), bytes(data)
                )
        except httpx.HTTPError as e:
            raise WitnessFailure(f"{type(e).__name__}: {e}", reason="unreachable") from e


@dataclass(frozen=True)
class WitnessOutcome:
    """What one round did with one witness."""

    name: str
    cosigned: tuple[int, ...]
    acknowledged_size: int | None
    error: str | None


def add_checkpoint_url(witness: PolicyWitness) -> str:
    """The witness's ``add-checkpoint`` endpoint (its policy ``url`` is the submission prefix)."""
    if witness.url is None:
        raise ConfigurationError(f"witness {witness.name} has no url")
    return witness.url.rstrip("/") + "/add-checkpoint"


def _problem_reason(reply: WitnessReply) -> str:
    try:
        document: Any = json.loads(reply.body)
        return f"{document.get('reason', '?')}: {str(document.get('detail', ''))[:300]}"
    except (ValueError, AttributeError):
        return reply.body[:200].decode("utf-8", "replace")


def _tlog_size(reply: WitnessReply) -> int:
    text = reply.body.decode("ascii", "replace")
    if not reply.content_type.startswith(SIZE_CONTENT_TYPE) or not text.endswith("\n"):
        raise WitnessFailure("409 without a text/x.tlog.size body", reason="bad-reply")
    digits = text[:-1]
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19 or digits != str(int(digits)):
        raise WitnessFailure(f"409 with a malformed size {digits[:30]!r}", reason="bad-reply")
    return int(digits)


def verified_cosignature(
    reply_body: bytes, checkpoint: SignedCheckpoint, witness: PolicyWitness
) -> NoteSignature:
    """The line of ``reply_body`` that is ``witness``'s valid cosignature of ``checkpoint``.

    Lines of other keys are ignored (C2SP tlog-witness); :class:`WitnessFailure` if none verifies.
    """
    try:
        text = reply_body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WitnessFailure("the answer is not UTF-8", reason="bad-reply") from e
    lines = text.split("\n")
    if lines[-1] != "" or not 2 <= len(lines) <= MAX_NOTE_SIGNATURES + 1:
        raise WitnessFailure("the answer is not 1 to 100 signature lines", reason="bad-reply")
    key = witness.key()
    key_hash = cosignature_key_hash(witness.name, key)
    for raw in lines[:-1]:
        try:
            line = NoteSignature.from_line(raw)
            if line.key_name != witness.name or line.key_hash != key_hash:
                continue
            Cosignature.from_signature_line(line).verify(checkpoint.checkpoint, key)
        except (InvalidRequest, InvalidSignature) as e:
            raise WitnessFailure(f"invalid cosignature line: {e.message}", reason="bad-cosignature") from e
        return line
    raise WitnessFailure("no cosignature by the policy's key for this witness", reason="bad-cosignature")


class Cosigner:
    """Collects cosignatures for ``ledger``'s checkpoints from the witnesses of ``policy``."""

    def __init__(
        self,
        ledger: Ledger,
        policy: TrustPolicy,
        *,
        post: Post | None = None,
        timeout_s: float = 5.0,
        max_attempts: int = 3,
        max_checkpoints: int = 8,
        clock: Callable[[], int] = now_us,
    ) -> None:
        if policy.log.origin != ledger.origin:
            raise ConfigurationError(
                f"the trust policy is for the log {policy.log.origin!r}, not {ledger.origin!r}"
            )
        self.ledger = ledger
        self.store = ledger.store
        self.policy = policy
        self.witnesses: tuple[PolicyWitness, ...] = tuple(w for w in policy.witnesses if w.url)
        self._post = post
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_checkpoints = max_checkpoints
        self._clock = clock

    def collect(self) -> list[WitnessOutcome]:
        """One round: every witness in parallel; failures are recorded, never raised."""
        if not self.witnesses:
            return []
        if self._post is not None:
            return self._collect_all(self._post)
        limits = httpx.Limits(max_connections=len(self.witnesses))
        with httpx.Client(limits=limits, follow_redirects=False) as client:
            return self._collect_all(HttpPost(client))

    def _collect_all(self, post: Post) -> list[WitnessOutcome]:
        with ThreadPoolExecutor(max_workers=min(8, len(self.witnesses))) as pool:
            return list(pool.map(lambda w: self.collect_from(w, post), self.witnesses))

    def collect_from(self, witness: PolicyWitness, post: Post) -> WitnessOutcome:
        """Submit ``witness``'s uncosigned checkpoints (the newest ``max_checkpoints``), oldest first."""
        cosigned: list[int] = []
        acknowledged: int | None = None
        try:
            peer = self.store.witness_peer(witness.name)
            if peer is not None:
                acknowledged = peer.acknowledged_size
            for checkpoint in self.store.checkpoints_to_cosign(
                witness.name, acknowledged or 0, self.max_checkpoints
            ):
                if acknowledged is not None and checkpoint.tree_size < acknowledged:
                    continue  # the witness is past it (it said so in a 409)
                acknowledged = self._submit(witness, post, checkpoint, acknowledged or 0)
                if acknowledged == checkpoint.tree_size:
                    cosigned.append(checkpoint.tree_size)
        except LedgerError as e:
            message = e.message if isinstance(e, WitnessFailure) else e.diagnostics()
            _logger.warning("witness did not cosign", extra={"witness": witness.name, "error": message})
            self._record(witness, acknowledged, f"{e.reason}: {message}")
            return WitnessOutcome(witness.name, tuple(cosigned), acknowledged, message)
        return WitnessOutcome(witness.name, tuple(cosigned), acknowledged, None)

    def _record(self, witness: PolicyWitness, acknowledged: int | None, error: str | None) -> None:
        try:
            self.store.record_witness_attempt(
                witness.name, acknowledged_size=acknowledged, error=error, now_us=self._clock()
            )
        except LedgerError as e:  # the status is best effort; the next round records again
            _logger.warning("cannot record witness status", extra={"error": e.diagnostics()})

    def _submit(self, witness: PolicyWitness, post: Post, checkpoint: StoredCheckpoint, old: int) -> int:
        """Submit one checkpoint; returns the size the witness is at afterwards."""
        signed = SignedCheckpoint.from_text(checkpoint.note)
        url = add_checkpoint_url(witness)
        for _ in range(self.max_attempts):
            if old > checkpoint.tree_size:
                self._record(witness, old, None)
                return old  # it cosigned a larger tree already: nothing to do for this one
            proof = self.ledger.consistency_proof(old, checkpoint.tree_size)
            reply = post(url, add_checkpoint_body(old, proof, checkpoint.note), self.timeout_s)
            if reply.status == 200:
                line = verified_cosignature(reply.body, signed, witness)
                cosignature = Cosignature.from_signature_line(line)
                self.store.add_cosignature(
                    checkpoint.tree_size,
                    witness.name,
                    line.to_line().rstrip("\n"),
                    cosignature.timestamp,
                    self._clock(),
                )
                self._record(witness, checkpoint.tree_size, None)
                _logger.info("cosigned", extra={"witness": witness.name, "tree_size": checkpoint.tree_size})
                return checkpoint.tree_size
            if reply.status == 409:
                old = _tlog_size(reply)
                if old > self.ledger.current_size():
                    # It cosigned a tree larger than this log: a fork, or this database was restored.
                    raise WitnessFailure(
                        f"the witness has cosigned size {old}; this log has {self.ledger.current_size()} "
                        "leaves (a fork of this log, or a restored database)",
                        reason="witness-ahead",
                    )
                self._record(witness, old, None)
                _logger.info("witness is at another size", extra={"witness": witness.name, "size": old})
                continue
            raise WitnessFailure(
                f"refused the checkpoint of size {checkpoint.tree_size}: HTTP {reply.status} "
                f"{_problem_reason(reply)}",
                reason="refused",
            )
        raise WitnessFailure(
            f"still answers 409 after {self.max_attempts} attempts (size {checkpoint.tree_size})",
            reason="conflict",
        )


@dataclass(frozen=True)
class WitnessStatus:
    """One witness as the log sees it."""

    name: str
    url: str | None
    acknowledged_size: int | None
    cosigned_size: int | None
    last_attempt_us: int | None
    last_success_us: int | None
    last_error: str | None


@dataclass(frozen=True)
class CosigningStatus:
    """The newest checkpoint's cosignatures against the policy's quorum, and each witness's state."""

    checkpoint_size: int | None
    cosignatures: int
    quorum: int
    witnesses: tuple[WitnessStatus, ...]


def cosigning_status(ledger: Ledger, policy: TrustPolicy | None) -> CosigningStatus:
    """Where cosigning stands (for ``trustledger witnesses`` and monitoring)."""
    store = ledger.store
    latest = store.latest_checkpoint()
    names = {w.name for w in policy.witnesses} if policy else set()
    count = 0
    if latest is not None:
        count = len(names.intersection(store.cosigning_witnesses(latest.tree_size)))
    rows: list[WitnessStatus] = []
    for w in policy.witnesses if policy else ():
        peer = store.witness_peer(w.name)
        rows.append(
            WitnessStatus(
                name=w.name,
                url=w.url,
                acknowledged_size=peer.acknowledged_size if peer else None,
                cosigned_size=store.latest_cosigned_size(w.name),
                last_attempt_us=peer.last_attempt_us if peer else None,
                last_success_us=peer.last_success_us if peer else None,
                last_error=peer.last_error if peer else None,
            )
        )
    return CosigningStatus(
        checkpoint_size=latest.tree_size if latest else None,
        cosignatures=count,
        quorum=policy.witness_quorum if policy else 0,
        witnesses=tuple(rows),
    )


def schedule_cosigning(
    scheduler: Any, ledger: Ledger, policy_path: Path, interval_s: float
) -> Cosigner | None:
    """Add the cosigning job to the service's scheduler (None: the policy lists no witness URLs).

    The job runs apart from checkpoint issuance (its own job, one instance at a time), so a slow
    or dead witness delays only cosignatures. A bad policy is logged and leaves cosigning off.
    """
    try:
        policy = read_policy_if_present(policy_path)
        cosigner = None if policy is None else Cosigner(ledger, policy)
    except ConfigurationError as e:
        _logger.error("witness cosigning is off", extra={"error": e.diagnostics()})
        return None
    if cosigner is None or not cosigner.witnesses:
        return None

    def run() -> None:
        try:
            cosigner.collect()
        except Exception:  # noqa: BLE001 - a bug in one round must not kill the job
            _logger.exception("cosigning round failed")

    scheduler.add_job(run, "interval", seconds=interval_s, id="cosign", max_instances=1, coalesce=True)
    return cosigner
