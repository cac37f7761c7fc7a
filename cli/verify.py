"""``trustledger verify`` and ``refresh``: checking a receipt, offline or against member nodes.

The exit code of ``verify`` names the failed step (``VERIFY_EXIT``), so scripts can tell a tampered
document from a forged checkpoint or a receipt anchored outside the trust policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.core.anchor import AnchorObservation
from ledger.core.crypto import HashAlgorithm, Sm2PublicKey, new_hash
from ledger.core.policy import TrustPolicy
from ledger.core.receipt import Receipt, ReceiptVerification, verify_receipt
from ledger.errors import ChainError, ConfigurationError, InvalidReceipt
from ledger.settings import Settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3
VERIFY_EXIT = {
    "parse": 10,
    "document": 11,
    "leaf": 12,
    "seal": 13,
    "inclusion": 14,
    "checkpoint": 15,
    "key": 16,
    "signature": 17,
    "anchor": 18,
    "policy": 19,
    "origin": 20,
    "chain": 21,
    "registry": 22,
    "witness": 23,
}


def load_key(text: str) -> Sm2PublicKey:
    """A public key from a PEM, hex or key-JSON file, or hex text."""
    path = Path(text)
    if path.is_file():
        content = path.read_text().strip()
        if content.startswith("-----BEGIN"):
            return Sm2PublicKey.from_pem(content)
        if content.startswith("{"):
            return Sm2PublicKey.from_hex(json.loads(content)["public_key"])
        return Sm2PublicKey.from_hex(content)
    return Sm2PublicKey.from_hex(text)


def hash_file(path: Path, alg: HashAlgorithm) -> bytes:
    """Hash a file in 1 MiB chunks (never reads it whole)."""
    hasher = new_hash(alg)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.digest()


def _read_receipt(path: str) -> Receipt | int:
    """The receipt in ``path``, or the exit code after saying why it cannot be read."""
    try:
        return Receipt.from_json(Path(path).read_bytes())
    except OSError as e:
        print(f"cannot read receipt: {e}", file=sys.stderr)
        return EXIT_ERROR
    except InvalidReceipt as e:
        print(f"FAILED at step parse: {e.message}", file=sys.stderr)
        return VERIFY_EXIT["parse"]


def _read_policy(path: str) -> TrustPolicy | int:
    """The trust policy in ``path``, or the exit code after saying why it cannot be used."""
    try:
        return TrustPolicy.from_json(Path(path).read_bytes())
    except OSError as e:
        print(f"cannot read policy: {e}", file=sys.stderr)
        return EXIT_ERROR
    except ConfigurationError as e:
        print(f"FAILED at step policy: {e.message}", file=sys.stderr)
        return VERIFY_EXIT["policy"]


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a receipt offline; the exit code names the failed step."""
    receipt = _read_receipt(args.receipt)
    if isinstance(receipt, int):
        return receipt
    policy = _read_policy(args.policy) if args.policy else None
    if isinstance(policy, int):
        return policy
    document_hash = None
    if args.file:
        try:
            document_hash = hash_file(Path(args.file), receipt.record.content_hash.alg)
        except OSError as e:
            print(f"cannot read document: {e}", file=sys.stderr)
            return EXIT_ERROR
    trusted = load_key(args.key) if args.key else None
    urls: Sequence[str] = args.rpc or ()
    if not urls and policy is not None and policy.chain is not None and not args.offline:
        urls = policy.chain.rpc_urls
    try:
        # Offline first: a receipt that fails any pinned fact (its registry and chain among them)
        # fails before a single chain endpoint is asked anything.
        result = verify_receipt(receipt, document_hash=document_hash, trusted_key=trusted, policy=policy)
        if args.rpc or (urls and receipt.anchor is not None):
            observations = _observe_anchor(receipt, urls, args.rpc_timeout, policy)
            result = verify_receipt(
                receipt,
                document_hash=document_hash,
                trusted_key=trusted,
                policy=policy,
                anchor_observations=observations,
            )
    except InvalidReceipt as e:
        print(f"FAILED at step {e.step}: {e.message}", file=sys.stderr)
        return VERIFY_EXIT.get(e.step, EXIT_FAILED)
    _print_verification(receipt, result, policy)
    return EXIT_OK


def _print_verification(receipt: Receipt, result: ReceiptVerification, policy: TrustPolicy | None) -> None:
    """What was verified, and — labelled as such — what was not."""
    print(f"OK: record at log index {result.index} in the tree of size {result.tree_size}")
    print(f"  root {result.root_hash.hex()}")
    print(f"  checkpoint signed {result.checkpoint_time} by {result.origin} with log key {result.log_key_id}")
    print(f"  checks passed: {', '.join(result.steps)}")
    if policy is not None:
        print(f"  trust policy serial {policy.serial}, fingerprint {result.policy_fingerprint}")
    if result.sealed_by:
        print(f"  sealed by key {result.sealed_by}")
    if policy is not None and policy.witnesses:
        cosigners = ", ".join(result.cosigned_by) or "none"
        print(f"  cosigned by {cosigners} (quorum {result.witness_quorum})")
    if receipt.anchor is not None:
        a = receipt.anchor
        where = f"chain {a.chain_id}, registry {a.registry}, block {a.block_number}, tx {a.tx_hash}"
        if result.anchored_on:
            confirmed = ", ".join(result.anchored_on)
            print(f"  anchored as checkpoint #{a.sequence} ({where}); confirmed by {confirmed}")
        else:
            print(f"  anchor claimed, NOT checked on chain ({where}); give --rpc URL to check it")
    else:
        print("  not anchored yet: refresh the receipt later (trustledger refresh)")
    print(f"  record id {result.record_id}: not bound by the proof (the id is not part of the leaf)")
    if not result.document_checked:
        print("  note: no --file given; the document itself was not compared")
    if result.unpinned:
        print("  warning: not pinned, taken from the receipt itself (give --policy FILE to pin them):")
        for fact in result.unpinned:
            print(f"    - {fact}")


def _observe_anchor(
    receipt: Receipt, urls: Sequence[str], timeout_s: float, policy: TrustPolicy | None
) -> list[AnchorObservation]:
    """Ask each endpoint about the receipt's anchor; an endpoint that cannot answer fails the step.

    With a policy the registry read is the policy's (verify_receipt has already refused a receipt
    naming any other); without one it is the receipt's own claim.
    """
    from ledger.chain.registry import Endpoint, RegistryClient
    from ledger.core.leaf import encode_leaf

    anchor = receipt.anchor
    if anchor is None:
        raise InvalidReceipt(
            "the receipt has no anchor section yet; refresh it once its checkpoint is anchored",
            step="anchor",
            reason="not-anchored",
        )
    registry, chain_id = anchor.registry, anchor.chain_id
    if policy is not None and policy.chain is not None:
        registry = next(r for r in policy.chain.registries if r.lower() == anchor.registry.lower())
        chain_id = policy.chain.chain_id
    endpoints = [Endpoint.http(url, timeout_s) for url in urls]
    client = RegistryClient(endpoints, registry_address=registry, chain_id=chain_id)
    proof = [bytes.fromhex(h) for h in receipt.inclusion.hashes]
    leaf = encode_leaf(receipt.leaf_data())
    observations = []
    for endpoint in endpoints:
        try:
            observations.append(
                client.observe(endpoint, anchor, leaf=leaf, index=receipt.inclusion.index, proof=proof)
            )
        except ChainError as e:
            raise InvalidReceipt(
                f"{endpoint.name}: cannot check the anchor: {e.message}", step="anchor"
            ) from e
    return observations


def cmd_refresh(args: argparse.Namespace, settings: Settings) -> int:
    """Refresh a receipt to its anchored form (from the API with --api, else the local database)."""
    old = _read_receipt(args.receipt)
    if isinstance(old, int):
        return old
    if args.api:
        import httpx

        try:
            response = httpx.post(
                args.api.rstrip("/") + "/v1/receipts/refresh",
                content=old.to_json(),
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
        except httpx.HTTPError as e:
            print(f"cannot reach {args.api}: {e}", file=sys.stderr)
            return EXIT_ERROR
        if response.status_code != 200:
            print(f"refresh refused ({response.status_code}): {response.text}", file=sys.stderr)
            return EXIT_FAILED
        fresh = Receipt.from_json(response.content)
    else:
        from ledger.service import open_ledger

        fresh = open_ledger(settings).receipt(old.record.id)
    if fresh.record != old.record:
        print("the refreshed receipt is for a different record; not written", file=sys.stderr)
        return EXIT_FAILED
    Path(args.output or args.receipt).write_text(fresh.to_json())
    state = "anchored" if fresh.anchor else "not anchored yet"
    print(f"{args.output or args.receipt}: tree size {fresh.inclusion.tree_size}, {state}")
    return EXIT_OK if fresh.anchor else EXIT_FAILED


def add_verify_commands(
    sub: Any,
    settings_of: Callable[[argparse.Namespace], Settings],
    common_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Register ``verify`` and ``refresh`` on the ``trustledger`` parser."""
    verify = sub.add_parser("verify", help="verify a receipt offline", description=cmd_verify.__doc__)
    verify.set_defaults(handler=cmd_verify)
    verify.add_argument("receipt", help="receipt JSON file")
    verify.add_argument("--file", help="the document; its hash must equal the record's content hash")
    trust = verify.add_mutually_exclusive_group()
    trust.add_argument(
        "--policy",
        help="the consortium's trust policy (JSON): pins origin, log keys, chain, registries, witnesses",
    )
    trust.add_argument("--key", help="the published log key you trust: PEM or hex file, or hex")
    reads = verify.add_mutually_exclusive_group()
    reads.add_argument(
        "--rpc",
        action="append",
        metavar="URL",
        help="a chain member's JSON-RPC endpoint; the anchor must be confirmed by each one given "
        "(default with --policy: the policy's rpc_urls)",
    )
    reads.add_argument("--offline", action="store_true", help="no chain reads, even with a policy")
    verify.add_argument("--rpc-timeout", type=float, default=10.0, help="seconds per JSON-RPC request")
    refresh = sub.add_parser(
        "refresh",
        help="refresh a receipt to its anchored form (exit 1: not yet)",
        description=cmd_refresh.__doc__,
    )
    refresh.set_defaults(handler=lambda args: cmd_refresh(args, settings_of(args)))
    common_options(refresh)
    refresh.add_argument("receipt")
    refresh.add_argument("--api", help="the trustledger API base URL (default: the local database)")
    refresh.add_argument("-o", "--output", help="write here instead of over the receipt")
