"""The devnet node for the tests: :class:`AnvilNode` (a local anvil process) and pytest fixtures.

anvil comes pinned from npm (``chain-devnet/node_modules/.bin/anvil``, ``npm ci --prefix
chain-devnet``). A node listens on a free 127.0.0.1 port with chain id 31337 and anvil's default
accounts (the public ``test test ... junk`` development mnemonic, each funded with 10,000 ETH and
unlocked); their private keys are read from the node's ``--config-out`` file rather than written
here. With ``state_path`` the chain state is loaded at start and dumped at a clean stop (and every
``state_interval`` seconds), so a restarted node continues the same chain.

Fixtures (registered for the whole suite by ``pytest_plugins`` in ``tests/conftest.py``):
``anvil_node`` (one node per session) and ``fresh_anvil_node`` (one per test). Both skip when
anvil is not installed, and fail instead when the ``CI`` environment variable is set. Tests that
use them carry ``@pytest.mark.devnet``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

NODE_MODULES = Path(__file__).resolve().parents[1] / "chain-devnet" / "node_modules"
ANVIL_BINARY = NODE_MODULES / ".bin" / "anvil"
"""The pinned anvil (npm ``@foundry-rs/anvil``): a Node launcher for the platform's binary."""

CHAIN_ID = 31337
"""The devnet's chain id (anvil's default)."""

DEFAULT_ACCOUNTS = 10
_POLL_INTERVAL_S = 0.05
_RPC_TIMEOUT_S = 2.0


class AnvilError(RuntimeError):
    """The anvil process did not start, answer or stop as expected."""


def devnet_unavailable_reason() -> str | None:
    """Why the devnet node cannot be used (None when it can)."""
    if not ANVIL_BINARY.is_file() or not os.access(ANVIL_BINARY, os.X_OK):
        return f"anvil not installed at {ANVIL_BINARY} (run `npm ci --prefix chain-devnet`)"
    return None


def anvil_executable() -> Path:
    """The native anvil binary the npm launcher would run, or the launcher if none is found.

    Running the binary directly makes :meth:`AnvilNode.kill` a real crash of the node: killing
    the Node launcher with SIGKILL would leave its child running.
    """
    for candidate in sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil")):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return ANVIL_BINARY


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class AnvilNode:
    """A local anvil process on 127.0.0.1 (chain id 31337, default development accounts).

    The port is chosen once (free at construction) and kept across :meth:`restart`, so
    :attr:`rpc_url` stays valid. Logs go to ``anvil.log`` in ``workdir`` (a temporary directory
    by default). Usable as a context manager (start on enter, stop on exit).
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        port: int | None = None,
        state_path: Path | None = None,
        state_interval: int | None = None,
        accounts: int = DEFAULT_ACCOUNTS,
        binary: Path | None = None,
    ) -> None:
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="anvil-")
            workdir = Path(self._tempdir.name)
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port(self.host)
        self.state_path = state_path
        self.state_interval = state_interval
        self.accounts_count = accounts
        self.binary = binary if binary is not None else anvil_executable()
        self._process: subprocess.Popen[bytes] | None = None
        self._private_keys: list[str] = []
        self._addresses: list[str] = []

    # -- properties ---------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC endpoint."""
        return f"http://{self.host}:{self.port}"

    @property
    def chain_id(self) -> int:
        """The chain id (31337)."""
        return CHAIN_ID

    @property
    def private_keys(self) -> list[str]:
        """The ``0x``-hex private keys of the default accounts (known once started)."""
        return list(self._private_keys)

    @property
    def addresses(self) -> list[str]:
        """The addresses of the default accounts, matching :attr:`private_keys`."""
        return list(self._addresses)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """anvil's stdout and stderr."""
        return self.workdir / "anvil.log"

    # -- lifecycle ----------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The anvil command line."""
        cmd = [
            str(self.binary),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--chain-id",
            str(CHAIN_ID),
            "--accounts",
            str(self.accounts_count),
            "--config-out",
            str(self.workdir / "anvil-config.json"),
        ]
        if self.state_path is not None:
            cmd += ["--state", str(self.state_path)]
        if self.state_interval is not None:
            cmd += ["--state-interval", str(self.state_interval)]
        return cmd

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it answers JSON-RPC (at most ``timeout`` seconds)."""
        if self.running:
            raise AnvilError("anvil is already running")
        if not self.binary.is_file():
            raise AnvilError(devnet_unavailable_reason() or f"no anvil at {self.binary}")
        config = self.workdir / "anvil-config.json"
        config.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            self.wait_ready(timeout)
            self._read_config(config, deadline)
        except BaseException:
            self.kill()
            raise

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the node answers ``eth_chainId``; :class:`AnvilError` on exit or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise AnvilError(f"anvil exited (code {code}) before answering:\n{self._log_tail()}")
            try:
                if self._rpc("eth_chainId") == hex(CHAIN_ID):
                    return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise AnvilError(
                    f"anvil did not answer on {self.rpc_url} within {timeout} s:\n{self._log_tail()}"
                )
            time.sleep(_POLL_INTERVAL_S)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (anvil dumps ``state_path`` then exits); SIGKILL after ``timeout`` seconds."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait(timeout)
        self._process = None

    def kill(self, timeout: float = 15.0) -> None:
        """SIGKILL: a crash; nothing is dumped (state written by ``state_interval`` survives)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._signal(process, signal.SIGKILL)
            process.wait(timeout)
        self._process = None

    def restart(self, timeout: float = 30.0) -> None:
        """Stop cleanly, then start again on the same port (and state file)."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the node and remove the temporary working directory, if one was made."""
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> AnvilNode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _signal(self, process: subprocess.Popen[bytes], signum: int) -> None:
        """Signal the node: the binary itself, or (launcher only) its own process group."""
        try:
            if self.binary == ANVIL_BINARY:
                # The Node launcher runs anvil as a child in the session started for it.
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        except ProcessLookupError:
            pass

    def _rpc(self, method: str, params: list[object] | None = None) -> object:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        request = urllib.request.Request(
            self.rpc_url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=_RPC_TIMEOUT_S) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise ValueError(f"{method}: {answer['error']}")
        return answer["result"]

    def _read_config(self, path: Path, deadline: float) -> None:
        # anvil may write --config-out just after it starts answering: wait for it (bounded).
        while not path.is_file() and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL_S)
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
            self._private_keys = [str(key) for key in config["private_keys"]]
            self._addresses = [str(address) for address in config["available_accounts"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise AnvilError(f"cannot read anvil's --config-out file {path}: {e}") from e

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _require_devnet() -> None:
    reason = devnet_unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — CI must run the devnet tests")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def anvil_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    """One devnet node for the test session (tests share its chain; deploy what you need)."""
    _require_devnet()
    node = AnvilNode(workdir=tmp_path_factory.mktemp("anvil"))
    node.start()
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def fresh_anvil_node(tmp_path: Path) -> Iterator[AnvilNode]:
    """A devnet node of its own for one test (an empty chain), e.g. to kill or restart it."""
    _require_devnet()
    node = AnvilNode(workdir=tmp_path)
    node.start()
    try:
        yield node
    finally:
        node.close()
