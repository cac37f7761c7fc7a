"""``chain-devnet/devnet``: start, status, stop, persisted restart and reset on a scratch data dir."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVNET = ROOT / "chain-devnet" / "devnet"
ANVIL = ROOT / "chain-devnet" / "node_modules" / ".bin" / "anvil"

pytestmark = pytest.mark.devnet


@pytest.fixture(scope="module", autouse=True)
def _anvil_installed() -> None:
    if not ANVIL.exists():
        reason = f"anvil is not installed ({ANVIL} missing; run `npm ci --prefix chain-devnet`)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must run the devnet tests")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def devnet(*args: str, data_dir: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTLEDGER_")}
    # The CLI of the code under test (``python -m cli`` with this interpreter), not whichever
    # console script an earlier install left in the interpreter's bin directory.
    wrapper = data_dir.parent / "trustledger"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cli "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    env["TRUSTLEDGER_PYTHON"] = sys.executable
    env["TRUSTLEDGER_BIN"] = str(wrapper)
    return subprocess.run(
        [str(DEVNET), *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def block_number(status_output: str) -> int:
    match = re.search(r"block (\d+)", status_output)
    assert match, status_output
    return int(match.group(1))


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "var"
    yield path
    pid_file = path / "devnet" / "anvil.pid"
    if pid_file.exists():  # a failed test left the node running
        devnet("stop", data_dir=path)
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def test_start_status_stop_persisted_restart_reset(data_dir: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    out = ok(devnet("start", "--port", str(port), "--persist", data_dir=data_dir))
    chain = json.loads((data_dir / "chain.json").read_text())
    assert chain["backend"] == "rpc"
    assert chain["chain_id"] == 31337
    assert chain["rpc_urls"] == [url]
    assert chain["confirmations"] == 0
    registry = chain["registry_address"]
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", registry)
    assert Path(chain["keystore_path"]) == data_dir / "devnet" / "anchor-key.json"
    assert registry in out and url in out and "registry deployed" in out
    assert (data_dir / "log-key.json").exists()  # trustledger init ran, after chain.json existed
    assert (data_dir / "devnet" / "anvil.pid").exists()

    status = devnet("status", data_dir=data_dir)
    assert status.returncode == 0 and "running" in status.stdout, status
    assert f"{registry} (deployed)" in status.stdout
    blocks = block_number(status.stdout)
    assert blocks >= 3  # funding, deployment, membership

    again = devnet("start", "--port", str(free_port()), "--persist", data_dir=data_dir)
    assert again.returncode != 0 and "already running" in again.stderr

    out = ok(devnet("stop", data_dir=data_dir))
    assert "saved" in out
    assert (data_dir / "devnet" / "anvil-state.json").stat().st_size > 0
    assert not (data_dir / "devnet" / "anvil.pid").exists()
    stopped = devnet("status", data_dir=data_dir)
    assert stopped.returncode == 3 and "not running" in stopped.stdout

    out = ok(devnet("start", "--port", str(port), "--persist", data_dir=data_dir))
    assert "not redeploying" in out and "deploying the AnchorRegistry" not in out
    assert json.loads((data_dir / "chain.json").read_text()) == chain
    status = devnet("status", data_dir=data_dir)
    assert status.returncode == 0 and f"{registry} (deployed)" in status.stdout, status
    assert block_number(status.stdout) == blocks  # the same chain, nothing redone

    out = ok(devnet("reset", data_dir=data_dir))
    assert "deleted" in out
    assert not (data_dir / "devnet").exists()
    assert not (data_dir / "chain.json").exists()
    assert (data_dir / "log-key.json").exists()  # the log itself is not the devnet's
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_start_refuses_to_overwrite_another_chain(data_dir: Path) -> None:
    data_dir.mkdir()
    embedded = {"backend": "embedded", "chain_id": 1337, "registry_address": "0x" + "11" * 20}
    (data_dir / "chain.json").write_text(json.dumps(embedded))
    result = devnet("start", "--port", str(free_port()), data_dir=data_dir)
    assert result.returncode != 0
    assert "refusing to overwrite" in result.stderr
    assert json.loads((data_dir / "chain.json").read_text()) == embedded
    assert not (data_dir / "devnet").exists()
    ok(devnet("reset", data_dir=data_dir))
    assert (data_dir / "chain.json").exists()  # reset keeps a chain.json that is not the devnet's
