"""``trustledger keys …``: the deployment's key files (a thin shell over :mod:`ledger.rotation`).

``keys status`` exits 1 when a key file is plain text or a key or database file is readable by
others; ``keys rotate`` exits 0 once the new log key and policy revision are in place.
"""

from __future__ import annotations

import argparse
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.keyfiles import KeyFiles, envelope_of
from ledger.settings import Settings

EXIT_OK = 0
EXIT_FINDINGS = 1


def _mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def cmd_keys_rotate(args: argparse.Namespace, settings: Settings) -> int:  # noqa: ARG001 - uniform handler
    """Generate a new log key; the old one stays valid for the checkpoints it signed."""
    from ledger.rotation import rotate_log_key
    from ledger.service import open_ledger

    files = KeyFiles.for_settings(settings)
    ledger = open_ledger(settings)
    try:
        result = rotate_log_key(settings, files, ledger)
    finally:
        ledger.close()
    print(f"retired log key: {result.old_key.key_id()} (signs tree sizes up to {result.at_size})")
    print(f"  kept sealed at {result.retired_path}")
    print(f"new log key:     {result.new_key.key_id()} (signs tree sizes from {result.at_size} on)")
    print(f"  public key {result.new_key.hex()}")
    made = " (created: there was none)" if result.created_policy else ""
    print(f"trust policy:    {settings.policy_path} serial {result.policy.serial}{made}")
    print("publish the new policy to verifiers; a running service signs with the new key from its")
    print("next checkpoint (every host that signs checkpoints must see the new key files)")
    return EXIT_OK


def _key_file_line(files: KeyFiles, path: Path, label: str) -> tuple[str, bool]:
    if not path.exists():
        return f"{label:<16}{path}: absent", True
    content = path.read_bytes()
    document = envelope_of(content)
    loose = stat.S_IMODE(path.stat().st_mode) & 0o077
    mode = _mode(path) + (" (readable by others!)" if loose else "")
    if document is None:
        return f"{label:<16}{path}: PLAIN TEXT, mode {mode} (`trustledger init` seals it)", False
    kek = files.kek.kek_id if files.kek is not None else None
    under = document.get("kek_id")
    note = "" if under == kek else f" (not the configured KEK {kek})"
    return (
        f"{label:<16}{path}: sealed {document.get('purpose')} under KEK {under}{note}, mode {mode}",
        not loose,
    )


def cmd_keys_status(args: argparse.Namespace, settings: Settings) -> int:  # noqa: ARG001 - uniform handler
    """Where the KEK comes from, whether every key file is sealed, the policy's log keys."""
    from ledger.policy_file import read_policy_if_present
    from ledger.rotation import RETIRED_DIR

    files = KeyFiles.for_settings(settings)
    ok = True
    if files.kek is None:
        print(
            f"KEK:            none yet (development: `trustledger init` creates "
            f"{settings.development_kek_path})"
        )
    else:
        print(f"KEK:            {files.kek.source} (id {files.kek.kek_id})")
    paths = [
        (settings.log_key_path, "log key"),
        (settings.subject_secret_path, "subject secret"),
        (settings.credit_key_path, "credit master"),
    ]
    try:
        config = settings.chain_config() if settings.chain_config_path.exists() else None
    except Exception:  # noqa: BLE001 - status reports, it does not fail on a broken chain.json
        config = None
    if config is not None and config.keystore_password_file is not None:
        paths.append((config.keystore_password_file, "chain password"))
    paths.extend((p, "retired log key") for p in sorted((settings.data_dir / RETIRED_DIR).glob("*.json")))
    for path, label in paths:
        line, good = _key_file_line(files, path, label)
        ok = ok and good
        print(line)
    for name in ("trustledger.db", "trustledger.db-wal", "trustledger.db-shm", "embedded-chain.db"):
        path = settings.data_dir / name
        if path.exists():
            loose = stat.S_IMODE(path.stat().st_mode) & 0o077
            ok = ok and not loose
            print(f"{'database':<16}{path}: mode {_mode(path)}{' (readable by others!)' if loose else ''}")
    policy = read_policy_if_present(settings.policy_path)
    if policy is None:
        print(f"trust policy:   none at {settings.policy_path}")
    else:
        print(f"trust policy:   {settings.policy_path} serial {policy.serial}")
        for entry in policy.log.keys:
            until = "open" if entry.until_size is None else f"< {entry.until_size}"
            revoked = ", REVOKED" if entry.revoked else ""
            print(f"  log key {entry.key_id}: sizes >= {entry.from_size}, {until}{revoked}")
    return EXIT_OK if ok else EXIT_FINDINGS


def add_key_commands(
    sub: Any,
    settings_of: Callable[[argparse.Namespace], Settings],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``keys status`` and ``keys rotate`` to the top-level subparsers."""
    keys = sub.add_parser("keys", help="key files and log key rotation", description=__doc__)
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    for name, handler, text in (
        ("status", cmd_keys_status, "the KEK, each key file (sealed? mode?), the policy's log keys"),
        ("rotate", cmd_keys_rotate, "new log key from the current tree size on; the old one stays valid"),
    ):
        p = ksub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=lambda args, h=handler: h(args, settings_of(args)))
        common(p)
