"""The ``trustledger`` command: a thin shell over library functions.

Every failure is a message on stderr and a non-zero exit code, never a traceback. ``verify`` and
``refresh`` live in :mod:`cli.verify` (its exit codes name the failed step), the trust policy,
keys, witness and credit commands in their own modules of this package (:mod:`cli.credit`,
:mod:`cli.keys`, :mod:`cli.policy`, :mod:`cli.witness`).
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cli.credit import add_credit_commands, role_argument
from cli.keys import add_key_commands
from cli.policy import add_policy_commands
from cli.verify import EXIT_ERROR, EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_verify_commands, load_key
from cli.witness import add_witness_commands
from credit.errors import (
    CreditError,
    InvalidDate,
    InvalidEvent,
    InvalidIdentifier,
    InvalidText,
    RulebookError,
    UnknownPurpose,
)
from ledger.core.crypto import Sm2PublicKey
from ledger.errors import ConfigurationError, InvalidReceipt, InvalidRequest, LedgerError
from ledger.keys import api_key_hash, new_api_key
from ledger.settings import Settings

ROLES = ("notarizer", "auditor", "approval", "officer", "admin", "source:<role> (e.g. source:court)")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    return Settings(**overrides)  # type: ignore[arg-type]


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="key files and SQLite database (default: var, or TRUSTLEDGER_DATA_DIR)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")


def cmd_init(args: argparse.Namespace) -> int:
    """Create key files and the database schema."""
    from credit.setup import open_credit
    from ledger.service import init_deployment, open_ledger

    settings = _settings(args)
    result = init_deployment(settings)
    credit = open_credit(open_ledger(settings), settings, create=True)
    rulebook = credit.ensure_rulebook()
    credit.ledger.close()
    print(f"log key:    {settings.log_key_path} ({'created' if result.created_key else 'kept'})")
    print(f"database:   {result.database_url}")
    print(f"public key: {result.public_key.hex()}")
    print(f"key id:     {result.public_key.key_id()}")
    print(f"rulebook:   {rulebook}")
    config = settings.chain_config()
    if config is None:
        print("chain:      none (anchoring is off)")
    else:
        made = " (created)" if result.created_chain else ""
        print(f"chain:      {config.backend} {config.chain_id}, registry {config.registry_address}{made}")
    print(f"policy:     {settings.policy_path} ({'created' if result.created_policy else 'kept'})")
    return EXIT_OK


def _tcp_listener(sock: socket.socket) -> socket.socket:
    """Re-wrap uvicorn's multi-worker listener with ``proto=IPPROTO_TCP``.

    uvicorn's ``bind_socket`` creates it with proto 0; accepted sockets inherit that and asyncio
    then skips TCP_NODELAY, so every keep-alive request after the first waits ~40 ms for a
    delayed ACK (uvicorn issue #3149; measured 21 vs 261 requests/s on one connection here).
    """
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API service (uvicorn) with the sequencer and checkpoint scheduler inside."""
    import os

    import uvicorn

    from ledger.service import init_deployment

    settings = _settings(args)
    if args.init:
        init_deployment(settings)
    os.environ["TRUSTLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        os.environ["TRUSTLEDGER_DATABASE_URL"] = settings.database_url
    config = uvicorn.Config(
        "api.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default; rate limits are per address,
        # so only proxies named in the settings may state a caller's address.
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips or "",
    )
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[_tcp_listener(config.bind_socket())]).run()
    else:
        uvicorn.Server(config).run()
    return EXIT_OK


def cmd_keys_create(args: argparse.Namespace) -> int:
    """Register a calling system and print its API key (shown once, stored hashed)."""
    from ledger.service import open_ledger

    ledger = open_ledger(_settings(args))
    key = new_api_key()
    try:
        ledger.register_client(args.name, args.role, api_key_hash(key))
    except Exception as e:  # noqa: BLE001 - IntegrityError from a duplicate name, reported plainly
        raise ConfigurationError(
            f"cannot add {args.name!r}: it probably exists already ({type(e).__name__})"
        ) from e
    print(key)
    return EXIT_OK


def cmd_seal_key_add(args: argparse.Namespace) -> int:
    """Register an SM2 public key a calling system seals its records with."""
    from ledger.service import open_ledger

    text = args.public_key
    key = (
        Sm2PublicKey.from_pem(Path(text).read_text()) if Path(text).is_file() else Sm2PublicKey.from_hex(text)
    )
    ledger = open_ledger(_settings(args))
    ledger.register_seal_key(key.key_id(), args.system, key.hex())
    print(key.key_id())
    return EXIT_OK


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """Sequence everything pending and issue a checkpoint now."""
    from ledger.service import open_ledger

    ledger = open_ledger(_settings(args))
    ledger.sequence_all()
    issued = ledger.issue_checkpoint()
    if issued is None:
        print("nothing to checkpoint (empty log, or another process holds the lock)", file=sys.stderr)
        return EXIT_FAILED
    print(issued.note, end="")
    return EXIT_OK


def cmd_receipt(args: argparse.Namespace) -> int:
    """Write a record's receipt (from the local database)."""
    from ledger.service import open_ledger

    receipt = open_ledger(_settings(args)).receipt(args.record_id)
    text = receipt.to_json()
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return EXIT_OK


def cmd_public_key(args: argparse.Namespace) -> int:
    """Print the log's public key (PEM)."""
    from ledger.keyfiles import KeyFiles
    from ledger.keys import load_log_key

    settings = _settings(args)
    print(load_log_key(settings.log_key_path, KeyFiles.for_settings(settings)).public_key().to_pem(), end="")
    return EXIT_OK


def cmd_anchor(args: argparse.Namespace) -> int:
    """Anchor the newest checkpoint now and wait until it is final."""
    from ledger.service import open_anchorer, open_ledger

    settings = _settings(args)
    ledger = open_ledger(settings)
    ledger.sequence_all()
    anchorer = open_anchorer(ledger, settings)
    if anchorer is None:
        print("anchoring is off (chain backend none)", file=sys.stderr)
        return EXIT_FAILED
    try:
        row = anchorer.anchor_now(timeout_s=args.timeout)
    finally:
        anchorer.close()
    if row is None:
        print("nothing to anchor (empty log)", file=sys.stderr)
        return EXIT_FAILED
    print(f"anchored tree size {row.tree_size} as #{row.sequence} in block {row.block_number}")
    print(f"tx {row.tx_hash}")
    return EXIT_OK


def cmd_anchors(args: argparse.Namespace) -> int:
    """Show how far behind anchoring is and the newest anchors."""
    from ledger.anchoring import anchoring_status
    from ledger.service import open_ledger

    ledger = open_ledger(_settings(args))
    status = anchoring_status(ledger)
    age = f"{status.oldest_unanchored_age_s:.1f} s" if status.oldest_unanchored_age_s is not None else "-"
    print(
        f"log size {status.log_size}, anchored {status.anchored_size}, "
        f"{status.entries_behind} entries behind (oldest unanchored: {age})"
    )
    if status.last_error:
        print(f"last error: {status.last_error}")
    for row in ledger.anchors(limit=args.limit):
        sequence = "-" if row.sequence is None else row.sequence
        block = "-" if row.block_number is None else row.block_number
        print(
            f"  size {row.tree_size:>10}  {row.state:<10} #{sequence} block {block} tx {row.tx_hash or '-'}"
        )
    return EXIT_OK


def cmd_chain_deploy(args: argparse.Namespace) -> int:
    """Deploy the AnchorRegistry on a JSON-RPC chain, register this deployment and write chain.json."""
    from ledger.chain.config import ChainBackend, ChainConfig
    from ledger.chain.keystore import create_keystore, load_keystore
    from ledger.chain.registry import Endpoint, RegistryClient, deploy_registry
    from ledger.keyfiles import KeyFiles
    from ledger.service import record_chain_in_policy

    settings = _settings(args)
    files = KeyFiles.for_settings(settings, create_kek=True)
    keystore, password = Path(args.keystore), Path(args.password_file)
    if keystore.exists():
        account = load_keystore(keystore, password, files)
    else:
        account = create_keystore(keystore, password, files)
    if args.fund_from_key:  # devnet only: a well-known prefunded account pays the anchoring account
        _fund(args.rpc[0], args.fund_from_key, account.address)
    endpoint = Endpoint.http(args.rpc[0], args.timeout)
    chain_id = int(endpoint.w3.eth.chain_id)
    address = deploy_registry(endpoint, account, chain_id=chain_id, sm3_precompile=args.sm3_precompile)
    client = RegistryClient([endpoint], registry_address=address, chain_id=chain_id, account=account)
    client.transact("addMember", account.address, args.member_name or settings.log_origin)
    config = ChainConfig(
        backend=ChainBackend.RPC,
        chain_id=chain_id,
        registry_address=address,
        rpc_urls=tuple(args.rpc),
        keystore_path=keystore.resolve(),
        keystore_password_file=password.resolve(),
        confirmations=args.confirmations,
    )
    config.save(settings.chain_config_path)
    record_chain_in_policy(settings, config)  # an existing policy.json names the new registry
    print(f"registry {address} on chain {chain_id}; member {account.address}")
    print(f"wrote {settings.chain_config_path}")
    return EXIT_OK


def _fund(url: str, funder_key: str, address: str) -> None:
    """Send 100 ether from a devnet account to ``address`` (for the devnet's anchoring account)."""
    from eth_account import Account

    from ledger.chain.registry import Endpoint, fee_fields

    w3 = Endpoint.http(url, 10).w3
    funder = Account.from_key(funder_key)
    tx = {
        "to": address,
        "value": 100 * 10**18,
        "gas": 21_000,
        "nonce": w3.eth.get_transaction_count(funder.address, "pending"),
        "chainId": w3.eth.chain_id,
        **fee_fields(w3, None, 0),
    }
    tx_hash = w3.eth.send_raw_transaction(funder.sign_transaction(tx).raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)


def cmd_audit(args: argparse.Namespace) -> int:
    """Re-derive the whole tree and check every stored node and checkpoint; then compare every
    stored credit row with its ledger record, and every credit record with its row."""

    from credit.integrity import scan as scan_credit_rows
    from ledger.audit import audit_log
    from ledger.policy_file import read_policy_if_present
    from ledger.service import open_ledger

    settings = _settings(args)
    ledger = open_ledger(settings)
    # Checkpoint keys: --key pins one; otherwise the policy's key for each size (--policy, or the
    # deployment's own policy.json), so checkpoints from before a key rotation are checked too.
    policy = (
        None
        if args.key
        else read_policy_if_present(Path(args.policy) if args.policy else settings.policy_path)
    )
    if args.policy and policy is None:
        raise ConfigurationError(f"no trust policy at {args.policy}")
    report = audit_log(ledger, load_key(args.key) if args.key else None, policy=policy)
    for finding in report.findings:
        where = f" (log index {finding.log_index})" if finding.log_index is not None else ""
        print(f"FINDING {finding.where}{where}: {finding.problem}")
    # The ledger knows nothing of credit (ledger/ never imports credit): the CLI composes both.
    credit = None
    if ledger.has_table("credit_subject"):
        credit = scan_credit_rows(ledger)
        for problem in credit.problems:
            print(f"FINDING credit: {problem}")
    ok = report.ok and (credit is None or credit.clean)
    findings = len(report.findings) + (len(credit.problems) if credit is not None else 0)
    rows = (
        f"{credit.rows} credit rows and {credit.records} credit records compared"
        if credit is not None
        else "no credit tables"
    )
    print(
        f"{'OK' if ok else 'FAILED'}: {report.leaves_checked} leaves, {report.tiles_checked} tiles, "
        f"{report.checkpoints_checked} checkpoints checked; {rows}; tree size {report.tree_size}; "
        f"{findings} findings"
    )
    return EXIT_OK if ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(
        prog="trustledger", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        _common_options(p)
        return p

    command("init", cmd_init, "create the log key, the subject secret and the database schema")
    serve = command("serve", cmd_serve, "run the audit API with the sequencer and checkpoint jobs")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--init", action="store_true", help="run init first (idempotent)")
    keys = command("add-client", cmd_keys_create, "register a calling system and print its API key")
    keys.add_argument("name")
    keys.add_argument("--role", type=role_argument, required=True, help="; ".join(ROLES))
    seal = command("add-seal-key", cmd_seal_key_add, "register a calling system's SM2 seal public key")
    seal.add_argument("system")
    seal.add_argument("public_key", help="hex x||y (or 04||x||y), or a PEM file")
    command("checkpoint", cmd_checkpoint, "sequence pending records and issue a checkpoint now")
    receipt = command("receipt", cmd_receipt, "write a record's receipt from the local database")
    receipt.add_argument("record_id")
    receipt.add_argument("-o", "--output")
    command("public-key", cmd_public_key, "print the log's public key (PEM)")
    add_verify_commands(sub, _settings, _common_options)
    anchor = command("anchor", cmd_anchor, "anchor the newest checkpoint now and wait until it is final")
    anchor.add_argument("--timeout", type=float, default=120.0)
    anchors = command("anchors", cmd_anchors, "how far behind anchoring is; the newest anchors")
    anchors.add_argument("--limit", type=int, default=10)
    deploy = command(
        "chain-deploy", cmd_chain_deploy, "deploy the registry on a JSON-RPC chain, write chain.json"
    )
    deploy.add_argument("--rpc", action="append", required=True, metavar="URL", help="member endpoint(s)")
    deploy.add_argument("--keystore", required=True, help="encrypted anchoring key (created if missing)")
    deploy.add_argument("--password-file", required=True, help="its password file (created if missing)")
    deploy.add_argument("--confirmations", type=int, default=0)
    deploy.add_argument(
        "--sm3-precompile", help="address of the chain's SM3 precompile (FISCO BCOS: 0x…100a)"
    )
    deploy.add_argument("--member-name", help="name registered for this deployment (default: the log origin)")
    deploy.add_argument("--fund-from-key", help="devnet only: private key of a prefunded account to pay gas")
    deploy.add_argument("--timeout", type=float, default=30.0)
    audit = command("audit", cmd_audit, "re-derive the tree and check every stored node and checkpoint")
    audit.add_argument("--key", help="the published log key (default: the policy's keys, else the local key)")
    audit.add_argument("--policy", help="the trust policy (default: policy.json in the data dir, if any)")
    add_credit_commands(sub, _settings, _common_options)
    add_policy_commands(sub, _settings, _common_options)
    add_witness_commands(sub, _settings, _common_options)
    add_key_commands(sub, _settings, _common_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trustledger`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    try:
        code: int = args.handler(args)
    except (InvalidRequest, InvalidReceipt) as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except LedgerError as e:
        print(f"error: {e.diagnostics()}", file=sys.stderr)
        return EXIT_ERROR
    except (InvalidIdentifier, InvalidDate, RulebookError, InvalidEvent, UnknownPurpose, InvalidText) as e:
        print(f"error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except CreditError as e:
        print(f"error: {e.diagnostics()}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as e:  # settings validation
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code
