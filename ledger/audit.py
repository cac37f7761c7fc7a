"""Full audit of a stored log: re-derive the tree from every leaf and check everything stored.

Catches any direct edit of the database: a leaf, a stored leaf hash, a tile (stored tree node), the
log state, a checkpoint's text, signature or columns, and a fork between consecutive checkpoints.
Each finding names the log index (or tile, or checkpoint) it touches.

Checkpoint signatures are checked against one pinned key, or against a trust policy: each
checkpoint must carry a valid signature of a log key the policy allows for its tree size (so
checkpoints signed before a key rotation verify with the old key, and an old key signing after
the rotation is a finding).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ledger.core.checkpoint import SignedCheckpoint
from ledger.core.crypto import Sm2PublicKey
from ledger.core.leaf import decode_leaf
from ledger.core.merkle import CompactRange, TreeHasher, verify_consistency
from ledger.core.policy import TrustPolicy
from ledger.core.tiles import TILE_HEIGHT, TileId, TileWriter
from ledger.errors import InvalidProof, InvalidRequest, InvalidSignature, LedgerError
from ledger.log import Ledger
from ledger.stored import StoredCheckpoint


@dataclass(frozen=True)
class Finding:
    """One inconsistency: where it is and what is wrong."""

    where: str
    problem: str
    log_index: int | None = None


@dataclass
class AuditReport:
    """The result of :func:`audit_log`."""

    tree_size: int = 0
    leaves_checked: int = 0
    tiles_checked: int = 0
    checkpoints_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.findings


def audit_log(
    ledger: Ledger, public_key: Sm2PublicKey | None = None, *, policy: TrustPolicy | None = None
) -> AuditReport:
    """Audit the whole log behind ``ledger``.

    Checkpoints are checked against ``public_key`` if given, else against the log keys ``policy``
    allows for each checkpoint's size, else against the ledger's current key.
    """
    store, hasher = ledger.store, ledger.hasher
    report = AuditReport()
    if public_key is None and policy is not None:
        if policy.log.origin != ledger.origin or policy.log.hash_alg != ledger.hash_alg:
            report.findings.append(
                Finding("trust policy", f"the policy describes log {policy.log.origin}, not {ledger.origin}")
            )
        key: Sm2PublicKey | TrustPolicy = policy
    else:
        key = public_key or ledger.public_key
    state = store.state()
    report.tree_size = int(state.size)
    checkpoints = store.checkpoints()
    wanted_sizes = {c.tree_size for c in checkpoints}
    roots: dict[int, bytes] = {0: hasher.empty_root()}
    frontier = CompactRange(hasher)
    rebuilt = TileWriter(hasher, 0, {})
    expected = 0
    for index, record_id, leaf, stored_hash in store.iter_sequenced():
        if index != expected:
            report.findings.append(
                Finding("record", f"log indices {expected}..{index - 1} are missing", expected)
            )
            break
        expected += 1
        where = f"record {record_id} at index {index}"
        try:
            data = decode_leaf(leaf)
            if data.seal is not None and data.seal.public_key.key_id() != data.seal.key_id:
                raise InvalidRequest("seal key id mismatch")
        except InvalidRequest as e:
            report.findings.append(Finding(where, f"leaf does not decode: {e.message}", index))
        leaf_hash = hasher.leaf_hash(leaf)
        if leaf_hash != stored_hash:
            report.findings.append(
                Finding(where, "stored leaf hash differs from the hash of the leaf", index)
            )
        frontier.append(leaf_hash)
        rebuilt.append([leaf_hash])
        if frontier.size in wanted_sizes:
            roots[frontier.size] = frontier.root()
    report.leaves_checked = expected
    if expected != report.tree_size:
        report.findings.append(
            Finding("log state", f"log state says size {report.tree_size}, {expected} leaves are sequenced")
        )
    if frontier.root() != bytes(state.root_hash):
        report.findings.append(Finding("log state", "stored root hash differs from the root of the leaves"))
    _check_tiles(store.iter_tiles(), rebuilt, report)
    _check_checkpoints(ledger, hasher, key, checkpoints, roots, report)
    return report


def _check_tiles(
    stored_tiles: Iterable[tuple[TileId, bytes]], rebuilt: TileWriter, report: AuditReport
) -> None:
    """Compare stored tiles with the rebuilt ones, lowest level first.

    A node whose leaves already carry a finding is not reported again: one edited leaf is one
    finding, not one per ancestor.
    """
    derived = rebuilt.dirty_tiles()
    flagged = sorted(f.log_index for f in report.findings if f.log_index is not None)
    seen: set[TileId] = set()
    for tile_id, blob in sorted(stored_tiles, key=lambda item: (item[0].level, item[0].index)):
        seen.add(tile_id)
        report.tiles_checked += 1
        where = f"tile {tile_id.level}/{tile_id.index}"
        mine = derived.get(tile_id)
        if mine is None:
            report.findings.append(Finding(where, "tile beyond the tree"))
            continue
        theirs = [blob[i : i + 32] for i in range(0, len(blob), 32)]
        if len(theirs) != len(mine):
            report.findings.append(Finding(where, f"width {len(theirs)}, expected {len(mine)}"))
        span = 1 << (TILE_HEIGHT * tile_id.level)
        for offset, (a, b) in enumerate(zip(theirs, mine, strict=False)):
            if a == b:
                continue
            node = tile_id.index * 256 + offset
            first, last = node * span, (node + 1) * span - 1
            if any(first <= i <= last for i in flagged):
                continue
            report.findings.append(
                Finding(
                    where,
                    f"node {node} at height {TILE_HEIGHT * tile_id.level} "
                    f"(leaves {first}..{last}) differs from the one derived from the leaves",
                    first,
                )
            )
            flagged.append(first)
    for tile_id in derived.keys() - seen:
        report.findings.append(Finding(f"tile {tile_id.level}/{tile_id.index}", "tile is missing"))


def _policy_signature_problem(signed: SignedCheckpoint, policy: TrustPolicy, origin: str) -> str | None:
    """Why ``signed`` lacks a valid signature of a key the policy allows for its size (None: it has one)."""
    size = signed.checkpoint.size
    allowed = policy.log_keys_for(size)
    errors: list[str] = []
    for entry in allowed:
        try:
            signed.verify(entry.key(), origin)
            return None
        except InvalidSignature as e:
            errors.append(f"{entry.key_id}: {e.message}")
    for entry in policy.log.keys:
        if entry in allowed or signed.signature_of(origin, entry.key()) is None:
            continue
        until = "on" if entry.until_size is None else f"up to {entry.until_size - 1}"
        state = "revoked" if entry.revoked else f"allowed for sizes {entry.from_size} {until}"
        return f"signed by log key {entry.key_id} ({state}), not by a key the policy allows for size {size}"
    keys = ", ".join(e.key_id for e in allowed) or "none"
    detail = f" ({'; '.join(errors)})" if errors else ""
    return f"no valid signature of a log key the policy allows for size {size} (allowed: {keys}){detail}"


def _check_checkpoints(
    ledger: Ledger,
    hasher: TreeHasher,
    key: Sm2PublicKey | TrustPolicy,
    checkpoints: list[StoredCheckpoint],
    roots: dict[int, bytes],
    report: AuditReport,
) -> None:
    previous: tuple[int, bytes] | None = None
    for stored in checkpoints:
        where = f"checkpoint #{stored.seq} (size {stored.tree_size})"
        report.checkpoints_checked += 1
        try:
            signed = SignedCheckpoint.from_text(stored.note)
            if isinstance(key, TrustPolicy):
                problem = _policy_signature_problem(signed, key, ledger.origin)
                if problem is not None:
                    report.findings.append(Finding(where, problem))
                    continue
            else:
                signed.verify(key, ledger.origin)
        except (InvalidRequest, InvalidSignature) as e:
            report.findings.append(Finding(where, f"signed note is invalid: {e.message}"))
            continue
        cp = signed.checkpoint
        if (cp.size, cp.root_hash) != (stored.tree_size, bytes(stored.root_hash)):
            report.findings.append(Finding(where, "stored columns differ from the signed note"))
        if cp.origin != ledger.origin or cp.hash_alg != ledger.hash_alg:
            report.findings.append(Finding(where, "checkpoint names another origin or hash algorithm"))
        derived = roots.get(cp.size)
        if derived is None:
            report.findings.append(Finding(where, "checkpoint is beyond the sequenced leaves"))
        elif derived != cp.root_hash:
            report.findings.append(
                Finding(where, "signed root differs from the root of the stored leaves at that size")
            )
        if previous is not None and cp.size <= report.tree_size:
            try:
                proof = ledger.consistency_proof(previous[0], cp.size)
                verify_consistency(hasher, previous[0], cp.size, previous[1], cp.root_hash, proof)
            except (InvalidProof, LedgerError, LookupError, ValueError) as e:
                report.findings.append(
                    Finding(where, f"not consistent with the checkpoint at size {previous[0]}: {e}")
                )
        previous = (cp.size, cp.root_hash)
