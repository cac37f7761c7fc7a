#!/usr/bin/env python
"""HTTP throughput of single-record submissions: ``trustledger serve --workers 2`` on PostgreSQL.

Run from the repository root::

    .venv/bin/python bench/bench_http.py                       # httpx.AsyncClient, 48 connections
    .venv/bin/python bench/bench_http.py --client raw          # a minimal asyncio HTTP/1.1 client
    .venv/bin/python bench/bench_http.py --concurrency 64 --requests 30000 --duration 30

What it does, all on 127.0.0.1:

1. creates a scratch PostgreSQL database and a temp data dir, runs ``trustledger init`` and
   ``trustledger add-client bench --role notarizer`` (for the API key);
2. starts ``trustledger serve --workers 2`` on a free port, waits for ``/healthz``, sends a warm-up,
   then drives ``POST /v1/records`` (one record with a JSON ``content_hash`` per request) from
   this process with N concurrent keep-alive connections until ``--requests`` or ``--duration``;
3. checks that every accepted record id is stored (and how many the sequencer integrated);
4. the baseline, with the same load: a bare FastAPI app defined in this file (one endpoint that
   inserts a row with SQLAlchemy Core into a plain table on the same server), 2 uvicorn workers.

Servers run in their own process group and are always terminated at the end. The load generator
shares the machine's cores with the servers; its own CPU use is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    DEFAULT_PG_URL,
    Stats,
    code_version,
    fmt_rate,
    fmt_ratio,
    log,
    normalise_pg_url,
    pg_scratch_database,
    pg_server_info,
    print_table,
    rate,
    verdict,
)
from fastapi import FastAPI
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, String, Table, Text, create_engine, text

BENCH_DIR = Path(__file__).resolve().parent
NODELAY = BENCH_DIR / "_nodelay.py"
SHIPPED, FIXED = "shipped", "nodelay"
HOST = "127.0.0.1"
TARGET_RPS = 1_000
BASELINE_URL_ENV = "BENCH_BASELINE_DB_URL"
KINDS = ("certificate", "approval", "evidence")
DEPTS = ("market-regulation", "housing-construction", "transport", "public-security", "taxation")

# --- the baseline app (served by uvicorn from this module: bench_http:create_baseline_app) ------

_metadata = MetaData()
baseline_table = Table(
    "bench_baseline_record",
    _metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("content_hash", LargeBinary, nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("received_at_us", BigInteger, nullable=False),
)


class BaselineHash(BaseModel):
    """Same shape as trustledger's content hash."""

    alg: str = "sm3"
    value: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class BaselineRecord(BaseModel):
    """Same request body as trustledger's POST /v1/records."""

    kind: str
    content_hash: BaselineHash
    metadata: dict[str, Any] = Field(default_factory=dict)


def create_baseline_app() -> FastAPI:
    """A bare FastAPI app: one endpoint, one SQLAlchemy Core INSERT per request (sync, threadpool)."""
    engine = create_engine(normalise_pg_url(os.environ[BASELINE_URL_ENV]), pool_size=10, max_overflow=10)
    app = FastAPI()

    @app.post("/v1/records", status_code=202)
    def submit(body: BaselineRecord) -> dict[str, str]:
        record_id = secrets.token_hex(16)
        with engine.begin() as conn:
            conn.execute(
                baseline_table.insert().values(
                    id=record_id,
                    kind=body.kind,
                    content_hash=bytes.fromhex(body.content_hash.value),
                    metadata_json=json.dumps(body.metadata, sort_keys=True),
                    received_at_us=time.time_ns() // 1000,
                )
            )
        return {"id": record_id, "status": "accepted"}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server subprocess in its own process group (so its workers are terminated with it)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=BENCH_DIR.parent,
        )

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:port"""
        return f"http://{HOST}:{self.port}"

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Poll /healthz until it answers 200 a few times in a row."""
        deadline = time.monotonic() + timeout
        ok = 0
        with httpx.Client(trust_env=False, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
                try:
                    ok = ok + 1 if client.get(f"{self.base_url}/healthz").status_code == 200 else 0
                except httpx.HTTPError:
                    ok = 0
                if ok >= 5:
                    return
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not become healthy within {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        """The end of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 15 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:  # workers left behind by a crashed master share the group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self._log.close()


# --- load ---------------------------------------------------------------------------------------


def make_bodies(count: int, seed: int) -> list[bytes]:
    """Request bodies: one realistic record each, with a fresh random content hash."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = rng.choice(KINDS)
        body = {
            "kind": kind,
            "content_hash": {"alg": "sm3", "value": rng.randbytes(32).hex()},
            "metadata": {"dept": rng.choice(DEPTS), "doc": f"HTTP-2026-{seed % 1000:03d}-{i:07d}"},
        }
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


@dataclass
class LoadResult:
    """What one load run observed."""

    sent: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float = float("nan")
    postgres_cpu_s: float = float("nan")
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        """Responses with status 202."""
        return self.statuses.get(202, 0)


class _Feed:
    """Hands out request bodies until the count or the deadline is reached."""

    def __init__(self, bodies: list[bytes], duration: float) -> None:
        self.bodies = bodies
        self.position = 0
        self.deadline = time.perf_counter() + duration

    def next(self) -> bytes | None:
        if self.position >= len(self.bodies) or time.perf_counter() >= self.deadline:
            return None
        body = self.bodies[self.position]
        self.position += 1
        return body


async def _httpx_load(base_url: str, api_key: str, feed: _Feed, concurrency: int, out: LoadResult) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": f"Bearer {api_key}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0, trust_env=False) as client:

        async def worker() -> None:
            while (body := feed.next()) is not None:
                start = time.perf_counter()
                try:
                    response = await client.post("/v1/records", content=body, headers=headers)
                    payload = response.content
                except httpx.HTTPError as e:
                    out.errors[type(e).__name__] += 1
                    continue
                out.latencies.append(time.perf_counter() - start)
                out.statuses[response.status_code] += 1
                if response.status_code == 202:
                    out.ids.append(json.loads(payload)["id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))


_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


async def _raw_load(port: int, api_key: str, feed: _Feed, concurrency: int, out: LoadResult) -> None:
    """A minimal keep-alive HTTP/1.1 client (much less client CPU than httpx)."""
    head = (
        f"POST /v1/records HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {api_key}\r\ncontent-length: "
    ).encode()

    async def worker() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while (body := feed.next()) is not None:
            start = time.perf_counter()
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
                response_head = await reader.readuntil(b"\r\n\r\n")
                match = _CONTENT_LENGTH.search(response_head)
                payload = await reader.readexactly(int(match.group(1))) if match else b""
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                out.errors[type(e).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            out.latencies.append(time.perf_counter() - start)
            status = int(response_head[9:12])
            out.statuses[status] += 1
            if status == 202:
                out.ids.append(json.loads(payload)["id"])
            if b"connection: close" in response_head.lower():
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def drive(
    server: Server, api_key: str, bodies: list[bytes], args: argparse.Namespace, duration: float
) -> LoadResult:
    """Send ``bodies`` (or until ``duration``) with ``args.concurrency`` connections."""
    out = LoadResult()
    feed = _Feed(bodies, duration)
    server0, postgres0 = process_cpu(server.proc.pid)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.client == "raw":
        asyncio.run(_raw_load(server.port, api_key, feed, args.concurrency, out))
    else:
        asyncio.run(_httpx_load(server.base_url, api_key, feed, args.concurrency, out))
    out.wall_s = time.perf_counter() - wall0
    out.cpu_s = time.process_time() - cpu0
    server1, postgres1 = process_cpu(server.proc.pid)
    out.server_cpu_s, out.postgres_cpu_s = server1 - server0, postgres1 - postgres0
    out.sent = feed.position
    return out


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(process_group: int) -> tuple[float, float]:
    """CPU seconds (user + system) so far of a process group, and of all ``postgres`` processes.

    Linux /proc only (nan elsewhere); processes that exited in between are not counted.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return float("nan"), float("nan")
    group = postgres = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        if int(fields[2]) == process_group:
            group += ticks
        elif comm == "postgres":
            postgres += ticks
    return group / _CLOCK_TICKS, postgres / _CLOCK_TICKS


def one_connection(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with a single connection."""
    return argparse.Namespace(**{**vars(args), "concurrency": 1})


def run_name(server: str, variant: str) -> str:
    """Column name of a run."""
    return server if variant == SHIPPED else f"{server}+nodelay"


def limits(args: argparse.Namespace, bodies: list[bytes]) -> str:
    """The load's bounds, for progress lines."""
    return f"up to {len(bodies):,} requests / {args.duration:.0f} s"


# --- the two runs -------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One server's figures."""

    name: str
    load: LoadResult
    warmup: LoadResult
    serial: LoadResult
    stored_rows: int = -1
    ids_found: int = -1
    sequenced: int = -1
    sequenced_after_s: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def accepted_total(self) -> int:
        """Accepted in warm-up and measurement."""
        return self.load.accepted + self.warmup.accepted + self.serial.accepted

    @property
    def accepted_ids(self) -> list[str]:
        """Every id answered with 202."""
        return self.warmup.ids + self.load.ids + self.serial.ids


def count_ids(engine: Any, table: str, ids: list[str]) -> int:
    """How many of ``ids`` are stored in ``table``."""
    found = 0
    with engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            found += conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE id = ANY(:ids)"), {"ids": chunk}
            ).scalar_one()
    return found


def run_trustledger(
    args: argparse.Namespace,
    url: str,
    tmp: Path,
    bodies: list[bytes],
    warm: list[bytes],
    serial: list[bytes],
    variant: str,
) -> RunResult:
    """trustledger serve --workers N on the scratch database."""
    cli = str(Path(sys.executable).parent / "trustledger")
    env = {
        **os.environ,
        "TRUSTLEDGER_DATABASE_URL": url,
        "TRUSTLEDGER_DATA_DIR": str(tmp / f"trustledger-data-{variant}"),
        "TRUSTLEDGER_LOG_ORIGIN": "bench.trustledger.local/http",
        "NO_PROXY": "*",
    }
    subprocess.run([cli, "init"], env=env, check=True, capture_output=True, timeout=120)
    made = subprocess.run(
        [cli, "add-client", "bench", "--role", "notarizer"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    api_key = made.stdout.strip().splitlines()[-1]
    port = free_port()
    serve = ["serve", "--workers", str(args.workers), "--host", HOST, "--port", str(port)]
    serve += ["--log-level", "warning"]
    argv = [cli, *serve] if variant == SHIPPED else [sys.executable, str(NODELAY), "trustledger", *serve]
    name = run_name("trustledger", variant)
    log(f"{name}: starting {' '.join(argv)}")
    server = Server(name, argv, env, tmp / f"{name}.log", port)
    engine = create_engine(url)
    try:
        server.wait_healthy()
        log(f"{name}: warm-up {len(warm)} requests")
        warmup = drive(server, api_key, warm, args, duration=60.0)
        log(f"{name}: load, {args.concurrency} connections, {limits(args, bodies)}")
        load = drive(server, api_key, bodies, args, duration=args.duration)
        log(f"{name}: {len(serial)} requests on one connection (latency without queueing)")
        probe = drive(server, api_key, serial, one_connection(args), duration=10.0)
        result = RunResult(name, load, warmup, probe)
        # Every accepted record must be stored; the in-server sequencer should integrate them soon.
        with engine.connect() as conn:
            result.stored_rows = conn.execute(text("SELECT count(*) FROM record")).scalar_one()
        result.ids_found = count_ids(engine, "record", result.accepted_ids)
        waited = time.perf_counter()
        while True:
            with engine.connect() as conn:
                result.sequenced = conn.execute(
                    text("SELECT count(*) FROM record WHERE log_index IS NOT NULL")
                ).scalar_one()
            if result.sequenced >= result.stored_rows or time.perf_counter() - waited > 30:
                break
            time.sleep(0.2)
        result.sequenced_after_s = time.perf_counter() - waited
        if server.proc.poll() is not None:
            result.notes.append(f"server exited during the run: {server.tail()}")
        return result
    finally:
        engine.dispose()
        server.stop()
        log(f"{name}: server stopped")


def run_baseline(
    args: argparse.Namespace,
    url: str,
    tmp: Path,
    bodies: list[bytes],
    warm: list[bytes],
    serial: list[bytes],
    variant: str,
) -> RunResult:
    """The bare FastAPI + SQLAlchemy Core app with the same worker count and load."""
    engine = create_engine(url)
    _metadata.create_all(engine)
    port = free_port()
    launcher = ["-m", "uvicorn"] if variant == SHIPPED else [str(NODELAY), "uvicorn"]
    argv = [
        sys.executable, *launcher, "bench_http:create_baseline_app", "--factory",
        "--app-dir", str(BENCH_DIR), "--host", HOST, "--port", str(port),
        "--workers", str(args.workers), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = {**os.environ, BASELINE_URL_ENV: url, "NO_PROXY": "*"}
    name = run_name("baseline", variant)
    log(f"{name}: starting {' '.join(argv)}")
    server = Server(name, argv, env, tmp / f"{name}.log", port)
    try:
        server.wait_healthy()
        log(f"{name}: warm-up {len(warm)} requests")
        warmup = drive(server, "unused", warm, args, duration=60.0)
        log(f"{name}: load, {args.concurrency} connections, {limits(args, bodies)}")
        load = drive(server, "unused", bodies, args, duration=args.duration)
        log(f"{name}: {len(serial)} requests on one connection (latency without queueing)")
        probe = drive(server, "unused", serial, one_connection(args), duration=10.0)
        result = RunResult(name, load, warmup, probe)
        with engine.connect() as conn:
            result.stored_rows = conn.execute(
                text(f"SELECT count(*) FROM {baseline_table.name}")
            ).scalar_one()
        result.ids_found = count_ids(engine, baseline_table.name, result.accepted_ids)
        if server.proc.poll() is not None:
            result.notes.append(f"server exited during the run: {server.tail()}")
        return result
    finally:
        engine.dispose()
        server.stop()
        log(f"{name}: server stopped")


def per_request(seconds: float, count: int) -> str:
    """Milliseconds per item."""
    return f"{seconds / count * 1e3:.2f}" if count and seconds == seconds else "n/a"


def report(runs: list[RunResult], args: argparse.Namespace) -> None:
    """Print the table."""
    names = [r.name for r in runs]

    def cells(fn: Any) -> list[str]:
        return [fn(r) for r in runs]

    def problems(r: RunResult) -> str:
        found = [f"{k}x{v}" for k, v in sorted(r.load.statuses.items()) if k != 202]
        found += [f"{k}x{v}" for k, v in r.load.errors.items()]
        return ", ".join(found) or "none"

    def sequenced(r: RunResult) -> str:
        if r.sequenced < 0:
            return "n/a"
        return f"{r.sequenced:,} ({r.sequenced_after_s:.1f} s after load)"

    stats = {r.name: Stats.of(r.load.latencies) for r in runs}
    rps = {r.name: rate(r.load.accepted, r.load.wall_s) for r in runs}
    ours_verdicts = " ".join(
        verdict(rps[r.name] >= TARGET_RPS) for r in runs if r.name.startswith("trustledger")
    )
    rows = [
        ["requests sent (measured)", *cells(lambda r: f"{r.load.sent:,}"), "", ""],
        ["accepted (202)", *cells(lambda r: f"{r.load.accepted:,}"), "", ""],
        ["other statuses / client errors", *cells(problems), "", ""],
        ["measured wall time", *cells(lambda r: f"{r.load.wall_s:.1f} s"), "", ""],
        [
            "throughput (accepted records/s)",
            *cells(lambda r: fmt_rate(rps[r.name])),
            f">= {TARGET_RPS:,} rec/s",
            ours_verdicts,
        ],
        ["latency p50 / p99", *cells(lambda r: stats[r.name].ms()), "", ""],
        [
            "latency mean / max",
            *cells(lambda r: f"{stats[r.name].mean * 1e3:.1f} / {stats[r.name].max * 1e3:.1f} ms"),
            "",
            "",
        ],
        [
            "1 connection: records/s, p50 / p99",
            *cells(
                lambda r: (
                    f"{rate(r.serial.accepted, r.serial.wall_s):,.0f}/s, {Stats.of(r.serial.latencies).ms()}"
                )
            ),
            "",
            "",
        ],
        [
            "server CPU per accepted request",
            *cells(lambda r: f"{per_request(r.load.server_cpu_s, r.load.accepted)} ms"),
            "",
            "",
        ],
        [
            "PostgreSQL CPU per accepted request",
            *cells(lambda r: f"{per_request(r.load.postgres_cpu_s, r.load.accepted)} ms"),
            "",
            "",
        ],
        [
            "load generator CPU (of one core)",
            *cells(lambda r: f"{100 * r.load.cpu_s / r.load.wall_s:.0f}%" if r.load.wall_s else "n/a"),
            "",
            "",
        ],
        [
            "stored: accepted ids found / accepted",
            *cells(lambda r: f"{r.ids_found:,} / {r.accepted_total:,}"),
            "all",
            " ".join(verdict(r.ids_found == r.accepted_total) for r in runs),
        ],
        ["rows in table", *cells(lambda r: f"{r.stored_rows:,}"), "", ""],
        ["sequenced by the in-server sequencer", *cells(sequenced), "", ""],
    ]
    for variant in (SHIPPED, FIXED):
        ours, base = run_name("trustledger", variant), run_name("baseline", variant)
        if ours in rps and base in rps:
            ratio = fmt_ratio(rps[ours] / rps[base])
            rows.append([f"{ours} / {base} throughput", *(ratio if n == ours else "" for n in names), "", ""])
    print_table(
        f"HTTP POST /v1/records, {args.workers} uvicorn workers per server, {args.concurrency} concurrent "
        f"connections, client={args.client} (load generator on the same {os.cpu_count()} cores)",
        ["measure", *names, "target", "verdict"],
        rows,
    )
    print(
        "baseline = bare FastAPI app in bench_http.py, one SQLAlchemy Core INSERT per request, same PG server"
    )
    if any(r.name.endswith("+nodelay") for r in runs):
        print(
            "+nodelay = the same server started through bench/_nodelay.py, which gives uvicorn's multi-worker"
            " listener proto=IPPROTO_TCP so asyncio sets TCP_NODELAY (uvicorn issue #3149)"
        )
    for r in runs:
        for note in r.notes:
            print(f"note: {r.name}: {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=48, help="concurrent keep-alive connections")
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests at most")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds at most")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests (not measured)")
    parser.add_argument("--serial", type=int, default=200, help="requests on one connection after the load")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes per server")
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="load generator: raw = minimal asyncio HTTP/1.1 client (default; ~0.1 ms CPU per request); "
        "httpx = httpx.AsyncClient (~0.9 ms CPU per request, ~3.5 ms with 48 pooled connections here)",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="any database URL on the PostgreSQL server")
    parser.add_argument("--only", choices=("trustledger", "baseline"), help="run one server only")
    parser.add_argument(
        "--variants",
        default=f"{SHIPPED},{FIXED}",
        help=f"{SHIPPED}: the servers started normally; {FIXED}: the same through bench/_nodelay.py, "
        "which restores TCP_NODELAY on uvicorn's multi-worker listener (uvicorn issue #3149)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not variants or set(variants) - {SHIPPED, FIXED}:
        parser.error(f"--variants takes {SHIPPED} and/or {FIXED}")

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers

    signal.signal(signal.SIGTERM, on_term)
    print(f"bench_http: {sys.platform}, cpus={os.cpu_count()}, server: {pg_server_info(args.pg_url)}")
    print(code_version())
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-http-"))
    runs: list[RunResult] = []
    try:
        for number, variant in enumerate(variants):
            seed = args.seed + 10 * number
            if args.only in (None, "trustledger"):
                bodies, warm = make_bodies(args.requests, seed), make_bodies(args.warmup, seed + 1)
                serial = make_bodies(args.serial, seed + 4)
                with pg_scratch_database(args.pg_url, "http") as url:
                    runs.append(run_trustledger(args, url, tmp, bodies, warm, serial, variant))
            if args.only in (None, "baseline"):
                bodies, warm = make_bodies(args.requests, seed + 2), make_bodies(args.warmup, seed + 3)
                serial = make_bodies(args.serial, seed + 5)
                with pg_scratch_database(args.pg_url, "httpbase") as url:
                    runs.append(run_baseline(args, url, tmp, bodies, warm, serial, variant))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(runs, args)
    return 0 if all(r.ids_found == r.accepted_total for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
