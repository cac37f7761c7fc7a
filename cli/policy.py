"""``trustledger policy show|export``: the deployment's trust policy (a thin shell).

The policy (``policy.json`` in the data directory, written by ``trustledger init``) is what the
consortium publishes out of band and verifiers pin with ``trustledger verify --policy FILE``.
``show`` prints a human summary with the fingerprint to compare copies by; ``export`` prints or
writes the JSON. Exit codes: 0 done, 3 the policy is missing or invalid.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.core.policy import TrustPolicy
from ledger.settings import Settings


def _policy(args: argparse.Namespace, settings: Settings) -> TrustPolicy:
    from ledger.policy_file import read_policy

    return read_policy(Path(args.file) if args.file else settings.policy_path)


def policy_summary(policy: TrustPolicy) -> list[str]:
    """The lines ``policy show`` prints."""
    lines = [
        f"trust policy serial {policy.serial} (format {policy.format} v{policy.version})",
        f"fingerprint (SM3): {policy.fingerprint()}",
        f"log:       {policy.log.origin} ({policy.log.hash_alg.value})",
    ]
    for key in policy.log.keys:
        until = "open" if key.until_size is None else f"< {key.until_size}"
        state = "  REVOKED" if key.revoked else ""
        lines.append(f"  key {key.key_id}  tree sizes {key.from_size} .. {until}{state}")
    chain = policy.chain
    if chain is None:
        lines.append("chain:     none (the log is not anchored)")
    else:
        lines.append(f"chain:     id {chain.chain_id}, {chain.confirmations} confirmations required")
        lines.extend(f"  registry {address}" for address in chain.registries)
        lines.extend(f"  rpc      {url}" for url in chain.rpc_urls)
        if not chain.rpc_urls:
            lines.append("  rpc      none published (verify with --rpc URL)")
    lines.append(f"witnesses: quorum {policy.witness_quorum} of {len(policy.witnesses)}")
    for witness in policy.witnesses:
        key_id = witness.key().key_id()
        lines.append(f"  {witness.name}  key {key_id}" + (f"  {witness.url}" if witness.url else ""))
    return lines


def cmd_policy_show(args: argparse.Namespace, settings: Settings) -> int:
    """Print a summary of the trust policy and its fingerprint."""
    sys.stdout.write("".join(f"{line}\n" for line in policy_summary(_policy(args, settings))))
    return 0


def cmd_policy_export(args: argparse.Namespace, settings: Settings) -> int:
    """Print the trust policy JSON, or write it to ``-o FILE``."""
    text = _policy(args, settings).to_json()
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def add_policy_commands(
    sub: Any,
    settings_of: Callable[[argparse.Namespace], Settings],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``policy show`` and ``policy export`` to the top-level subparsers."""
    text = "the deployment's trust policy (what verifiers pin)"
    policy = sub.add_parser("policy", help=text, description=text)
    psub = policy.add_subparsers(dest="policy_command", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace, Settings], int], help_text: str) -> Any:
        p = psub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=lambda args: handler(args, settings_of(args)))
        common(p)
        p.add_argument("--file", help="a policy file to read instead of the data dir's policy.json")
        return p

    command("show", cmd_policy_show, "summary of the trust policy, with its fingerprint")
    export = command("export", cmd_policy_export, "the trust policy JSON, to publish")
    export.add_argument("-o", "--output", help="write here instead of stdout")
