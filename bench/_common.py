"""Shared helpers of the benchmarks: scratch PostgreSQL databases, statistics, table printing."""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def log(message: str) -> None:
    """Progress to stderr (the result tables go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def normalise_pg_url(url: str) -> str:
    """A SQLAlchemy URL with the psycopg 3 driver."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


@contextmanager
def pg_scratch_database(server_url: str, tag: str) -> Iterator[str]:
    """Create a scratch database on the server of ``server_url``; always drop it afterwards.

    Yields the scratch database's URL. The database is created and dropped through an AUTOCOMMIT
    connection to the ``postgres`` maintenance database.
    """
    url = make_url(normalise_pg_url(server_url))
    if not re.fullmatch(r"[a-z0-9_]+", tag):
        raise ValueError(f"bad scratch database tag {tag!r}")
    name = f"tl_bench_{tag}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pg_server_info(server_url: str) -> str:
    """Version and durability settings of the PostgreSQL server (one line)."""
    url = make_url(normalise_pg_url(server_url))
    engine = create_engine(url.set(database="postgres"))
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar()
            settings = {
                name: conn.execute(text(f"SHOW {name}")).scalar()
                for name in ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
            }
    finally:
        engine.dispose()
    return f"PostgreSQL {version} ({', '.join(f'{k}={v}' for k, v in settings.items())})"


@dataclass(frozen=True)
class Stats:
    """Summary of a latency sample (seconds)."""

    count: int
    mean: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Nearest-rank percentiles of ``samples``."""
        if not samples:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(samples)
        return cls(
            count=len(ordered),
            mean=sum(ordered) / len(ordered),
            p50=percentile(ordered, 50),
            p99=percentile(ordered, 99),
            max=ordered[-1],
        )

    def ms(self) -> str:
        """``p50 / p99`` in milliseconds."""
        return f"{ms(self.p50)} / {ms(self.p99)} ms"

    def mean_p99_ms(self) -> str:
        """``mean / p99`` in milliseconds."""
        return f"{ms(self.mean)} / {ms(self.p99)} ms"


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sample."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def ms(seconds: float) -> str:
    """Seconds as milliseconds with sensible precision."""
    if math.isnan(seconds):
        return "n/a"
    value = seconds * 1000
    if value < 0.1:
        return f"{value:.4f}"
    if value < 10:
        return f"{value:.3f}"
    return f"{value:.1f}"


def rate(count: float, seconds: float) -> float:
    """Items per second (nan for a zero duration)."""
    return count / seconds if seconds > 0 else math.nan


def fmt_rate(value: float, unit: str = "rec/s") -> str:
    """A rate with thousands separators."""
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f} {unit}"


def fmt_ratio(value: float) -> str:
    """A ratio like ``0.43x``."""
    if math.isnan(value) or math.isinf(value):
        return "n/a"
    return f"{value:.2f}x" if value < 100 else f"{value:,.0f}x"


def verdict(ok: bool | None) -> str:
    """PASS / MISS / n/a."""
    if ok is None:
        return "n/a"
    return "PASS" if ok else "MISS"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain aligned text table on stdout."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join("-" * w for w in widths)
    print()
    print(title)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print(line, flush=True)


def code_version(dirs: tuple[str, ...] = ("ledger", "api")) -> str:
    """The repository commit being measured, and whether the packages in ``dirs`` differ from it."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--", *dirs],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "code: unknown (no git)"
    changed = " or ".join(f"{d}/" for d in dirs)
    return f"code: commit {commit}" + (f" + uncommitted changes in {changed}" if dirty else "")
