"""``trustledger witness …`` (run a C2SP tlog-witness) and ``trustledger witnesses`` (the log's view).

- ``witness init --data-dir D --name NAME``: create the witness's SM2 key (``D/witness-key.json``);
- ``witness serve --data-dir D --policy FILE [--policy FILE …] --port P``: serve ``add-checkpoint``
  for the logs of the given trust policies; the state is ``D/witness.db``;
- ``witness public-key --data-dir D``: the witness's entry for a policy's ``witnesses`` list;
- ``witnesses``: on the log's side, each policy witness's acknowledged size, newest cosignature
  and last error.

Exit codes as the rest of the CLI: 0 done, 2 bad input, 3 other errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.core.cosignature import cosignature_key_hash
from ledger.core.policy import TrustPolicy
from ledger.errors import ConfigurationError
from ledger.keyfiles import KeyFiles
from ledger.settings import Settings
from ledger.witness.keyfile import KEY_FILE, create_witness_key, load_witness_key

STATE_FILE = "witness.db"
SettingsOf = Callable[[argparse.Namespace], Settings]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _policy(path: str) -> TrustPolicy:
    try:
        return TrustPolicy.from_json(Path(path).read_bytes())
    except OSError as e:
        raise ConfigurationError(f"cannot read the trust policy {path}: {e}") from e


def _key_files(args: argparse.Namespace, *, create_kek: bool = False) -> KeyFiles:
    """The witness's key-encryption key: TRUSTLEDGER_KEK(_FILE), or in development ``<data dir>.kek``."""
    return KeyFiles.for_settings(Settings(data_dir=Path(args.data_dir)), create_kek=create_kek)


def cmd_witness_init(args: argparse.Namespace) -> int:
    """Create the witness key."""
    path = Path(args.data_dir) / KEY_FILE
    key = create_witness_key(path, args.name, _key_files(args, create_kek=True))
    _out(f"witness key: {path} (created)")
    _out(f"name:        {args.name}")
    _out(f"public key:  {key.public_key().hex()}")
    return 0


def cmd_witness_public_key(args: argparse.Namespace) -> int:
    """Print the witness's entry for a trust policy (name, public key, url)."""
    name, key = load_witness_key(Path(args.data_dir) / KEY_FILE, _key_files(args))
    entry: dict[str, Any] = {"name": name, "public_key": key.public_key().hex(), "url": args.url}
    _out(json.dumps(entry, indent=2))
    sys.stderr.write(f"key hash {cosignature_key_hash(name, key.public_key()).hex()}\n")
    return 0


def cmd_witness_serve(args: argparse.Namespace) -> int:
    """Run the witness's HTTP service until interrupted."""
    import uvicorn

    from ledger.witness.http import create_witness_app
    from ledger.witness.service import Witness
    from ledger.witness.storage import WitnessStore

    data_dir = Path(args.data_dir)
    name, key = load_witness_key(data_dir / KEY_FILE, _key_files(args))
    policies = [_policy(p) for p in args.policy]
    store = WitnessStore(data_dir / STATE_FILE)
    witness = Witness(name, key, policies, store)
    sys.stderr.write(f"witness {name} for {', '.join(witness.origins)} on {args.host}:{args.port}\n")
    try:
        uvicorn.run(
            create_witness_app(witness),
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            limit_concurrency=args.max_connections,  # beyond it: 503, not an unbounded queue
            timeout_keep_alive=5,
        )
    finally:
        store.close()
    return 0


def cmd_witnesses(args: argparse.Namespace, settings_of: SettingsOf) -> int:
    """The log's view of its witnesses: acknowledged size, newest cosignature, last error."""
    from ledger.cosigning import cosigning_status
    from ledger.policy_file import read_policy_if_present
    from ledger.service import open_ledger

    settings = settings_of(args)
    policy = read_policy_if_present(settings.policy_path)
    ledger = open_ledger(settings)
    try:
        status = cosigning_status(ledger, policy)
    finally:
        ledger.close()
    if status.checkpoint_size is None:
        _out("no checkpoint issued yet")
    else:
        _out(
            f"newest checkpoint: size {status.checkpoint_size}, {status.cosignatures} of "
            f"{status.quorum} required cosignatures"
        )
    if policy is None:
        _out(f"no trust policy at {settings.policy_path}: no witnesses to ask")
    elif not status.witnesses:
        _out("the trust policy lists no witnesses")
    for w in status.witnesses:
        acked = "-" if w.acknowledged_size is None else w.acknowledged_size
        cosigned = "-" if w.cosigned_size is None else w.cosigned_size
        _out(f"  {w.name}  url {w.url or '-'}  acknowledged {acked}  newest cosigned {cosigned}")
        if w.last_error:
            _out(f"    last error: {w.last_error}")
    return 0


def add_witness_commands(
    sub: Any, settings_of: SettingsOf, common_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Register ``witness …`` and ``witnesses`` on the top-level subparsers."""
    witness = sub.add_parser("witness", help="run a C2SP tlog-witness that cosigns a log's checkpoints")
    actions = witness.add_subparsers(dest="witness_command", required=True)

    def action(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=text, description=text)
        p.set_defaults(handler=handler)
        p.add_argument("--data-dir", required=True, help="the witness's key file and state database")
        return p

    init = action("init", cmd_witness_init, "create the witness's SM2 key")
    init.add_argument("--name", required=True, help="its signed-note key name, e.g. court.example/witness")
    public = action("public-key", cmd_witness_public_key, "print the witness's entry for a trust policy")
    public.add_argument("--url", help="where it will be reachable (the policy's witness url)")
    serve = action("serve", cmd_witness_serve, "serve add-checkpoint for the logs of the given policies")
    serve.add_argument("--policy", action="append", required=True, metavar="FILE", help="trust policy")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8300)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--max-connections", type=int, default=100)
    status = sub.add_parser("witnesses", help="the log's witnesses: acknowledged sizes, cosignatures, errors")
    status.set_defaults(handler=lambda args: cmd_witnesses(args, settings_of))
    common_options(status)
