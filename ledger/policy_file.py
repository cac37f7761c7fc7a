"""The deployment's trust policy file (``DATA_DIR/policy.json``): read it, publish it atomically."""

from __future__ import annotations

import os
from pathlib import Path

from ledger.core.policy import TrustPolicy
from ledger.errors import ConfigurationError
from ledger.keyfiles import fsync_dir, write_private_file


def read_policy_if_present(path: Path) -> TrustPolicy | None:
    """The trust policy at ``path`` (None: there is no file); a damaged file is an error."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigurationError(f"cannot read the trust policy {path}: {e}") from e
    return TrustPolicy.from_json(text)


def read_policy(path: Path) -> TrustPolicy:
    """The trust policy at ``path``; :class:`ConfigurationError` if it is missing or invalid."""
    policy = read_policy_if_present(path)
    if policy is None:
        raise ConfigurationError(
            f"no trust policy at {path}; run `trustledger init` to write this deployment's policy"
        )
    return policy


def write_policy(path: Path, policy: TrustPolicy) -> None:
    """Publish ``policy`` at ``path`` atomically: a reader sees the old or the new file, never half.

    Mode 0644: a policy is a public document.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, policy.to_json().encode(), replace=True)
    os.chmod(path, 0o644)
    fsync_dir(path.parent)
