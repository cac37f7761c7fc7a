"""Anchoring against the devnet node (anvil): end to end through the API and CLI, and fault tests.

Each fault test names what it breaks: the node killed with an anchor in flight, the anchor's block
reorganised away, an endpoint answering with a wrong root, the service killed -9 between submit
and confirmation. After each, exactly one anchor per checkpoint must be on chain.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from api.app import create_app
from cli.main import main as cli_main
from ledger.anchoring import Anchorer, AnchorPolicy, AnchorState, anchoring_status
from ledger.chain.connect import ChainConnection
from ledger.chain.registry import Endpoint
from ledger.core.anchor import log_id
from ledger.core.receipt import verify_receipt
from ledger.errors import ChainDisagreement
from ledger.keys import api_key_hash, new_api_key
from ledger.settings import Settings
from tests.anvil import AnvilNode, free_port
from tests.conftest import LedgerFactory
from tests.ledger.chain_fixtures import Deployed, deploy, notarize, observe

pytestmark = pytest.mark.devnet


def _deploy_on(node: AnvilNode) -> Deployed:
    return deploy(Endpoint.http(node.rpc_url, 5), Account.from_key(node.private_keys[0]), node.chain_id)


def _anchor_events(deployed: Deployed, origin: str) -> list[int]:
    """Tree sizes of every CheckpointAnchored event of ``origin``'s log on chain."""
    registry = deployed.endpoint.w3.eth.contract(address=deployed.address, abi=deployed.client()._abi)
    logs = registry.events.CheckpointAnchored().get_logs(
        from_block=0, argument_filters={"logId": log_id(origin)}
    )
    return [int(e["args"]["treeSize"]) for e in logs]


def _settle(anchorer: Anchorer, size: int, timeout_s: float = 20.0) -> None:
    """Run the anchorer until the anchor of ``size`` is final (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        anchorer.run_once()
        row = anchorer.store.anchor_by_size(size)
        if row is not None and row.state == AnchorState.FINAL:
            return
        time.sleep(0.1)
    pytest.fail(f"anchor {size} not final: {anchorer.store.anchor_by_size(size)} {anchorer.last_error}")


def _rpc(node: AnvilNode, method: str, params: list[object]) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(node.rpc_url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert "error" not in answer, answer
    return answer["result"]


def _cli(*args: str) -> tuple[int, str]:
    """Run the trustledger CLI in-process; (exit code, stdout+stderr)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli_main(list(args))
    return code, out.getvalue()


def _devnet_data_dir(node: AnvilNode, data_dir: Path) -> Path:
    """A deployment on ``node`` as ``chain-devnet/devnet start`` makes it (chain-deploy, then init)."""
    code, out = _cli(
        "chain-deploy",
        "--data-dir",
        str(data_dir),
        "--rpc",
        node.rpc_url,
        "--keystore",
        str(data_dir / "anchor-key.json"),
        "--password-file",
        str(data_dir / "anchor-key.password"),
        "--fund-from-key",
        node.private_keys[0],
    )
    assert code == 0, out
    code, out = _cli("init", "--data-dir", str(data_dir))
    assert code == 0, out
    return data_dir


def test_end_to_end_notarize_anchor_verify_with_rpc(fresh_anvil_node: AnvilNode, tmp_path: Path) -> None:
    """Records in through the API → checkpoint → anchored by the scheduled job → verify --rpc."""
    data_dir = _devnet_data_dir(fresh_anvil_node, tmp_path / "var")
    settings = Settings(
        data_dir=data_dir,
        sequencer_max_age_s=0.05,
        checkpoint_interval_s=0.2,
        anchor_interval_s=0.5,
        anchor_tick_s=0.2,
    )
    key = new_api_key()
    with TestClient(create_app(settings)) as client:
        client.app.state.ledger.store.add_client("approvals", "notarizer", api_key_hash(key), 0)  # type: ignore[attr-defined]
        auth = {"Authorization": f"Bearer {key}"}
        ids = []
        for i in range(3):
            record = {"kind": "certificate", "content": {"licence": "91350100M000100Y43", "n": i}}
            response = client.post("/v1/records", json=record, headers=auth)
            assert response.status_code in (200, 201, 202), response.text
            ids.append(response.json()["id"])
        deadline = time.monotonic() + 30
        receipt = None
        while time.monotonic() < deadline:
            response = client.get(f"/v1/records/{ids[0]}/receipt")
            if response.status_code == 200 and response.json().get("anchor"):
                receipt = response.json()
                break
            time.sleep(0.2)
        assert receipt is not None, client.get("/v1/anchors/status").json()
        status = client.get("/v1/anchors/status").json()
        assert status["anchoring_here"] and status["anchored_size"] >= 3
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    code, out = _cli(
        "verify", str(path), "--key", str(data_dir / "log-key.json"), "--rpc", fresh_anvil_node.rpc_url
    )
    assert code == 0, out
    assert f"confirmed by {fresh_anvil_node.rpc_url}" in out


def test_node_killed_with_anchor_in_flight(make_ledger: LedgerFactory, tmp_path: Path) -> None:
    """The tx sits in the pool when the node dies; after restart it is re-sent, once."""
    node = AnvilNode(workdir=tmp_path, state_path=tmp_path / "state.json", state_interval=1)
    node.start()
    try:
        deployed = _deploy_on(node)
        time.sleep(2.5)  # let the periodic state dump include the deployment
        ledger = make_ledger()
        notarize(ledger, 8)
        _rpc(node, "evm_setAutomine", [False])
        anchorer = deployed.anchorer(ledger)
        anchorer.run_once()
        row = ledger.store.anchor_by_size(8)
        assert row is not None and row.state == AnchorState.SUBMITTED
        node.kill()

        down = anchorer.run_once()
        assert down.error and "no chain endpoint answered" in down.error
        assert ledger.store.anchor_by_size(8).state == AnchorState.SUBMITTED  # type: ignore[union-attr]

        node.start()
        _settle(anchorer, 8)
        final = ledger.store.anchor_by_size(8)
        assert final is not None and final.state == AnchorState.FINAL
        assert _anchor_events(deployed, ledger.origin) == [8]
    finally:
        node.close()


def test_reorganised_anchor_is_detected_and_resent(
    make_ledger: LedgerFactory, fresh_anvil_node: AnvilNode
) -> None:
    deployed = _deploy_on(fresh_anvil_node)
    ledger = make_ledger()
    ids = notarize(ledger, 5)
    anchorer = deployed.anchorer(ledger)
    anchorer.anchor_now(timeout_s=30)
    first = ledger.store.anchor_by_size(5)
    assert first is not None and first.state == AnchorState.FINAL and first.block_number is not None
    _rpc(fresh_anvil_node, "evm_mine", [])
    head = int(str(_rpc(fresh_anvil_node, "eth_blockNumber", [])), 16)
    _rpc(fresh_anvil_node, "anvil_reorg", [head - first.block_number + 1, []])
    assert _anchor_events(deployed, ledger.origin) == []  # the anchor is gone from the chain

    run = anchorer.run_once()
    assert "5:final->submitted" in run.transitions
    _settle(anchorer, 5)
    again = ledger.store.anchor_by_size(5)
    assert again is not None and again.state == AnchorState.FINAL and again.block_hash != first.block_hash
    assert _anchor_events(deployed, ledger.origin) == [5]
    receipt = ledger.receipt(ids[0])
    assert receipt.anchor is not None and receipt.anchor.block_hash == again.block_hash
    verify_receipt(receipt, anchor_observations=observe(deployed.client(), receipt))


def test_failover_to_the_next_endpoint(make_ledger: LedgerFactory, anvil_node: AnvilNode) -> None:
    """A member node that is down is skipped; with every node down, anchoring pauses and says why."""
    deployed = _deploy_on(anvil_node)
    ledger = make_ledger()
    notarize(ledger, 3)
    dead = Endpoint.http(f"http://127.0.0.1:{free_port()}", 1)
    client = deployed.client([dead, deployed.endpoint])
    anchorer = Anchorer(
        ledger, lambda: ChainConnection(client, lambda: None), AnchorPolicy(interval_s=0, min_entries=1)
    )
    _settle(anchorer, 3)
    assert client.endpoints[client._preferred] is deployed.endpoint

    notarize(ledger, 2, tag="later")
    all_down = deployed.client([dead])
    paused = Anchorer(
        ledger, lambda: ChainConnection(all_down, lambda: None), AnchorPolicy(interval_s=0, min_entries=1)
    )
    run = paused.run_once()
    assert run.error and "no chain endpoint answered" in run.error and dead.name in run.error
    assert anchoring_status(ledger).entries_behind == 2


class _LyingProxy:
    """A JSON-RPC proxy that forwards to a node but flips a byte of every anchor's root it returns."""

    def __init__(self, upstream: str, selector: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = json.loads(body)
                forwarded = urllib.request.Request(upstream, body, {"Content-Type": "application/json"})
                with urllib.request.urlopen(forwarded, timeout=10) as response:
                    answer = json.loads(response.read())
                if proxy._targets(request) and isinstance(answer.get("result"), str):
                    result = answer["result"]
                    # The Anchor struct is returned inline: word 1 is the root hash.
                    i = 2 + 64 + 10
                    answer["result"] = result[:i] + ("0" if result[i] != "0" else "1") + result[i + 1 :]
                out = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: object) -> None:
                pass

        self._selector = selector
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _targets(self, request: dict[str, object]) -> bool:
        params = request.get("params")
        if request.get("method") != "eth_call" or not isinstance(params, list) or not params:
            return False
        call = params[0]
        return isinstance(call, dict) and str(call.get("data", call.get("input", ""))).startswith(
            self._selector
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def liar(anvil_node: AnvilNode) -> Iterator[_LyingProxy]:
    from eth_utils.crypto import keccak

    proxy = _LyingProxy(anvil_node.rpc_url, "0x" + keccak(text="anchorBySize(bytes32,uint64)")[:4].hex())
    yield proxy
    proxy.close()


def test_lying_endpoint_is_detected(
    make_ledger: LedgerFactory, anvil_node: AnvilNode, liar: _LyingProxy, tmp_path: Path
) -> None:
    deployed = _deploy_on(anvil_node)
    ledger = make_ledger()
    ids = notarize(ledger, 4)
    deployed.anchorer(ledger).anchor_now(timeout_s=30)
    honest = Endpoint.http(anvil_node.rpc_url, 5)
    lying = Endpoint.http(liar.url, 5)
    client = deployed.client([honest, lying])
    with pytest.raises(ChainDisagreement) as disagreement:
        client.read_everywhere(log_id(ledger.origin), 4)
    assert liar.url in disagreement.value.message

    path = tmp_path / "receipt.json"
    path.write_text(ledger.receipt(ids[1]).to_json())
    code, out = _cli("verify", str(path), "--rpc", anvil_node.rpc_url)
    assert code == 0, out
    code, out = _cli("verify", str(path), "--rpc", anvil_node.rpc_url, "--rpc", liar.url)
    assert code == 18, out
    assert liar.url in out and "registry holds root" in out


@pytest.mark.slow
def test_service_killed_between_submit_and_confirmation(fresh_anvil_node: AnvilNode, tmp_path: Path) -> None:
    """kill -9 of `trustledger anchor` while its tx waits in the pool → one anchor after restart."""
    data_dir = _devnet_data_dir(fresh_anvil_node, tmp_path / "var")
    from ledger.service import open_ledger

    ledger = open_ledger(Settings(data_dir=data_dir))
    notarize(ledger, 6)
    size = ledger.current_size()  # the records and init's rulebook activation
    _rpc(fresh_anvil_node, "evm_setAutomine", [False])
    env = {**os.environ, "TRUSTLEDGER_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "anchor", "--timeout", "60"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = ledger.store.anchor_by_size(size)
        if row is not None and row.state == AnchorState.SUBMITTED:
            break
        time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"the anchor was never submitted: {process.communicate()[0].decode()}")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)

    _rpc(fresh_anvil_node, "evm_mine", [])  # the orphaned tx is mined while the service is dead
    _rpc(fresh_anvil_node, "evm_setAutomine", [True])
    code, out = _cli("anchor", "--data-dir", str(data_dir), "--timeout", "30")
    assert code == 0, out
    row = ledger.store.anchor_by_size(size)
    assert row is not None and row.state == AnchorState.FINAL
    deployed = Deployed(
        Endpoint.http(fresh_anvil_node.rpc_url, 5), row.registry_address, row.chain_id, Account.create()
    )
    assert _anchor_events(deployed, ledger.origin) == [size]
    ledger.store.engine.dispose()
