"""The operator-fork hole, end to end through the CLI on the devnet node (anvil).

An operator who holds the log key builds a forked tree (forged leaves), deploys a second
AnchorRegistry on the same chain and anchors the fork there. ``verify --key --rpc`` followed the
registry the receipt names and exited 0; ``verify --policy`` pins the consortium's registry and
refuses the fork before reading the chain, while the honest receipt verifies against the endpoints
the policy lists.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from eth_account import Account

from cli.main import main as cli_main
from cli.verify import VERIFY_EXIT
from ledger.chain.registry import Endpoint
from ledger.core.policy import TrustPolicy
from ledger.keyfiles import KeyFiles
from ledger.keys import load_log_key
from ledger.log import Ledger
from ledger.service import open_ledger
from ledger.settings import Settings
from ledger.store import LogStore, make_engine
from tests.anvil import AnvilNode
from tests.conftest import SUBJECT_SECRET
from tests.ledger.chain_fixtures import deploy, notarize

pytestmark = pytest.mark.devnet


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli_main(list(args))
    return code, out.getvalue()


def test_forked_tree_in_a_second_registry_is_refused_with_the_policy(
    anvil_node: AnvilNode, tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    where = ("--data-dir", str(data_dir))
    code, out = _cli(
        "chain-deploy",
        *where,
        "--rpc",
        anvil_node.rpc_url,
        "--keystore",
        str(data_dir / "anchor-key.json"),
        "--password-file",
        str(data_dir / "anchor-key.password"),
        "--fund-from-key",
        anvil_node.private_keys[0],
    )
    assert code == 0, out
    code, out = _cli("init", *where)
    assert code == 0, out
    settings = Settings(data_dir=data_dir)
    policy = TrustPolicy.from_json(settings.policy_path.read_text())
    assert policy.chain is not None and policy.chain.rpc_urls == (anvil_node.rpc_url,)
    consortium_registry = policy.chain.registries[0]

    honest = open_ledger(settings)
    honest_ids = notarize(honest, 3)
    honest.store.engine.dispose()
    code, out = _cli("anchor", *where, "--timeout", "30")
    assert code == 0, out
    code, out = _cli("receipt", honest_ids[0], *where, "-o", str(tmp_path / "honest.json"))
    assert code == 0, out

    # The operator's fork: same origin and log key, other leaves, its own registry on the same chain.
    fork = Ledger(
        LogStore(make_engine(f"sqlite:///{tmp_path / 'fork.db'}")),
        origin=settings.log_origin,
        hash_alg=settings.hash_alg,
        signing_key=load_log_key(settings.log_key_path, KeyFiles.for_settings(settings)),
        subject_secret=SUBJECT_SECRET,
    )
    fork.create_schema()
    forged_ids = notarize(fork, 5, tag="forged")
    rogue = deploy(
        Endpoint.http(anvil_node.rpc_url, 5),
        Account.from_key(anvil_node.private_keys[2]),
        anvil_node.chain_id,
    )
    assert rogue.address != consortium_registry
    assert rogue.anchorer(fork).anchor_now(timeout_s=30) is not None
    forged = fork.receipt(forged_ids[0])
    fork.store.engine.dispose()
    assert forged.anchor is not None and forged.anchor.registry == rogue.address
    forged_path = tmp_path / "forged.json"
    forged_path.write_text(forged.to_json())
    key_file = tmp_path / "log.pem"
    key_file.write_text(
        load_log_key(settings.log_key_path, KeyFiles.for_settings(settings)).public_key().to_pem()
    )

    # Without a policy the receipt's own registry is followed (as before), but the verdict says
    # that registry and chain id were taken from the receipt itself.
    code, out = _cli("verify", str(forged_path), "--key", str(key_file), "--rpc", anvil_node.rpc_url)
    assert code == 0, out
    unpinned = out.split("warning: not pinned")[1]
    assert f"registry {rogue.address}" in unpinned and f"chain id {anvil_node.chain_id}" in unpinned

    # With the consortium's policy: refused at the registry step (reads would go to the policy's
    # rpc_urls; none is needed to refuse).
    code, out = _cli("verify", str(forged_path), "--policy", str(settings.policy_path))
    assert code == VERIFY_EXIT["registry"], out
    assert rogue.address in out and consortium_registry in out

    # The honest receipt verifies with the policy alone: key, origin, registry and the endpoints.
    code, out = _cli("verify", str(tmp_path / "honest.json"), "--policy", str(settings.policy_path))
    assert code == 0, out
    assert f"confirmed by {anvil_node.rpc_url}" in out and "warning" not in out
    honest_doc = json.loads((tmp_path / "honest.json").read_text())
    assert honest_doc["anchor"]["registry"].lower() == consortium_registry.lower()
