"""Run a uvicorn-based server with TCP_NODELAY restored on multi-worker listeners (diagnostic only).

uvicorn's ``Config.bind_socket()`` (used by ``--workers N``) creates the listening socket with
``proto=0``; accepted sockets inherit it and asyncio then skips ``TCP_NODELAY``, so each keep-alive
request after the first waits for the client's delayed ACK (~40 ms on Linux; uvicorn issue #3149).
This launcher re-wraps the listener with ``proto=IPPROTO_TCP`` before the workers are spawned (the
socket is pickled to them with its proto) and then runs the normal entry point::

    python bench/_nodelay.py trustledger serve --workers 2 ...
    python bench/_nodelay.py uvicorn module:app --workers 2 ...

It changes nothing in the project; bench_http.py uses it for its "+nodelay" variant.
"""

from __future__ import annotations

import socket
import sys

import uvicorn.config

_original_bind_socket = uvicorn.config.Config.bind_socket


def _bind_socket_tcp(self: uvicorn.config.Config) -> socket.socket:
    sock = _original_bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto != socket.IPPROTO_TCP:
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


def main() -> int:
    """Dispatch to ``trustledger`` or ``uvicorn`` with the patch in place."""
    uvicorn.config.Config.bind_socket = _bind_socket_tcp  # type: ignore[method-assign]
    program, *rest = sys.argv[1:]
    if program == "trustledger":
        from cli.main import main as trustledger_main

        return trustledger_main(rest)
    if program == "uvicorn":
        sys.argv = ["uvicorn", *rest]
        uvicorn.main()  # exits via SystemExit
        return 0
    raise SystemExit(f"unknown program {program!r}")


if __name__ == "__main__":
    sys.exit(main())
