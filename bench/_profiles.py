"""cProfile reports of the benchmarks: top functions by cumulative and by own time, own time per component."""

from __future__ import annotations

import pstats
from collections import Counter
from pathlib import Path
from typing import Any

from _common import print_table

ROOT = Path(__file__).resolve().parent.parent


def _short(path: str) -> str:
    for marker in ("/site-packages/", f"{ROOT}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "/lib/python3" in path:
        return path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path


def _label(key: tuple[str, int, str]) -> str:
    file, line, func = key
    if file == "~":
        return func
    return f"{_short(file)}:{line}({func})"


def _component(key: tuple[str, int, str]) -> str:
    """Where a function lives, for the own-time-by-component table."""
    file, _line, func = key
    if file == "~":
        if "sqlite3" in func or "psycopg" in func:
            return "database driver (C methods)"
        return "built-ins (C)"
    if "/site-packages/" in file:
        package = file.split("/site-packages/", 1)[1].split("/", 1)[0]
        return f"{package.removesuffix('.py')} (library)"
    if f"{ROOT}/" in file:
        return file.split(f"{ROOT}/", 1)[1]
    if "/lib/python3" in file:
        module = file.split("/lib/python3", 1)[1].split("/", 1)[-1]
        return f"stdlib {module.split('/', 1)[0].removesuffix('.py')}"
    return file


def print_profile(label: str, seconds: float, st: pstats.Stats, top: int) -> None:
    """Top functions by cumulative and by own time, and own time summed per component."""
    entries = []
    for key, (cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        entries.append((key, cc, nc, tt, ct))
    root = max((e[4] for e in entries), default=0.0) or 1.0  # the profiled call itself

    def rows(ordered: list[Any]) -> list[list[str]]:
        out = []
        for key, cc, nc, tt, ct in ordered[:top]:
            calls = f"{nc:,}" if nc == cc else f"{nc:,}/{cc:,}"
            out.append(
                [
                    _label(key)[:95],
                    calls,
                    f"{tt:.3f}",
                    f"{100 * tt / root:.1f}%",
                    f"{ct:.3f}",
                    f"{100 * ct / root:.1f}%",
                    f"{ct / nc * 1e6:,.0f}",
                ]
            )
        return out

    header = ["function", "calls", "own s", "own %", "cum s", "cum %", "cum us/call"]
    print_table(
        f"profile: {label}: {seconds:,.1f} s under cProfile; top {top} by cumulative time",
        header,
        rows(sorted(entries, key=lambda e: -e[4])),
    )
    print_table(
        f"profile: {label}: top {top} by own time", header, rows(sorted(entries, key=lambda e: -e[3]))
    )
    by_component: Counter[str] = Counter()
    for key, _cc, _nc, tt, _ct in entries:
        by_component[_component(key)] += tt
    print_table(
        f"profile: {label}: own time by component",
        ["component", "own s", "own %"],
        [[name, f"{tt:.3f}", f"{100 * tt / root:.1f}%"] for name, tt in by_component.most_common(12)],
    )
