"""Real ``trustledger`` service processes for tests: a free loopback port, start, wait, kill.

Used by the crash test (``tests/api/test_crash.py``), the hostile-client suite (``tests/hostile/``)
and the witness processes (``trustledger witness serve``); the service runs the code on
``PYTHONPATH`` like the tests themselves.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """A ``trustledger serve`` subprocess on a loopback port (started and healthy on return).

    ``command`` replaces ``serve`` by another service command of the CLI (``witness serve …``).
    """

    def __init__(
        self,
        env: dict[str, str],
        port: int | None = None,
        *,
        start_timeout_s: float = 30,
        command: Sequence[str] = ("serve",),
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A file, not a pipe: a pipe nobody reads blocks the service once it has logged 64 KiB.
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in kill()
        argv = [
            sys.executable, "-m", "cli", *command, "--port", str(self.port), "--log-level", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"service did not start within {start_timeout_s} s")

    def alive(self) -> bool:
        """The process runs and answers ``/healthz``."""
        if self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        """The end of what the service wrote to stderr (and its exit status, if it exited)."""
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace")[-4000:]
        code = self.process.poll()
        return text if code is None else f"{text}\n[exit status {code}]"

    def kill(self) -> None:
        """SIGKILL the service (no clean shutdown) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the service (clean shutdown), SIGKILL if it takes more than 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.stderr.close()
